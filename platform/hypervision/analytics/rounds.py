"""The day's collection round: the containers to collect, in the order a truck should
visit them, from the member's depot and back (see analytics/README.md, "Waste").

1. The containers are those on the day's list (dash_waste_plan, `to_collect`: level
   above `waste.empty_above_pct` or full before the next round) that have coordinates
   (location.lat/lon); the others are reported as not placed.
2. Distances between every pair of stops, in metres: from the member's road distance file
   (`waste.road_distances`, lines `from;to;metres`, ids `depot` or DevEUIs; one direction
   serves both) where it gives the pair, else the great-circle distance. The round says
   `road` only when every leg came from the file.
3. The order is VROOM's (pyvroom), a vehicle routing solver: one vehicle from the depot
   back to it, visiting every stop, minimising the distance.
4. The refresh job keeps the planned round in waste_round and waste_round_stops (what the
   dashboard reads), planning again only when the list of containers, the depot or the
   day changed (`keep_planned`).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg
import vroom
from psycopg import sql

from hypervision.analytics.config import Depot, MemberAnalytics

DEPOT = "depot"
EARTH_RADIUS_M = 6_371_000.0
# The refresh job plans rounds of at most this many containers: one truck's day, and a
# solve of a few seconds on one core (about 1 s for 50 stops, 5 s for 200 on the
# development machine); a longer list is a round to split by area.
MAX_STOPS = 150
# VROOM's search effort (1 to 5) and time limit: level 1 found the same rounds as 5 on
# 50 to 500 random stops, in a quarter to a half of the time.
EXPLORATION = 1
SOLVE_TIMEOUT = dt.timedelta(seconds=10)


class RoundError(Exception):
    """The round cannot be planned as declared (no depot, unreadable distance file)."""


class TooManyStops(RoundError):
    """More containers to collect than the refresh job plans in one round."""


@dataclass(frozen=True)
class Place:
    id: str  # `depot` or a DevEUI
    name: str
    lat: float
    lon: float
    level_pct: float | None = None


@dataclass(frozen=True)
class Stop:
    position: int  # 0 and the last: the depot
    place: Place
    leg_m: float
    cumulative_m: float


@dataclass(frozen=True)
class Round:
    planned_at: dt.datetime
    stops: list[Stop]
    distance_m: float
    distances: str  # road or straight-line
    not_placed: list[str] = field(default_factory=list)  # DevEUIs without coordinates

    @property
    def containers(self) -> int:
        return len(self.stops) - 2


def great_circle_m(a: Place, b: Place) -> float:
    """Haversine distance in metres."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def read_road_distances(path: Path) -> dict[tuple[str, str], float]:
    """`from;to;metres` lines (a header line is allowed); ids are lower-cased."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RoundError(f"road distances {path}: {exc.strerror or exc}") from None
    out: dict[tuple[str, str], float] = {}
    for number, row in enumerate(csv.reader(text.splitlines(), delimiter=";"), start=1):
        if not row or row[0].strip().startswith("#"):
            continue
        if number == 1 and row[0].strip().lower() == "from":
            continue
        if len(row) != 3:
            raise RoundError(f"{path}:{number}: expected from;to;metres")
        a, b = row[0].strip().lower(), row[1].strip().lower()
        try:
            metres = float(row[2])
        except ValueError:
            raise RoundError(f"{path}:{number}: {row[2]!r} is not a distance in metres") from None
        if not math.isfinite(metres) or metres < 0:
            raise RoundError(f"{path}:{number}: a distance is a positive number of metres")
        out[(a, b)] = metres
    return out


def road_distances_of(config: MemberAnalytics, tenants_dir: Path) -> dict[tuple[str, str], float]:
    """The member's road distance file, if it declares one (inside the tenants directory)."""
    name = config.waste.road_distances
    if name is None:
        return {}
    root = tenants_dir.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise RoundError(f"waste.road_distances {name!r} lies outside {root}")
    return read_road_distances(path)


def matrix(places: Sequence[Place], road: Mapping[tuple[str, str], float]
           ) -> tuple[list[list[float]], bool]:
    """Distances between every pair of places (step 2); True when all came from `road`."""
    out = [[0.0] * len(places) for _ in places]
    all_road = True
    for i, a in enumerate(places):
        for j, b in enumerate(places):
            if i == j:
                continue
            metres = road.get((a.id, b.id), road.get((b.id, a.id)))
            if metres is None:
                all_road = False
                metres = great_circle_m(a, b)
            out[i][j] = metres
    return out, all_road


def solve(distances: list[list[float]]) -> list[int]:
    """The visiting order of places 1..n-1 from place 0 and back (step 3)."""
    n = len(distances)
    if n <= 2:
        return list(range(1, n))
    problem = vroom.Input()
    # VROOM works in whole units: metres.
    problem.set_durations_matrix(
        profile="car", matrix_input=np.rint(np.array(distances)).astype(np.uint32))
    problem.add_vehicle(vroom.Vehicle(0, start=0, end=0))
    for i in range(1, n):
        problem.add_job(vroom.Job(i, location=i))
    solution = problem.solve(exploration_level=EXPLORATION, nb_threads=1,
                             timeout=SOLVE_TIMEOUT)
    routes = solution.routes
    order = [int(i) for i in routes[routes["type"] == "job"]["location_index"]]
    if sorted(order) != list(range(1, n)):
        raise RoundError("the solver left containers out of the round")
    return order


def plan(depot: Depot, containers: Sequence[Place], road: Mapping[tuple[str, str], float],
         now: dt.datetime) -> Round:
    """The round over `containers` from `depot` (steps 2 and 3)."""
    start = Place(DEPOT, "Dépôt", depot.lat, depot.lon)
    places = [start, *containers]
    distances, all_road = matrix(places, road)
    order = solve(distances)
    stops = [Stop(0, start, 0.0, 0.0)]
    total, previous = 0.0, 0
    for position, i in enumerate([*order, 0], start=1):
        leg = distances[previous][i]
        total += leg
        stops.append(Stop(position, places[i], leg, total))
        previous = i
    return Round(now, stops, total, "road" if road and all_road else "straight-line")


def to_collect(conn: psycopg.Connection, schema: str) -> tuple[list[Place], list[str]]:
    """The day's containers with coordinates, and the DevEUIs of those without (step 1)."""
    rows = conn.execute(
        sql.SQL(
            """
            SELECT c.dev_eui, c.device_name, d.lat, d.lon, c.fill_pct
            FROM {s}.dash_waste_plan c
            JOIN {s}.analytics_devices d ON d.dev_eui = c.dev_eui
            WHERE c.to_collect ORDER BY c.dev_eui
            """
        ).format(s=sql.Identifier(schema))
    ).fetchall()
    placed = [Place(r[0], r[1], r[2], r[3], r[4]) for r in rows
              if r[2] is not None and r[3] is not None]
    return placed, [r[0] for r in rows if r[2] is None or r[3] is None]


def plan_for(conn: psycopg.Connection, schema: str, config: MemberAnalytics,
             tenants_dir: Path, now: dt.datetime, leave_out: Sequence[str] = ()) -> Round:
    """The member's round now, from its settings (steps 1 to 3), without the containers
    of `leave_out`."""
    depot = config.waste.depot
    if depot is None:
        raise RoundError("no depot: declare analytics.waste.depot {lat, lon} in the"
                         " member's tenant file")
    placed, missing = to_collect(conn, schema)
    hidden = set(leave_out)
    placed = [p for p in placed if p.id not in hidden]
    missing = [e for e in missing if e not in hidden]
    found = plan(depot, placed, road_distances_of(config, tenants_dir), now)
    return Round(found.planned_at, found.stops, found.distance_m, found.distances, missing)


def _key(config: MemberAnalytics, placed: Sequence[Place],
         road: Mapping[tuple[str, str], float], now: dt.datetime) -> str:
    day = now.astimezone(config.zone).date()
    text = "|".join([day.isoformat(), repr(config.waste.depot), repr(sorted(road.items())),
                     *(f"{p.id}@{p.lat},{p.lon}" for p in placed)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def save(conn: psycopg.Connection, schema: str, found: Round, key: str) -> None:
    """Replace the stored round (as the member's owner, in the caller's transaction)."""
    s = sql.Identifier(schema)
    conn.execute(sql.SQL("DELETE FROM {}.waste_round_stops").format(s))
    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL("INSERT INTO {}.waste_round_stops"
                    " (position, dev_eui, lat, lon, leg_m, cumulative_m)"
                    " VALUES (%s, %s, %s, %s, %s, %s)").format(s),
            [(x.position, None if x.place.id == DEPOT else x.place.id, x.place.lat, x.place.lon,
              x.leg_m, x.cumulative_m) for x in found.stops],
        )
    conn.execute(
        sql.SQL(
            """
            INSERT INTO {}.waste_round
                (id, planned_at, containers, distance_m, distances, plan_key)
            VALUES (1, %s, %s, %s, %s, %s)
            ON CONFLICT (id) DO UPDATE SET planned_at = EXCLUDED.planned_at,
                containers = EXCLUDED.containers, distance_m = EXCLUDED.distance_m,
                distances = EXCLUDED.distances, plan_key = EXCLUDED.plan_key
            """
        ).format(s),
        (found.planned_at, found.containers, found.distance_m, found.distances, key),
    )


def forget(conn: psycopg.Connection, schema: str) -> None:
    """Remove the stored round (no depot any more, or no round can be planned)."""
    s = sql.Identifier(schema)
    conn.execute(sql.SQL("DELETE FROM {}.waste_round_stops").format(s))
    conn.execute(sql.SQL("DELETE FROM {}.waste_round").format(s))


def keep_planned(conn: psycopg.Connection, schema: str, config: MemberAnalytics,
                 tenants_dir: Path, now: dt.datetime) -> bool:
    """Step 4: plan and store the round when what it depends on changed; without a depot,
    forget any stored round. Returns whether it planned. Runs in the caller's transaction,
    as the member's owner."""
    s = sql.Identifier(schema)
    if config.waste.depot is None:
        forget(conn, schema)
        return False
    placed, _ = to_collect(conn, schema)
    if len(placed) > MAX_STOPS:
        raise TooManyStops(f"{len(placed)} containers to collect, more than {MAX_STOPS} for"
                           " one round: plan it by area (`hypervision waste round`)")
    road = road_distances_of(config, tenants_dir)
    key = _key(config, placed, road, now)
    row = conn.execute(sql.SQL("SELECT plan_key FROM {}.waste_round").format(s)).fetchone()
    if row is not None and row[0] == key:
        return False
    found = plan(config.waste.depot, placed, road, now)
    save(conn, schema, found, key)
    return True

"""Waste containers: fill level, collections, fill rate, days until full and today's list
of containers to empty (see analytics/README.md, "Waste").

- The fill level is `fill.level`, computed at decode time when the device declares its
  `container_depth_mm`; for a device that reports only `fill.distance`, it is computed
  here from the same variable: (depth - distance) / depth, within 0-100 %.
- A collection is a fall of the level of at least `waste.collection_drop_pct` points
  between two consecutive readings; the refresh job records them in waste_collections.
- The fill rate is the least-squares slope of the level over the readings since the last
  collection, within the last `waste.rate_days` days (at least two readings an hour
  apart); days until full = (full_pct - level) / rate.
- A container is on today's list when its level is at least `waste.empty_above_pct`, or
  when it will be full before the next round (`waste.round_days`, the first round day
  after today).
- The refresh job keeps each container's state at its latest reading (level, last
  collection, fill rate) in waste_containers, which the views read (`recompute_states`).
"""

from __future__ import annotations

import datetime as dt
import itertools
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from hypervision.analytics import series
from hypervision.analytics.config import WEEKDAYS, WasteSettings
from hypervision.analytics.members import Device, devices
from hypervision.analytics.series import Range

LEVEL = "fill.level"
DISTANCE = "fill.distance"
METRICS = (LEVEL, DISTANCE)
DEPTH_VARIABLE = "container_depth_mm"
DAY_S = 86400.0


def level_from_distance(distance_mm: float, depth_mm: float) -> float:
    return min(100.0, max(0.0, (depth_mm - distance_mm) / depth_mm * 100.0))


def collections(
    readings: Sequence[tuple[dt.datetime, float]], drop_pct: float
) -> list[tuple[dt.datetime, float, float]]:
    """(time, level before, level after) for each fall of at least `drop_pct` points."""
    return [
        (b[0], a[1], b[1])
        for a, b in itertools.pairwise(readings)
        if a[1] - b[1] >= drop_pct
    ]


def _levels(
    conn: psycopg.Connection, schema: str, ranges: Mapping[str, Range],
    known: Mapping[str, Device], before: int = 1, after: int = 1,
) -> dict[str, list[tuple[dt.datetime, float]]]:
    """Fill levels per container: fill.level, or fill.distance and the declared depth."""
    out = {
        e: r for e, r in series.around(conn, schema, LEVEL, ranges, before, after).items() if r
    }
    missing = {e: ranges[e] for e in ranges if e not in out and e in known
               and (known[e].number(DEPTH_VARIABLE) or 0) > 0}
    for e, readings in series.around(conn, schema, DISTANCE, missing, before, after).items():
        depth = known[e].number(DEPTH_VARIABLE)
        assert depth
        out[e] = [(t, level_from_distance(v, depth)) for t, v in readings]
    return out


def recompute(
    conn: psycopg.Connection,
    schema: str,
    ranges: Mapping[str, Range],
    known: Mapping[str, Device],
    settings: WasteSettings,
) -> int:
    """Rewrite the collections of each container around the readings in its range; return
    how many were found. Runs in the caller's transaction."""
    found = _levels(conn, schema, ranges, known)
    rows: list[tuple] = []
    bounds: dict[str, Range] = {}
    for dev_eui, readings in found.items():
        if not readings:
            continue
        bounds[dev_eui] = (readings[0][0], readings[-1][0])
        for t, before, after in collections(readings, settings.collection_drop_pct):
            rows.append((t, dev_eui, before, after))
    if not bounds:
        return 0
    # The first reading fetched only serves as the reference of the second one.
    series.delete_in_ranges(conn, schema, "waste_collections", "time", bounds, "(]")
    series.copy_rows(conn, schema, "waste_collections",
                     ("time", "dev_eui", "level_before", "level_after"), rows)
    return len(rows)


# Below this fill rate (points a day), no forecast of when a container is full: a flat
# level (a full container's sensor reading 98 % for days) would put it years away.
MIN_RATE_PCT_PER_DAY = 0.1


def fill_rate(readings: Sequence[tuple[dt.datetime, float]]) -> float | None:
    """Percentage points per day, by least squares; None with too little to go on."""
    if len(readings) < 2 or (readings[-1][0] - readings[0][0]).total_seconds() < 3600:
        return None
    t0 = readings[0][0]
    days = [(t - t0).total_seconds() / DAY_S for t, _ in readings]
    slope, _ = statistics.linear_regression(days, [v for _, v in readings])
    return slope


def next_round(today: dt.date, round_days: Sequence[str]) -> dt.date | None:
    """The first round day after `today` (None when no day has a round)."""
    for i in range(1, 8):
        day = today + dt.timedelta(days=i)
        if WEEKDAYS[day.weekday()] in round_days:
            return day
    return None


@dataclass(frozen=True)
class State:
    """A container's state as of a given time (a row of waste_containers)."""

    measured_at: dt.datetime
    level_pct: float
    last_collection: dt.datetime | None
    rate_pct_per_day: float | None
    rate_readings: int


def _states(
    conn: psycopg.Connection, schema: str, at: Mapping[str, dt.datetime],
    known: Mapping[str, Device], settings: WasteSettings,
) -> dict[str, State]:
    """Each container's state as of its time in `at`: its latest level at or before that
    time, its last collection at or before it, and the fill rate over the readings since
    the later of that collection and `rate_days` before the time."""
    if not at:
        return {}
    span = dt.timedelta(days=settings.rate_days)
    found = _levels(conn, schema, {e: (t - span, t + dt.timedelta(microseconds=1))
                                   for e, t in at.items()}, known, before=1, after=0)
    euis = list(at)
    last_collections: dict[str, dt.datetime] = dict(conn.execute(
        sql.SQL("SELECT r.dev_eui, max(c.time)"
                " FROM unnest(%s::text[], %s::timestamptz[]) AS r(dev_eui, at)"
                " JOIN {}.waste_collections c ON c.dev_eui = r.dev_eui AND c.time <= r.at"
                " GROUP BY r.dev_eui").format(sql.Identifier(schema)),
        (euis, [at[e] for e in euis]),
    ).fetchall())
    out = {}
    for dev_eui, readings in found.items():
        if not readings:
            continue
        start = at[dev_eui] - span
        collected = last_collections.get(dev_eui)
        recent = [r for r in readings if r[0] >= start and (collected is None or r[0] >= collected)]
        t, level = readings[-1]
        out[dev_eui] = State(t, level, collected, fill_rate(recent), len(recent))
    return out


def recompute_states(
    conn: psycopg.Connection, schema: str, dev_euis: Sequence[str],
    known: Mapping[str, Device], settings: WasteSettings,
) -> int:
    """Rewrite the waste_containers rows of these containers: their state at their latest
    reading (what v_dechets_conteneurs and dash_waste_latest read). Runs in the caller's
    transaction, after the collections; returns the number of rows written."""
    euis = [e for e in dev_euis if e in known]
    if not euis:
        return 0
    s = sql.Identifier(schema)
    latest: dict[str, dt.datetime | None] = dict(conn.execute(
        sql.SQL(
            """
            SELECT r.dev_eui, greatest(
                (SELECT m.time FROM {s}.measurements m WHERE m.dev_eui = r.dev_eui
                 AND m.metric = %(level)s ORDER BY m.time DESC LIMIT 1),
                (SELECT m.time FROM {s}.measurements m WHERE m.dev_eui = r.dev_eui
                 AND m.metric = %(distance)s ORDER BY m.time DESC LIMIT 1))
            FROM unnest(%(euis)s::text[]) AS r(dev_eui)
            """
        ).format(s=s),
        {"euis": euis, "level": LEVEL, "distance": DISTANCE},
    ).fetchall())
    states = _states(conn, schema, {e: t for e, t in latest.items() if t is not None}, known,
                     settings)
    conn.execute(sql.SQL("DELETE FROM {}.waste_containers WHERE dev_eui = ANY(%s)").format(s),
                 (euis,))
    series.copy_rows(conn, schema, "waste_containers",
                     ("dev_eui", "measured_at", "level_pct", "last_collection",
                      "rate_pct_per_day", "rate_readings"),
                     [(e, x.measured_at, x.level_pct, x.last_collection, x.rate_pct_per_day,
                       x.rate_readings) for e, x in sorted(states.items())])
    return len(states)


@dataclass(frozen=True)
class Container:
    """A container's state and forecast at a given time."""

    dev_eui: str
    name: str
    level_pct: float
    measured_at: dt.datetime
    rate_pct_per_day: float | None
    days_until_full: float | None
    full_at: dt.datetime | None
    last_collection: dt.datetime | None
    next_round: dt.date | None
    to_empty: bool
    reason: str  # 'level', 'forecast' or ''


def containers(
    conn: psycopg.Connection, schema: str, settings: WasteSettings, now: dt.datetime,
    timezone: str = "Europe/Paris",
) -> list[Container]:
    """Every container with a level at `now`, its fill rate and forecast."""
    known = devices(conn, schema, category="waste")
    round_day = next_round(now.astimezone(ZoneInfo(timezone)).date(), settings.round_days)
    round_at = (dt.datetime.combine(round_day, dt.time(0), ZoneInfo(timezone))
                if round_day else None)
    out = []
    for dev_eui, x in _states(conn, schema, dict.fromkeys(known, now), known,
                              settings).items():
        t, level, rate = x.measured_at, x.level_pct, x.rate_pct_per_day
        days = None
        full_at = None
        if level >= settings.full_pct:
            days, full_at = 0.0, t
        elif rate is not None and rate >= MIN_RATE_PCT_PER_DAY:
            days = (settings.full_pct - level) / rate
            full_at = t + dt.timedelta(days=days)
        reason = ""
        if level >= settings.empty_above_pct:
            reason = "level"
        elif full_at is not None and round_at is not None and full_at <= round_at:
            reason = "forecast"
        out.append(Container(dev_eui, known[dev_eui].name, level, t, rate, days, full_at,
                             x.last_collection, round_day, bool(reason), reason))
    return out


def today(
    conn: psycopg.Connection, schema: str, settings: WasteSettings, now: dt.datetime,
    timezone: str = "Europe/Paris",
) -> list[Container]:
    """Containers to empty today, fullest first."""
    chosen = [c for c in containers(conn, schema, settings, now, timezone) if c.to_empty]
    return sorted(chosen, key=lambda c: (-c.level_pct, c.days_until_full or 0.0))


@dataclass(frozen=True)
class Collection:
    time: dt.datetime
    dev_eui: str
    level_before: float
    level_after: float


def collections_between(
    conn: psycopg.Connection, schema: str, start: dt.datetime, end: dt.datetime,
    dev_eui: str | None = None,
) -> list[Collection]:
    rows = conn.execute(
        sql.SQL(
            """
            SELECT time, dev_eui, level_before, level_after FROM {}.waste_collections
            WHERE time >= %(start)s AND time < %(end)s
              AND (%(dev)s::text IS NULL OR dev_eui = %(dev)s)
            ORDER BY time
            """
        ).format(sql.Identifier(schema)),
        {"start": start, "end": end, "dev": dev_eui},
    ).fetchall()
    return [Collection(*r) for r in rows]

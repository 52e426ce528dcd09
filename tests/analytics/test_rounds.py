"""The day's collection round: the solver's order on small cases worked out by hand, road
distances from the member's file, and the round the refresh job keeps for the dashboard
(read by the member's read-only role), planned again only when it would change."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hypervision.analytics import rounds
from hypervision.analytics.config import Depot
from hypervision.db import connect_as
from hypervision.settings import Settings
from tests.analytics.helpers import SCHEMA, declare, put, refresh

NOW = dt.datetime(2026, 3, 10, 6, tzinfo=dt.UTC)
GLASS, PAPER, PLASTIC = "c6c6c6c6c6c60006", "c6c6c6c6c6c60007", "c6c6c6c6c6c60013"


def place(name: str, lat: float, lon: float) -> rounds.Place:
    return rounds.Place(name, name.upper(), lat, lon)


def test_it_visits_containers_on_a_line_once_each_way() -> None:
    # Three containers due north of the depot, 0.01 degree of latitude apart (1111.95 m at
    # 6371 km), given out of order: the shortest round goes up and comes back, 2 x 3335.85 m.
    a, b, c = place("a", 48.01, -4.0), place("b", 48.02, -4.0), place("c", 48.03, -4.0)
    found = rounds.plan(Depot(lat=48.0, lon=-4.0), [c, a, b], {}, NOW)
    order = [s.place.id for s in found.stops]
    assert order in (["depot", "a", "b", "c", "depot"], ["depot", "c", "b", "a", "depot"])
    assert found.distances == "straight-line" and found.containers == 3
    assert abs(found.distance_m - 6671.7) < 0.5
    assert [round(s.leg_m, 1) for s in found.stops][:2] in ([0.0, 1111.9], [0.0, 3335.8])
    assert found.stops[-1].cumulative_m == found.distance_m


def test_it_finds_the_shortest_order_by_road_distances(tmp_path: Path) -> None:
    # By road: depot-A 1 km, depot-C 1 km, A-B 1 km, B-C 1 km, depot-B 5 km, A-C 5 km.
    # D-A-B-C-D is 4 km; any other order takes a 5 km leg twice (12 km). Straight lines
    # would rather go D-B first: B sits next to the depot.
    (tmp_path / "roads.csv").write_text(
        "from;to;metres\n"
        "depot;a;1000\ndepot;b;5000\ndepot;c;1000\na;b;1000\nb;c;1000\nc;a;5000\n",
        encoding="utf-8")
    road = rounds.read_road_distances(tmp_path / "roads.csv")
    a, b, c = place("a", 48.05, -4.0), place("b", 48.001, -4.0), place("c", 48.05, -3.9)
    found = rounds.plan(Depot(lat=48.0, lon=-4.0), [a, b, c], road, NOW)
    assert [s.place.id for s in found.stops] in (["depot", "a", "b", "c", "depot"],
                                                 ["depot", "c", "b", "a", "depot"])
    assert (found.distance_m, found.distances) == (4000.0, "road")
    # Without the pair B-C, that leg is a straight line: the round is no longer `road`.
    del road[("b", "c")]
    assert rounds.plan(Depot(lat=48.0, lon=-4.0), [a, b, c], road, NOW).distances == \
        "straight-line"


def test_the_solver_matches_every_order_tried_by_hand() -> None:
    # Seven containers around a depot: the solver's round is as short as the best of all
    # 5040 orders.
    depot = Depot(lat=47.98, lon=-4.10)
    spots = [place(f"x{i}", 47.98 + dy, -4.10 + dx) for i, (dy, dx) in enumerate(
        [(0.01, 0.02), (-0.015, 0.005), (0.02, -0.01), (0.003, -0.03), (-0.02, -0.02),
         (0.012, 0.031), (-0.005, 0.015)])]
    found = rounds.plan(depot, spots, {}, NOW)
    start = rounds.Place(rounds.DEPOT, "", depot.lat, depot.lon)

    def length(order: tuple[rounds.Place, ...]) -> float:
        path = [start, *order, start]
        return sum(rounds.great_circle_m(p, q) for p, q in itertools.pairwise(path))

    best = min(length(o) for o in itertools.permutations(spots))
    assert found.distance_m == pytest.approx(best, abs=1.0)


def test_a_bad_distance_file_is_reported_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "roads.csv").write_text("depot;a;1000\na;b;far\n", encoding="utf-8")
    with pytest.raises(rounds.RoundError, match=r"roads\.csv:2: 'far' is not a distance"):
        rounds.read_road_distances(tmp_path / "roads.csv")
    with pytest.raises(rounds.RoundError, match="No such file"):
        rounds.read_road_distances(tmp_path / "missing.csv")


@pytest.mark.services
def test_the_refresh_keeps_the_days_round_for_the_dashboard(
    member_db: psycopg.Connection[Any], asettings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = member_db
    now = admin.execute("SELECT now()").fetchone()[0]
    # Glass at 90 % and plastic at 85 % are to collect; paper at 50 % is not.
    put(admin, GLASS, "fill.level", [(now - dt.timedelta(hours=2), 90)])
    put(admin, PLASTIC, "fill.level", [(now - dt.timedelta(hours=2), 85)])
    put(admin, PAPER, "fill.level", [(now - dt.timedelta(hours=2), 50)])
    assert not refresh(admin, asettings).round_planned  # no depot declared
    declare(admin, asettings, {"analytics": {"waste": {"depot": {"lat": 47.98, "lon": -4.10}}}})
    assert refresh(admin, asettings).round_planned

    # Depot (47.98, -4.10), glass (47.99, -4.10), plastic (47.99, -4.12): 1111.9 m north,
    # 1488.4 m west (0.02 degree at cos 47.99), 1858.0 m back: 4458.3 m either way.
    with connect_as(asettings, "analytica_reader") as reader:
        stops = reader.execute(
            f"SELECT position, stop_name, dev_eui, fill_pct, cumulative_km, distances"
            f" FROM {SCHEMA}.dash_waste_round ORDER BY position").fetchall()
    assert [s[0] for s in stops] == [0, 1, 2, 3]
    assert [s[1] for s in stops][::3] == ["Dépôt", "Dépôt"]
    assert {s[2] for s in stops[1:3]} == {GLASS, PLASTIC}
    assert {s[3] for s in stops[1:3]} == {90.0, 85.0}
    assert float(stops[-1][4]) == pytest.approx(4.46, abs=0.005)
    assert stops[0][5] == "Distances à vol d'oiseau"
    assert not refresh(admin, asettings).round_planned  # nothing changed

    # Paper reaches 95 %: the round is planned again with three containers.
    put(admin, PAPER, "fill.level", [(now - dt.timedelta(hours=1), 95)])
    assert refresh(admin, asettings).round_planned
    assert admin.execute(f"SELECT containers FROM {SCHEMA}.waste_round").fetchone() == (3,)

    # More containers than one round takes: the refresh says so and forgets the old round.
    monkeypatch.setattr(rounds, "MAX_STOPS", 2)
    put(admin, PAPER, "fill.level", [(now - dt.timedelta(minutes=30), 96)])
    result = refresh(admin, asettings)
    assert result.round_error is not None and "more than 2 for one round" in result.round_error
    assert admin.execute(f"SELECT count(*) FROM {SCHEMA}.waste_round").fetchone() == (0,)
    monkeypatch.undo()

    # A road distance file the member cannot read: the refresh says so and goes on.
    declare(admin, asettings, {"analytics": {"waste": {
        "depot": {"lat": 47.98, "lon": -4.10}, "road_distances": "no-such-file.csv"}}})
    result = refresh(admin, asettings)
    assert result.round_error is not None and "no-such-file.csv" in result.round_error

    declare(admin, asettings, {})
    refresh(admin, asettings)
    assert admin.execute(f"SELECT count(*) FROM {SCHEMA}.waste_round_stops").fetchone() == (0,)

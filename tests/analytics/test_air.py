"""Indoor air: ICONE on a known series, time above the thresholds during occupied hours,
per-building calendars, configurable thresholds."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from typing import Any

import psycopg
import pytest

from hypervision.analytics import air, members, rollups
from hypervision.settings import Settings
from tests.analytics.helpers import SCHEMA, SLUG, declare, put, refresh, utc

pytestmark = pytest.mark.services

CM1, COUNCIL = "c6c6c6c6c6c60008", "c6c6c6c6c6c60010"

# Monday 9 March 2026; Paris is UTC+1, so the school is occupied 07:00-16:00 UTC.
SERIES = [
    (utc(2026, 3, 9, 8, 0), 800),    # n0 (below 1000); not above 800
    (utc(2026, 3, 9, 8, 10), 1200),  # n1
    (utc(2026, 3, 9, 8, 20), 1500),  # n1; above 800, not above 1500
    (utc(2026, 3, 9, 8, 30), 1800),  # n2
    (utc(2026, 3, 9, 8, 40), 2000),  # n2
    (utc(2026, 3, 9, 8, 50), 900),   # n0; above 800, held 20 min (two 10-min intervals)
    (utc(2026, 3, 9, 19, 0), 3000),  # 20:00 in Paris: the school is closed, not counted
]


def test_icone_matches_the_definition_and_the_sql_function(
    member_db: psycopg.Connection[Any],
) -> None:
    # n0 = n1 = n2 = 2, N = 6: f1 = f2 = 1/3;
    # (2.5 / log10 2) * log10(1 + 1/3 + 3 * 1/3) = 8.30482 * log10(2.33333)
    # = 8.30482 * 0.367977 = 3.056 -> 3.
    assert air.icone(2, 2, 2) == 3
    assert air.icone(10, 0, 0) == 0
    assert air.icone(0, 0, 10) == 5  # log10(4) / log10(2) * 2.5 = 5
    assert air.icone(0, 0, 0) is None
    assert air.band(999.9) == 0 and air.band(1000) == 1 and air.band(1700) == 1
    assert air.band(1700.1) == 2
    for n0, n1, n2 in itertools.product(range(5), repeat=3):
        if n0 + n1 + n2:
            sql_value = member_db.execute(f"SELECT {SCHEMA}.icone_index(%s, %s, %s)",
                                          (n1, n2, n0 + n1 + n2)).fetchone()
            assert sql_value == (air.icone(n0, n1, n2),), (n0, n1, n2)
    # All readings between 1000 and 1700 ppm: f1 = 1, exactly 2.5, a half: rounded up.
    assert air.icone(0, 6, 0) == 3
    assert math.isclose((2.5 / math.log10(2)) * math.log10(2.0), 2.5)


def test_icone_and_time_above_thresholds_per_room_during_occupied_hours(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    # The town hall's council room is only occupied on Tuesday mornings.
    declare(admin, asettings, {"analytics": {"air": {"buildings": {"Mairie": {"week": {
        "tue": ["09:00-12:00"]}}}}}})
    refresh(admin, asettings)
    put(admin, CM1, "air.co2", SERIES)
    put(admin, COUNCIL, "air.co2", [(utc(2026, 3, 9, 8), 2500)])
    refresh(admin, asettings)

    rooms = {r.room: r for r in air.rooms(admin, SCHEMA, utc(2026, 3, 9, 8),
                                          utc(2026, 3, 9, 10))}
    cm1 = rooms["CM1"]
    # Above 800 ppm: 1200, 1500, 1800, 2000 for 10 min each, and 900 for 20 min (until
    # 09:10 UTC, two usual intervals): 60 min. Above 1500 ppm: 1800 and 2000, 20 min.
    assert (cm1.building, cm1.occupied_s, cm1.above_low_s, cm1.above_high_s) == (
        "École Jules Ferry", 7200, 3600, 1200)
    assert (cm1.n0, cm1.n1, cm1.n2, cm1.icone, cm1.icone_label) == (2, 2, 2, 3, "élevé")
    assert cm1.above_low_share == 0.5
    council = rooms["Salle du conseil"]
    assert (council.occupied_s, council.above_low_s, council.n2, council.icone) == (0, 0, 0, None)

    # Over the whole day, the 20:00 reading (school closed) changes nothing; occupied time
    # counts the hours the sensor covered (08:00 and 09:00 UTC), not those it missed.
    day = {r.room: r for r in air.rooms(admin, SCHEMA, utc(2026, 3, 8, 23), utc(2026, 3, 9, 23),
                                        "École Jules Ferry")}
    assert (day["CM1"].occupied_s, day["CM1"].n2, day["CM1"].icone) == (7200, 2, 3)
    assert list(day) == ["CM1"]
    # The dashboards' view, summed per room and day as the icone metric does.
    view = admin.execute(
        f"SELECT day::date, sum(n0), sum(n1), sum(n2), {SCHEMA}.icone_index(sum(n1)::bigint,"
        f" sum(n2)::bigint, sum(n0 + n1 + n2)::bigint), max(occupied_min), max(above_low_min),"
        f" max(above_high_min) FROM {SCHEMA}.dash_air_days WHERE room = 'CM1' GROUP BY 1"
    ).fetchall()
    assert view == [(dt.date(2026, 3, 9), 2, 2, 2, 3, 120, 60, 20)]
    hours = air.room_hours(admin, SCHEMA, utc(2026, 3, 9, 8), utc(2026, 3, 9, 9),
                           "École Jules Ferry")
    assert [(h.room, h.co2_max, round(h.co2_avg or 0, 2), h.above_high_s) for h in hours] == [
        ("CM1", 2000.0, 1366.67, 1200)]


def test_the_thresholds_are_configurable(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    put(admin, CM1, "air.co2", SERIES)
    refresh(admin, asettings)
    declare(admin, asettings, {"analytics": {"air": {"low_ppm": 1000, "high_ppm": 1900}}})
    # New thresholds apply to what is recomputed: backfill the day.
    rollups.backfill(admin, members.member(admin, SLUG), asettings, utc(2026, 3, 9),
                     utc(2026, 3, 10))
    cm1 = air.rooms(admin, SCHEMA, utc(2026, 3, 9), utc(2026, 3, 10))[0]
    # Above 1000: 1200, 1500, 1800, 2000: 40 min; above 1900: 2000, 10 min.
    assert (cm1.above_low_s, cm1.above_high_s) == (2400, 600)

"""Water meters: consumption from the index with a rollover, a meter swap, backflow and a
gap; a leak over three nights; an abnormal day; the billing index. Expected values are
worked out by hand in the comments."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from hypervision.analytics import members, water
from hypervision.analytics.config import WaterSettings
from hypervision.settings import Settings
from tests.analytics.helpers import SCHEMA, hourly, put, refresh, utc

pytestmark = pytest.mark.services

TOUR, SWAP, LEAKY, SOBER, BILLED, REGULAR = (
    "c6c6c6c6c6c60001", "c6c6c6c6c6c60002", "c6c6c6c6c6c60003", "c6c6c6c6c6c60004",
    "c6c6c6c6c6c60005", "c6c6c6c6c6c60014",
)


def _hours(admin: psycopg.Connection[Any], dev_eui: str) -> list[tuple[dt.datetime, float, bool]]:
    return [(c.start, round(c.volume_l, 6), c.estimated)
            for c in water.consumption(admin, SCHEMA, dev_eui, utc(2000, 1, 1), utc(2100, 1, 1))]


def test_it_counts_a_rollover_and_a_meter_swap_and_backflow(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    refresh(admin, asettings)  # the cursor: what follows goes through the incremental path
    # The first meter declares index_rollover_l = 100000. 10:00 UTC: 99950 -> 50 is a
    # rollover: 100000 - 99950 + 50 = 100 L.
    put(admin, TOUR, "water.index", hourly(utc(2026, 3, 10, 8), [99_800, 99_950, 50, 250]))
    # The second meter declares none. 10:00: 5300 -> 20 falls to at most 100 L: a new meter
    # that counted 20 L; 12:00: 520 -> 480 stays far from zero: backflow of -40 L.
    put(admin, SWAP, "water.index",
        hourly(utc(2026, 3, 10, 8), [5_000, 5_300, 20, 520, 480, 600]))
    refresh(admin, asettings)

    assert _hours(admin, TOUR) == [
        (utc(2026, 3, 10, 8), 150.0, False),
        (utc(2026, 3, 10, 9), 100.0, False),
        (utc(2026, 3, 10, 10), 200.0, False),
    ]
    assert _hours(admin, SWAP) == [
        (utc(2026, 3, 10, 8), 300.0, False),
        (utc(2026, 3, 10, 9), 20.0, False),
        (utc(2026, 3, 10, 10), 500.0, False),
        (utc(2026, 3, 10, 11), -40.0, False),
        (utc(2026, 3, 10, 12), 120.0, False),
    ]
    # One local day (Paris, UTC+1): 150 + 100 + 200 = 450 L; 300 + 20 + 500 - 40 + 120 = 900 L.
    day = water.consumption(admin, SCHEMA, TOUR, utc(2026, 3, 9, 23), utc(2026, 3, 10, 23), "day")
    assert [(c.volume_l, c.hours) for c in day] == [(450.0, 3)]
    month = water.consumption(admin, SCHEMA, SWAP, utc(2026, 2, 28, 23), utc(2026, 3, 31, 22),
                              "month")
    assert [c.volume_l for c in month] == [900.0]
    assert admin.execute(
        f"SELECT day, consumption_m3 FROM {SCHEMA}.dash_water_daily WHERE dev_eui = %s",
        (SWAP,)).fetchall() == [(dt.datetime(2026, 3, 10), 0.9)]
    assert admin.execute(
        f"SELECT month, volume_l FROM {SCHEMA}.water_monthly WHERE dev_eui = %s",
        (SWAP,)).fetchall() == [(dt.date(2026, 3, 1), 900.0)]

    found = [(e.dev_eui, e.time, e.kind, e.index_before, e.index_after, e.volume_l)
             for e in water.events(admin, SCHEMA, utc(2026, 3, 10), utc(2026, 3, 11))]
    assert found == [
        (TOUR, utc(2026, 3, 10, 10), "rollover", 99_950.0, 50.0, 100.0),
        (SWAP, utc(2026, 3, 10, 10), "replacement", 5_300.0, 20.0, 20.0),
        (SWAP, utc(2026, 3, 10, 12), "backflow", 520.0, 480.0, -40.0),
    ]


def test_late_readings_replace_an_estimate_over_a_gap(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    refresh(admin, asettings)
    # 08:00 -> 12:00 is longer than the gap limit (2 h): 400 L spread evenly, 100 L per
    # hour, estimated.
    put(admin, TOUR, "water.index", [(utc(2026, 3, 11, 8), 1_000), (utc(2026, 3, 11, 12), 1_400)])
    refresh(admin, asettings)
    assert _hours(admin, TOUR) == [(utc(2026, 3, 11, h), 100.0, True) for h in range(8, 12)]
    assert [e.kind for e in water.events(admin, SCHEMA, utc(2026, 3, 11), utc(2026, 3, 12))] == [
        "gap"]

    # The readings in between arrive late (a history frame): the hours become exact.
    put(admin, TOUR, "water.index",
        [(utc(2026, 3, 11, 9), 1_050), (utc(2026, 3, 11, 10), 1_300),
         (utc(2026, 3, 11, 11), 1_350)])
    refresh(admin, asettings)
    assert _hours(admin, TOUR) == [
        (utc(2026, 3, 11, 8), 50.0, False),
        (utc(2026, 3, 11, 9), 250.0, False),
        (utc(2026, 3, 11, 10), 50.0, False),
        (utc(2026, 3, 11, 11), 50.0, False),
    ]
    assert water.events(admin, SCHEMA, utc(2026, 3, 11), utc(2026, 3, 12)) == []


def test_late_readings_a_month_apart_are_each_taken_into_account(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    # Hourly readings on 2 and 30 March; then, late, a half-hour reading in each.
    put(admin, SWAP, "water.index", hourly(utc(2026, 3, 2, 8), [0, 100, 200]))
    put(admin, SWAP, "water.index", hourly(utc(2026, 3, 30, 8), [5_000, 5_060, 5_120]))
    refresh(admin, asettings)
    put(admin, SWAP, "water.index",
        [(utc(2026, 3, 2, 8, 30), 90), (utc(2026, 3, 30, 9, 30), 5_110)])
    refresh(admin, asettings)
    # 2 March, 08:00-09:00: 90 L then 10 L; 30 March, 09:00-10:00: 50 L then 10 L. The
    # four weeks between are one gap (5000 - 200 L spread over it), untouched by the
    # late readings.
    hours = {h: v for h, v, _ in _hours(admin, SWAP)}
    assert (hours[utc(2026, 3, 2, 8)], hours[utc(2026, 3, 2, 9)]) == (100.0, 100.0)
    assert (hours[utc(2026, 3, 30, 8)], hours[utc(2026, 3, 30, 9)]) == (60.0, 60.0)
    between = [c for c in water.consumption(admin, SCHEMA, SWAP, utc(2026, 3, 2, 10),
                                            utc(2026, 3, 30, 8))]
    assert all(c.estimated for c in between)
    assert round(sum(c.volume_l for c in between), 6) == 4_800.0


def test_a_leak_over_three_nights_is_suspected(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    # January: Paris is UTC+1, so the night window 01:00-05:00 local is 00:00-04:00 UTC.
    # The leaky meter turns 10 L every hour, night and day, for three nights.
    start = utc(2026, 1, 12, 22)
    count = 56  # 2026-01-12 22:00 to 2026-01-15 05:00 UTC
    put(admin, LEAKY, "water.index", hourly(start, [10.0 * i for i in range(count)]))
    # The sober meter does the same, except that its index stands still from 02:00 to 03:00
    # UTC each night: one hour at zero flow per night.
    index, readings = 0.0, []
    for i in range(count):
        t = start + dt.timedelta(hours=i)
        readings.append((t, index))
        if t.hour != 2:
            index += 10
    put(admin, SOBER, "water.index", readings)
    refresh(admin, asettings)

    settings = WaterSettings()
    found = water.leaks(admin, SCHEMA, dt.date(2026, 1, 15), settings, "Europe/Paris")
    assert [(x.dev_eui, x.nights, x.first_night, x.min_flow_l_h) for x in found] == [
        (LEAKY, 3, dt.date(2026, 1, 13), 10.0)]
    # A fourth night is not known (no reading before 22:00 on the 12th): no verdict.
    assert water.leaks(admin, SCHEMA, dt.date(2026, 1, 15), settings, "Europe/Paris", 4) == []
    nights = water.nights(admin, SCHEMA, dt.date(2026, 1, 13), dt.date(2026, 1, 15), settings,
                          "Europe/Paris", SOBER)
    assert [(n.night, n.min_flow_l_h, n.hours, n.never_zero) for n in nights] == [
        (dt.date(2026, 1, d), 0.0, 4, False) for d in (13, 14, 15)]
    view = admin.execute(
        f"SELECT dev_eui, last_night::date, nights, status FROM {SCHEMA}.dash_water_leaks"
        " WHERE dev_eui = ANY(%s) ORDER BY 1", ([LEAKY, SOBER],)).fetchall()
    assert view == [(LEAKY, dt.date(2026, 1, 15), 3, "Fuite suspectée"),
                    (SOBER, dt.date(2026, 1, 15), 0, "Normal")]


def test_a_day_far_above_the_meters_own_history_is_abnormal(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    # 21 local days at 100 L a day, then one at 400 L. History mean 100, deviation 0,
    # floored at 10 % of the mean = 10 L: the limit is 100 + 3 x 10 = 130 L.
    start = utc(2026, 1, 1, 23)  # 2026-01-02 00:00 in Paris
    index, readings = 0.0, [(start, 0.0)]
    for i in range(1, 22 * 24 + 1):
        index += (100.0 if i <= 21 * 24 else 400.0) / 24
        readings.append((start + dt.timedelta(hours=i), index))
    put(admin, REGULAR, "water.index", readings)
    refresh(admin, asettings)
    checks = water.abnormal_days(admin, SCHEMA, dt.date(2026, 1, 22), dt.date(2026, 1, 23),
                                 WaterSettings(), REGULAR, only_abnormal=False)
    assert [(c.day, round(c.volume_l), c.history_days, round(c.mean_l or 0), c.abnormal)
            for c in checks] == [
        (dt.date(2026, 1, 22), 100, 20, 100, False),
        (dt.date(2026, 1, 23), 400, 21, 100, True),
    ]
    flagged = admin.execute(
        f"SELECT jour FROM {SCHEMA}.v_eau_conso_anormale WHERE dispositif = %s AND anormal",
        (REGULAR,)).fetchall()
    assert flagged == [(dt.date(2026, 1, 23),)]


def test_the_billing_index_is_interpolated_and_flagged_estimated(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    put(admin, BILLED, "water.index",
        [(utc(2026, 2, 28, 22), 12_340), (utc(2026, 3, 1, 2), 12_740)])
    # Midnight on 1 March in Paris is 23:00 UTC: one hour into four, a quarter of 400 L.
    meter = water.Meter()
    at = water.index_at(admin, SCHEMA, BILLED, utc(2026, 2, 28, 23), meter)
    assert (at.index_l, at.estimated, at.method) == (12_440.0, True, "interpolated")
    at = water.index_at(admin, SCHEMA, BILLED, utc(2026, 2, 28, 22), meter)
    assert (at.index_l, at.estimated, at.method) == (12_340.0, False, "measured")
    at = water.index_at(admin, SCHEMA, BILLED, utc(2026, 3, 2), meter)
    assert (at.index_l, at.estimated, at.method) == (12_740.0, True, "last-reading")
    at = water.index_at(admin, SCHEMA, BILLED, utc(2026, 2, 1), meter)
    assert (at.index_l, at.method) == (None, "no-reading")

    # Across a rollover (R = 100000): 99900 at 00:00, 100 at 02:00, 200 L in two hours;
    # at 01:30, 150 L later: 99900 + 150 - 100000 = 50.
    put(admin, TOUR, "water.index", [(utc(2026, 3, 5), 99_900), (utc(2026, 3, 5, 2), 100)])
    at = water.index_at(admin, SCHEMA, TOUR, utc(2026, 3, 5, 1, 30),
                        water.Meter(rollover_l=100_000))
    assert (at.index_l, at.estimated) == (50.0, True)


def test_the_cli_prints_the_billing_index_and_audits_the_read(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    import typer

    from hypervision.commands import analytics

    admin = member_db
    put(admin, BILLED, "water.index",
        [(utc(2026, 2, 28, 22), 12_340), (utc(2026, 3, 1, 2), 12_740)])
    app = typer.Typer()
    analytics.register(app)
    result = CliRunner().invoke(app, ["water", "index", "analytica", BILLED, "--at", "2026-03-01"])
    assert result.exit_code == 0, result.output
    assert "12440.0 L" in result.output and "estimated" in result.output
    row = admin.execute(
        "SELECT target, params->>'at' FROM hv.audit_log WHERE member_slug = 'analytica'"
        " AND action = 'water.index.read' ORDER BY id DESC LIMIT 1").fetchone()
    assert row == (BILLED, "2026-03-01T00:00:00+01:00")

    unknown = CliRunner().invoke(app, ["water", "index", "analytica", "c6c6c6c6c6c60006",
                                       "--at", "2026-03-01"])
    assert unknown.exit_code == 1
    assert members.member(admin, "analytica").schema == SCHEMA

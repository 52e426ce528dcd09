"""What the refresh job keeps for the dashboards and views (tenant migration 0063): the
water days of dash_water_daily, the history statistics behind abnormal days, the nights,
the rooms' hourly averages in air_hourly, each container's state; refreshed for the
devices and days that changed, and filled once for a history rolled up before them.
Expected values are worked out by hand in the comments."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from hypervision.analytics import air, water
from hypervision.analytics.config import WaterSettings
from hypervision.db import connect_as
from hypervision.settings import Settings
from tests.analytics.helpers import SCHEMA, hourly, put, refresh, utc

pytestmark = pytest.mark.services

TOUR, SWAP, LEAKY, REGULAR = (
    "c6c6c6c6c6c60001", "c6c6c6c6c6c60002", "c6c6c6c6c6c60003", "c6c6c6c6c6c60014")
GLASS, PAPER, PLASTIC = "c6c6c6c6c6c60006", "c6c6c6c6c6c60007", "c6c6c6c6c6c60013"
CM1 = "c6c6c6c6c6c60008"


def _rows(admin: psycopg.Connection[Any], query: str, *params: Any) -> list[tuple]:
    return admin.execute(query.replace("{s}", SCHEMA), params).fetchall()


def test_the_water_dashboard_counts_a_rollover_and_a_meter_swap(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    refresh(admin, asettings)
    # As in test_water: the first meter wraps at 100000 L (150 + 100 + 200 = 450 L on the
    # 10th, Paris time), the second is replaced then flows back (300 + 20 + 500 - 40 + 120
    # = 900 L). The highest index of the day: 99950 L and 5300 L.
    put(admin, TOUR, "water.index", hourly(utc(2026, 3, 10, 8), [99_800, 99_950, 50, 250]))
    put(admin, SWAP, "water.index",
        hourly(utc(2026, 3, 10, 8), [5_000, 5_300, 20, 520, 480, 600]))
    refresh(admin, asettings)
    assert _rows(admin, "SELECT day, dev_eui, index_m3, consumption_m3, readings"
                        " FROM {s}.dash_water_daily ORDER BY dev_eui") == [
        (dt.datetime(2026, 3, 10), TOUR, 99.95, 0.45, 4),
        (dt.datetime(2026, 3, 10), SWAP, 5.3, 0.9, 6),
    ]
    # March is one month of 450 L for the first meter.
    assert _rows(admin, "SELECT month, volume_l, days FROM {s}.water_monthly"
                        " WHERE dev_eui = %s", TOUR) == [(dt.date(2026, 3, 1), 450.0, 1)]


def test_nights_are_kept_per_meter_with_the_hours_each_night_really_has(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    refresh(admin, asettings)
    # 10 L every hour from 27 March 22:00 UTC to 30 March 05:00 UTC (56 readings). The
    # night window is 01:00-05:00 in Paris: 00:00-04:00 UTC on the night ending the 28th
    # (UTC+1); on the 29th the clocks go forward at 02:00, so 00:00-03:00 UTC, 3 hours;
    # on the 30th (UTC+2) 23:00-03:00 UTC, 4 hours.
    put(admin, LEAKY, "water.index", hourly(utc(2026, 3, 27, 22), [10.0 * i for i in range(56)]))
    refresh(admin, asettings)
    assert _rows(admin, "SELECT night, min_volume_l, hours, estimated_hours, expected_hours"
                        " FROM {s}.water_nights WHERE dev_eui = %s ORDER BY night", LEAKY) == [
        (dt.date(2026, 3, 28), 10.0, 4, 0, 4),
        (dt.date(2026, 3, 29), 10.0, 3, 0, 3),
        (dt.date(2026, 3, 30), 10.0, 4, 0, 4),
    ]
    # The dashboards' view and the functions agree, the short night included: three
    # nights of continuous flow, a leak suspicion since the 28th.
    assert _rows(admin, "SELECT last_night::date, nights, since::date, status"
                        " FROM {s}.dash_water_leaks WHERE dev_eui = %s", LEAKY) == [
        (dt.date(2026, 3, 30), 3, dt.date(2026, 3, 28), "Fuite suspectée")]
    found = water.nights(admin, SCHEMA, dt.date(2026, 3, 28), dt.date(2026, 3, 30),
                         WaterSettings(), "Europe/Paris", LEAKY)
    assert [(n.night, n.hours, n.never_zero) for n in found] == [
        (dt.date(2026, 3, 28), 4, True), (dt.date(2026, 3, 29), 3, True),
        (dt.date(2026, 3, 30), 4, True)]
    assert [x.dev_eui for x in water.leaks(admin, SCHEMA, dt.date(2026, 3, 30),
                                           WaterSettings(), "Europe/Paris")] == [LEAKY]


def test_the_history_of_later_days_follows_a_late_reading(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    refresh(admin, asettings)
    # Hourly readings from 2 January 00:00 in Paris (1 January 23:00 UTC), 100 L a day for
    # 21 days, then 400 L on the 23rd. The readings inside 5 January are missing: its 100 L
    # are spread over a 24-hour gap, an estimated day, left out of every history.
    start = utc(2026, 1, 1, 23)
    index, readings = 0.0, [(start, 0.0)]
    for i in range(1, 22 * 24 + 1):
        index += (100.0 if i <= 21 * 24 else 400.0) / 24
        readings.append((start + dt.timedelta(hours=i), index))
    missing = readings[73:96]
    put(admin, REGULAR, "water.index", [r for r in readings if r not in missing])
    refresh(admin, asettings)

    def days() -> list[tuple]:
        return _rows(admin, "SELECT day, estimated, history_days, round(history_mean_l),"
                            " round(history_stdev_l) FROM {s}.water_daily WHERE dev_eui = %s"
                            " AND day IN ('2026-01-05', '2026-01-22', '2026-01-23')"
                            " ORDER BY day", REGULAR)

    # The 22nd: 2 to 21 January less the 5th, 19 days; the 23rd: 20 days, mean 100 L,
    # deviation 0, floored at 10 L: the limit is 100 + 3 x 10 = 130 L, 400 L is abnormal.
    assert days() == [(dt.date(2026, 1, 5), True, 3, 100, 0),
                      (dt.date(2026, 1, 22), False, 19, 100, 0),
                      (dt.date(2026, 1, 23), False, 20, 100, 0)]
    view = "SELECT jour, jours_historique FROM {s}.v_eau_conso_anormale WHERE dispositif = %s"
    assert _rows(admin, view + " AND anormal", REGULAR) == [(dt.date(2026, 1, 23), 20)]

    # The readings of the 5th arrive late: the 5th is measured, and every later day within
    # 28 days counts it (the refresh recomputes them, not only the 5th).
    put(admin, REGULAR, "water.index", missing)
    refresh(admin, asettings)
    assert days() == [(dt.date(2026, 1, 5), False, 3, 100, 0),
                      (dt.date(2026, 1, 22), False, 20, 100, 0),
                      (dt.date(2026, 1, 23), False, 21, 100, 0)]
    assert _rows(admin, view + " AND anormal", REGULAR) == [(dt.date(2026, 1, 23), 21)]
    checks = water.abnormal_days(admin, SCHEMA, dt.date(2026, 1, 22), dt.date(2026, 1, 23),
                                 WaterSettings(), REGULAR, only_abnormal=False)
    assert [(c.day, c.history_days, c.abnormal) for c in checks] == [
        (dt.date(2026, 1, 22), 20, False), (dt.date(2026, 1, 23), 21, True)]


def test_rooms_are_read_from_air_hourly_with_their_averages(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    refresh(admin, asettings)
    # Monday 9 March, 08:00 UTC (the school is open): CO2 800, 1200, 1500, 1800, 2000,
    # 900 ppm, mean 8200 / 6 = 1366.67, max 2000; n0 = n1 = n2 = 2. Temperature 20 and
    # 22 °C: 21 °C. Humidity 40 %.
    put(admin, CM1, "air.co2", [(utc(2026, 3, 9, 8, 10 * i), v) for i, v in
                                enumerate([800, 1200, 1500, 1800, 2000, 900])])
    put(admin, CM1, "air.temperature", [(utc(2026, 3, 9, 8, 15), 20), (utc(2026, 3, 9, 8, 45), 22)])
    put(admin, CM1, "air.humidity", [(utc(2026, 3, 9, 8, 15), 40)])
    refresh(admin, asettings)
    def cm1() -> list[tuple[Any, ...]]:
        return [(round(h.co2_avg or 0, 2), h.co2_max, h.temperature_avg, h.humidity_avg)
                for h in air.room_hours(admin, SCHEMA, utc(2026, 3, 9, 8), utc(2026, 3, 9, 9))
                if h.room == "CM1"]

    assert cm1() == [(1366.67, 2000.0, 21.0, 40.0)]
    assert _rows(admin, "SELECT n0, n1, n2 FROM {s}.air_hourly WHERE dev_eui = %s"
                        " AND bucket = '2026-03-09 08:00+00'", CM1) == [(2, 2, 2)]
    # A late temperature alone (24 °C at 08:30) reaches the room's hour: 66 / 3 = 22 °C.
    put(admin, CM1, "air.temperature", [(utc(2026, 3, 9, 8, 30), 24)])
    refresh(admin, asettings)
    assert cm1() == [(1366.67, 2000.0, 22.0, 40.0)]


def test_each_containers_state_is_kept_at_its_latest_reading(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    refresh(admin, asettings)
    # As in test_waste. Glass: emptied on 10 March at 15:00 UTC (90 -> 5 %), then 5, 15,
    # 25, 35 % a day apart: 10 points a day over the four readings since the collection.
    # Paper reports its distance (depth 1500 mm): 750 then 450 mm, 50 then 70 %, 20 points
    # in a day. Plastic: one reading, 85 %, no rate.
    put(admin, GLASS, "fill.level", [
        (utc(2026, 3, 10, 8), 85), (utc(2026, 3, 10, 14), 90), (utc(2026, 3, 10, 15), 5),
        (utc(2026, 3, 11, 15), 15), (utc(2026, 3, 12, 15), 25), (utc(2026, 3, 13, 15), 35)])
    put(admin, PAPER, "fill.distance", [(utc(2026, 3, 12, 15), 750), (utc(2026, 3, 13, 15), 450)])
    put(admin, PLASTIC, "fill.level", [(utc(2026, 3, 13, 10), 85)])
    refresh(admin, asettings)
    assert _rows(admin, "SELECT dev_eui, measured_at, level_pct, last_collection,"
                        " round(rate_pct_per_day::numeric, 9)::float, rate_readings"
                        " FROM {s}.waste_containers ORDER BY dev_eui") == [
        (GLASS, utc(2026, 3, 13, 15), 35.0, utc(2026, 3, 10, 15), 10.0, 4),
        (PAPER, utc(2026, 3, 13, 15), 70.0, None, 20.0, 2),
        (PLASTIC, utc(2026, 3, 13, 10), 85.0, None, None, 1),
    ]
    assert _rows(admin, "SELECT dev_eui, fill_pct, fill_status FROM {s}.dash_waste_latest"
                        " ORDER BY dev_eui") == [
        (GLASS, 35.0, "Normal"), (PAPER, 70.0, "Bientôt plein"), (PLASTIC, 85.0, "À vider")]

    # Glass fills again, read up to an hour ago: 35, 55, 75 % a day apart, 20 points a
    # day since the collection; (100 - 75) / 20 = 1.25 days until full, from that reading.
    # Paper's rate is months old: the view no longer shows it.
    now = admin.execute("SELECT now()").fetchone()[0]
    last = now.replace(microsecond=0) - dt.timedelta(hours=1)
    put(admin, GLASS, "fill.level", [(last - dt.timedelta(days=2), 35),
                                     (last - dt.timedelta(days=1), 55), (last, 75)])
    refresh(admin, asettings)
    rows = _rows(admin, "SELECT dispositif, niveau_pct, mesure_le, derniere_collecte,"
                        " round(vitesse_pct_par_jour::numeric, 9)::float,"
                        " round(jours_avant_plein::numeric, 9)::float, plein_le"
                        " FROM {s}.v_dechets_conteneurs ORDER BY dispositif")
    assert rows == [
        (GLASS, 75.0, last, utc(2026, 3, 10, 15), 20.0, 1.25, last + dt.timedelta(hours=30)),
        (PAPER, 70.0, utc(2026, 3, 13, 15), None, None, None, None),
        (PLASTIC, 85.0, utc(2026, 3, 13, 10), None, None, None, None),
    ]


def test_a_history_rolled_up_before_the_new_tables_gets_them_at_the_next_refresh(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    refresh(admin, asettings)
    put(admin, TOUR, "water.index", hourly(utc(2026, 1, 12, 22), [10.0 * i for i in range(32)]))
    put(admin, CM1, "air.co2", [(utc(2026, 3, 9, 8), 1200), (utc(2026, 3, 9, 8, 10), 900)])
    put(admin, GLASS, "fill.level", [(utc(2026, 3, 10, 8), 20), (utc(2026, 3, 10, 14), 23)])
    refresh(admin, asettings)
    state = (
        "SELECT (SELECT array_agg((day, index_l, readings, history_days) ORDER BY day)::text"
        "        FROM {s}.water_daily),"
        "       (SELECT array_agg((night, hours) ORDER BY night)::text FROM {s}.water_nights),"
        "       (SELECT array_agg((month, volume_l) ORDER BY month)::text FROM {s}.water_monthly),"
        "       (SELECT array_agg((bucket, co2_n, co2_sum) ORDER BY bucket)::text"
        "        FROM {s}.air_hourly),"
        "       (SELECT array_agg((dev_eui, level_pct, rate_readings))::text"
        "        FROM {s}.waste_containers)")
    before = _rows(admin, state)
    # Two nights of 10 L an hour, two readings of CO2 in one hour, a container at 23 %.
    assert "(2026-01-14,4)" in before[0][1] and f"({GLASS},23,2)" in before[0][4]
    assert "2,2100" in before[0][3]

    # As a member rolled up before tenant migration 0063: none of it, and no mark.
    for statement in (
        "UPDATE {s}.water_daily SET index_l = NULL, readings = NULL, history_days = NULL,"
        " history_mean_l = NULL, history_stdev_l = NULL",
        "UPDATE {s}.air_hourly SET co2_n = NULL, co2_sum = NULL, co2_max = NULL",
        "TRUNCATE {s}.water_nights, {s}.water_monthly, {s}.waste_containers",
        "DELETE FROM {s}.rollup_state WHERE stream = 'derived:0063'",
    ):
        admin.execute(statement.replace("{s}", SCHEMA))
    assert refresh(admin, asettings).hours == 0
    assert _rows(admin, state) == before


# What the refresh keeps from the readings of the test below: one day of the meter's
# (dash_water_daily), one container (waste_containers, and the views over it). Three
# daytime readings make no night: water_nights stays empty.
EXPECTED_KEPT = {"waste_containers": (1,), "dash_water_daily": (1,), "dash_waste_latest": (1,),
                 "dash_waste_plan": (1,), "water_nights": (0,), "dash_water_leaks": (0,)}


def test_the_read_only_role_reads_what_the_refresh_keeps(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    put(admin, TOUR, "water.index", hourly(utc(2026, 3, 10, 8), [0, 100, 250]))
    put(admin, GLASS, "fill.level", hourly(utc(2026, 3, 9, 8), [20, 30]))
    refresh(admin, asettings)
    names = ("water_nights", "waste_containers", "dash_water_daily", "dash_waste_latest",
             "dash_water_leaks", "dash_water_abnormal", "dash_waste_plan", "dash_air_days")
    kept = {name: admin.execute(f"SELECT count(*) FROM {SCHEMA}.{name}").fetchone()
            for name in names}
    with connect_as(asettings, "analytica_reader") as reader:
        # The reader sees every row the refresh kept, no fewer.
        assert {name: reader.execute(f"SELECT count(*) FROM {SCHEMA}.{name}").fetchone()
                for name in names} == kept
        # What the refresh derived from the two devices' readings is there to be seen.
        assert {name: kept[name] for name in EXPECTED_KEPT} == EXPECTED_KEPT
        assert reader.execute(f"SELECT consumption_m3 FROM {SCHEMA}.dash_water_daily"
                              ).fetchall() == [(0.25,)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute(f"DELETE FROM {SCHEMA}.waste_containers")


def test_device_health_shows_the_status_battery_else_the_latest_reading(
    member_db: psycopg.Connection[Any],
) -> None:
    admin = member_db
    muted, chatty = "c6c6c6c6c6c60011", "c6c6c6c6c6c60012"
    # The muted sensor's last LoRaWAN status says 55 %, an older reading 10 %: the status
    # wins. The chatty one never sent a status: its latest reading, 15 %, is low (< 20).
    admin.execute(
        f"INSERT INTO {SCHEMA}.device_state (dev_eui, last_seen, battery_level)"
        " VALUES (%s, now(), 55), (%s, now(), NULL)", (muted, chatty))
    put(admin, muted, "battery.level", [(utc(2026, 3, 1), 10)])
    put(admin, chatty, "battery.level", [(utc(2026, 3, 1), 80), (utc(2026, 3, 2), 15)])
    assert _rows(admin, "SELECT dev_eui, battery_pct, health_status FROM {s}.dash_device_health"
                        " WHERE dev_eui IN (%s, %s) ORDER BY dev_eui", muted, chatty) == [
        (muted, 55.0, "Normal"), (chatty, 15.0, "Batterie faible")]

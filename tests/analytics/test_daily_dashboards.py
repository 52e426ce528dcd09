"""The views behind the daily dashboards (tenant migration 0600), read as the member's
read-only role, as Superset reads them: leaks with since when and the volume lost, water
events and data quality, the containers to collect and collections, ICONE and ventilation
advice, energy and lighting in daylight, gateways offline and battery forecasts. Expected
values are worked out by hand in the comments."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from hypervision.db import connect_as
from hypervision.settings import Settings
from tests.analytics.helpers import SCHEMA, declare, put, refresh, utc

pytestmark = pytest.mark.services

TOUR, SWAP, LEAKY, SOBER, BILLED, REGULAR = (
    "c6c6c6c6c6c60001", "c6c6c6c6c6c60002", "c6c6c6c6c6c60003", "c6c6c6c6c6c60004",
    "c6c6c6c6c6c60005", "c6c6c6c6c6c60014",
)
GLASS, PLASTIC = "c6c6c6c6c6c60006", "c6c6c6c6c6c60013"
CM1, CHATTY, BATTERY, LAMP = ("c6c6c6c6c6c60008", "c6c6c6c6c6c60012", "c6c6c6c6c6c60015",
                              "c6c6c6c6c6c60030")


def read(settings: Settings, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of a query on the member's schema, as its read-only role."""
    with connect_as(settings, "analytica_reader") as reader:
        return reader.execute(query.replace("{s}", SCHEMA), params).fetchall()


def index_series(start: dt.datetime, end: dt.datetime, night_l: float, day_l: float,
                 dry: set[dt.datetime] = frozenset()) -> list[tuple[dt.datetime, float]]:
    """Hourly readings of an index that rises by `night_l` an hour from 22:00 to 06:00 UTC
    and `day_l` otherwise; nothing in the hours starting at a time of `dry`."""
    out, t, index = [], start, 1000.0
    while t <= end:
        out.append((t, index))
        if t not in dry:
            index += night_l if (t.hour >= 22 or t.hour < 6) else day_l
        t += dt.timedelta(hours=1)
    return out


def test_a_leak_shows_since_when_and_the_volume_lost(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    # March, Paris is UTC+1: the night window 01:00-05:00 local is 00:00-04:00 UTC. Readings
    # from 9 March 00:00 to 13 March 06:00 UTC: nights ending on the 9th to the 13th, all
    # fully measured. The leaky meter never stops: at least 10 L an hour every night.
    leaky = index_series(utc(2026, 3, 9), utc(2026, 3, 13, 6), 10, 50)
    # The regular one stops for the hour from 02:00 UTC on the 11th: its run restarts on
    # the night of the 12th (two nights, fewer than the three leak_nights by default).
    regular = index_series(utc(2026, 3, 9), utc(2026, 3, 13, 6), 10, 50, {utc(2026, 3, 11, 2)})
    # In two refreshes, as the readings arrive: the runs of the second count on from the
    # nights the first one kept.
    refresh(admin, asettings)
    split = utc(2026, 3, 11, 12)
    put(admin, LEAKY, "water.index", [r for r in leaky if r[0] < split])
    put(admin, REGULAR, "water.index", [r for r in regular if r[0] < split])
    refresh(admin, asettings)
    put(admin, LEAKY, "water.index", [r for r in leaky if r[0] >= split])
    put(admin, REGULAR, "water.index", [r for r in regular if r[0] >= split])
    refresh(admin, asettings)

    # Five nights in a row (9 to 13 March) at 10 L/h at least: 5 x 10 x 24 = 1200 L lost.
    rows = read(asettings, "SELECT dev_eui, since, last_night, nights, night_flow_l_h,"
                " leak_volume_m3, status FROM {s}.dash_water_leaks ORDER BY dev_eui")
    assert rows == [
        (LEAKY, dt.datetime(2026, 3, 9), dt.datetime(2026, 3, 13), 5, 10.0, 1.2,
         "Fuite suspectée"),
        (REGULAR, None, dt.datetime(2026, 3, 13), 2, 10.0, None, "Débit de nuit continu"),
    ]

    declare(admin, asettings, {"analytics": {"water": {"leak_nights": 2}}})
    refresh(admin, asettings)
    rows = read(asettings, "SELECT dev_eui, since, nights, leak_volume_m3"
                " FROM {s}.dash_water_leaks WHERE status = 'Fuite suspectée' ORDER BY dev_eui")
    assert rows == [(LEAKY, dt.datetime(2026, 3, 9), 5, 1.2),
                    (REGULAR, dt.datetime(2026, 3, 12), 2, 0.48)]


def test_events_show_reverse_flows_and_swaps_and_quality_lists_unread_meters(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    # 10:00 UTC: 5300 -> 20, a new meter that counted 20 L; 12:00: 520 -> 480, a reverse
    # flow of 40 L.
    put(admin, SWAP, "water.index", [(utc(2026, 3, 10, 8 + i), v) for i, v in
                                     enumerate([5_000, 5_300, 20, 520, 480, 600])])
    now = admin.execute("SELECT date_trunc('hour', now())").fetchone()[0]
    # The billed meter was read 30 and 29 hours ago, then not for 9 hours (a gap of more
    # than three usual intervals), then 19 hours ago, then 18 hours ago 20 L lower: a
    # reverse flow.
    put(admin, BILLED, "water.index", [(now - dt.timedelta(hours=h), v) for h, v in
                                       ((30, 100), (29, 110), (20, 200), (19, 210), (18, 190))])
    for dev_eui, seen in ((BILLED, now - dt.timedelta(hours=19)),
                          (SOBER, now - dt.timedelta(days=10, hours=1))):
        admin.execute(f"INSERT INTO {SCHEMA}.device_state (dev_eui, last_seen, uplinks_seen)"
                      " VALUES (%s, %s, 1)", (dev_eui, seen))
    refresh(admin, asettings)

    events = read(asettings, "SELECT dev_eui, kind, event, volume_m3, hours_between"
                  " FROM {s}.dash_water_events ORDER BY time")
    assert events == [
        (SWAP, "replacement", "Compteur remplacé", 0.02, 1.0),
        (SWAP, "backflow", "Retour d'eau", -0.04, 1.0),
        (BILLED, "gap", "Relèves manquantes", 0.09, 9.0),
        (BILLED, "backflow", "Retour d'eau", -0.02, 1.0),
    ]
    quality = {r[0]: r[1:] for r in read(
        asettings, "SELECT dev_eui, days_without_reading, gaps_30d, gap_hours_30d, quality"
        " FROM {s}.dash_water_quality")}
    assert quality[BILLED] == (0, 1, 9.0, "Relèves manquantes")
    assert quality[SOBER] == (10, 0, 0, "Non relevé depuis 7 jours ou plus")
    assert quality[TOUR] == (None, 0, 0, "Jamais relevé")
    assert set(quality) == {TOUR, SWAP, LEAKY, SOBER, BILLED, REGULAR}  # water meters only
    # Events of the last 30 days: the billed meter's reverse flow; the swap's events are
    # from March 2026, long before.
    events_30d = read(asettings, "SELECT dev_eui, backflows_30d, backflow_m3_30d,"
                      " replacements_30d FROM {s}.dash_water_quality"
                      " WHERE dev_eui IN (%s, %s) ORDER BY dev_eui", SWAP, BILLED)
    assert events_30d == [(SWAP, 0, 0, 0), (BILLED, 1, 0.02, 0)]


def test_a_day_far_above_the_meters_usual_days_is_abnormal(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    # 4 L an hour from 1 to 22 February (UTC), 40 L an hour on 21 February (UTC). The local
    # day of the 21st (from 23:00 UTC on the 20th) holds one hour at 4 L and 23 at 40 L:
    # 924 L, against about 96 L a day on the 14 days and more before it. The 22nd (132 L)
    # has the 21st in its history, hence a wide deviation: not abnormal.
    start = utc(2026, 2, 1)
    readings, index = [], 0.0
    for i in range(22 * 24):
        t = start + dt.timedelta(hours=i)
        readings.append((t, index))
        index += 40 if t.date() == dt.date(2026, 2, 21) else 4
    put(admin, SOBER, "water.index", readings)
    refresh(admin, asettings)

    rows = read(asettings, "SELECT day, consumption_m3, abnormal FROM {s}.dash_water_abnormal"
                " WHERE dev_eui = %s ORDER BY day", SOBER)
    assert [(r[0], r[1]) for r in rows if r[2]] == [(dt.datetime(2026, 2, 21), 0.924)]
    assert len(rows) == 22 and rows[-1][1] == 0.132


def test_containers_to_collect_and_collections(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    # Glass: emptied at 15:00 on the 10th (90 % -> 5 %), 35 % now; plastic at 85 %, above
    # the 80 % threshold.
    put(admin, GLASS, "fill.level", [
        (utc(2026, 3, 10, 14), 90), (utc(2026, 3, 10, 15), 5), (utc(2026, 3, 13, 15), 35)])
    put(admin, PLASTIC, "fill.level", [(utc(2026, 3, 13, 10), 85)])
    refresh(admin, asettings)

    plan = read(asettings, "SELECT dev_eui, fill_pct, to_collect, decision, reason"
                " FROM {s}.dash_waste_plan ORDER BY fill_pct DESC")
    assert plan == [(PLASTIC, 85.0, True, "À collecter", "Seuil dépassé"),
                    (GLASS, 35.0, False, "Pas encore", "")]
    assert read(asettings, "SELECT dev_eui, time_local, level_before_pct, level_after_pct"
                " FROM {s}.dash_waste_collections") == [
        (GLASS, dt.datetime(2026, 3, 10, 16), 90.0, 5.0)]


def test_icone_per_room_and_ventilation_advice(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    # Seven occupied readings, ten minutes apart, from 10:00 local on a weekday: below
    # 1000 ppm 3 (n0), 1000 to 1700 ppm 3 (n1), above 1700 ppm 1 (n2). ICONE =
    # round(8.3048 x log10(1 + 3/7 + 3 x 1/7)) = round(8.3048 x 0.26885) = round(2.23) = 2.
    co2 = [900, 1100, 1200, 1800, 800, 1600, 700]
    paris = ZoneInfo("Europe/Paris")
    day = dt.datetime.now(paris).date() - dt.timedelta(days=1)
    while day.weekday() >= 5:
        day -= dt.timedelta(days=1)
    recent = dt.datetime.combine(day, dt.time(10), paris).astimezone(dt.UTC)
    put(admin, CM1, "air.co2", [(utc(2026, 3, 10, 9) + dt.timedelta(minutes=10 * i), v)
                                for i, v in enumerate(co2)])
    put(admin, CM1, "air.co2", [(recent + dt.timedelta(minutes=10 * i), v)
                                for i, v in enumerate(co2)])
    refresh(admin, asettings)

    days = read(asettings, "SELECT day, building, room, n0, n1, n2, {s}.icone_index(n1, n2,"
                " n0 + n1 + n2) FROM {s}.dash_air_days WHERE day = '2026-03-10'")
    assert days == [(dt.datetime(2026, 3, 10), "École Jules Ferry", "CM1", 3, 3, 1, 2)]
    advice = read(asettings, "SELECT building, room, icone, icone_label, above_1000_pct,"
                  " advice FROM {s}.dash_air_advice")
    # Above 1000 ppm: 4 of the 7 occupied readings, 57.1 %.
    assert advice == [("École Jules Ferry", "CM1", 2, "Moyen", Decimal("57.1"),
                       "Aérer à chaque pause (récréation, midi)")]


def test_energy_per_day_burning_hours_and_lamps_on_in_daylight(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    start = utc(2026, 3, 10)
    # The cabinet's counter rises by 1 kWh an hour, read on the hour for 48 hours. Local
    # days (UTC+1): the 10th holds the readings of 00:00 to 22:00 UTC, 0 to 22 kWh: 22 kWh;
    # the 11th rises from 22 kWh (the 10th's last) to 46: 24 kWh; the 12th, 46 to 47: 1.
    put(admin, LAMP, "energy.active", [(start + dt.timedelta(hours=i), 1000.0 * i)
                                       for i in range(48)])
    # Lit from 19:00 to 06:00 UTC (sunset is after 18:00 UTC, sunrise after 06:00 UTC in
    # Brittany in March), and once by mistake at noon on the 10th.
    put(admin, LAMP, "lamp.on", [
        (start + dt.timedelta(hours=i),
         1.0 if (i % 24 >= 19 or i % 24 < 6 or i == 12) else 0.0) for i in range(48)])
    refresh(admin, asettings)

    energy = read(asettings, "SELECT day, device_name, building, energy_kwh"
                  " FROM {s}.dash_energy_daily ORDER BY day")
    assert energy == [
        (dt.datetime(2026, 3, 10), "Armoire place de la mairie", "Mairie", 22.0),
        (dt.datetime(2026, 3, 11), "Armoire place de la mairie", "Mairie", 24.0),
        (dt.datetime(2026, 3, 12), "Armoire place de la mairie", "Mairie", 1.0),
    ]
    # 48 hours: 6 (00-05) + 5 (19-23) each day, and the noon hour: 23 hours lit, of which
    # one in daylight.
    lit = read(asettings, "SELECT sum(burning_hours), sum(daylight_hours),"
               " array_agg(time_local) FILTER (WHERE daylight_hours > 0)"
               " FROM {s}.dash_lighting_hours")
    assert lit == [(23.0, 1.0, [dt.datetime(2026, 3, 10, 13)])]
    # The sun at noon (UTC) on the June solstice at 48 degrees North on the Greenwich
    # meridian: 90 - 48 + 23.44 = 65.4 degrees; at midnight, below the horizon.
    noon, midnight = read(asettings, "SELECT {s}.sun_elevation('2026-06-21 12:00Z', 48, 0),"
                          " {s}.sun_elevation('2026-06-21 00:00Z', 48, 0)")[0]
    assert abs(noon - 65.4) < 0.5 and midnight < -15


def test_gateways_offline_and_battery_forecast(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    now = admin.execute("SELECT now()").fetchone()[0]
    for i, (ago, gateways) in enumerate(((dt.timedelta(hours=3), ["gw-a", "gw-b"]),
                                         (dt.timedelta(minutes=5), ["gw-b"]))):
        admin.execute(
            f"INSERT INTO {SCHEMA}.uplinks (time, received_at, dev_eui, deduplication_id,"
            " f_cnt, f_port, data, rssi, snr, gateway_count, gateways, event)"
            " VALUES (%s, %s, %s, %s, %s, 85, '\\x01', -100, 5, %s, %s, %s)",
            (now - ago, now - ago, CHATTY, uuid.uuid4(), i + 1, len(gateways), gateways,
             json.dumps({"fCnt": i + 1})))
    # Ten daily levels, 0.5 point lower each day, the last yesterday at 55.5 %: 35.5 points
    # above the 20 % threshold at 0.5 a day, 71 days.
    today = dt.datetime.now(dt.UTC).date()
    put(admin, BATTERY, "battery.level", [
        (dt.datetime.combine(today - dt.timedelta(days=10 - i), dt.time(12), dt.UTC),
         60 - 0.5 * i) for i in range(10)])
    refresh(admin, asettings)

    gateways = read(asettings, "SELECT gateway_id, uplinks_24h, status FROM {s}.dash_gateways"
                    " ORDER BY gateway_id")
    assert gateways == [("gw-a", 1, "Hors ligne"), ("gw-b", 2, "En ligne")]
    forecast = read(asettings, "SELECT dev_eui, battery_pct, slope_pct_day, days_to_low,"
                    " forecast FROM {s}.dash_battery_forecast")
    assert forecast == [(BATTERY, 55.5, -0.5, 71, "À remplacer sous 3 mois")]

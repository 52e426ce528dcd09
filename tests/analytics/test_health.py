"""Device and network health: a silent device, a loss rate from frame counters (with a
rejoin and a repeat), an RSSI/SNR trend, a low battery, a gateway that stopped hearing."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from hypervision.analytics import health
from hypervision.analytics.config import HealthSettings
from hypervision.settings import Settings
from tests.analytics.helpers import SCHEMA, put, refresh

pytestmark = pytest.mark.services

MUTE, CHATTY, BATTERY = "c6c6c6c6c6c60011", "c6c6c6c6c6c60012", "c6c6c6c6c6c60015"


def _uplink(admin: psycopg.Connection[Any], dev_eui: str, time: dt.datetime, f_cnt: int,
            rssi: int = -100, snr: float = 5.0, gateways: tuple[str, ...] = ("gw-a",)) -> None:
    admin.execute(
        f"INSERT INTO {SCHEMA}.uplinks (time, received_at, dev_eui, deduplication_id, f_cnt,"
        " f_port, data, rssi, snr, gateway_count, gateways, event)"
        " VALUES (%s, %s, %s, %s, %s, 85, '\\x01', %s, %s, %s, %s, %s)",
        (time, time, dev_eui, uuid.uuid4(), f_cnt, rssi, snr, len(gateways), list(gateways),
         json.dumps({"fCnt": f_cnt})),
    )


def _seen(admin: psycopg.Connection[Any], dev_eui: str, last_seen: dt.datetime) -> None:
    admin.execute(
        f"INSERT INTO {SCHEMA}.device_state (dev_eui, last_seen, uplinks_seen) VALUES (%s, %s, 1)",
        (dev_eui, last_seen))


def test_silence_loss_rate_radio_trend_and_battery(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    refresh(admin, asettings)  # copies the member's devices into its schema
    now = dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)
    # Usual interval 600 s, silent after 3 x 600 = 30 min: two hours is silent.
    _seen(admin, MUTE, now - dt.timedelta(hours=2))
    _seen(admin, CHATTY, now - dt.timedelta(minutes=5))
    _seen(admin, BATTERY, now - dt.timedelta(minutes=1))
    # Counters 1 2 3 5 6 10, a rejoin (1 2), then 2 again (a repeat): sent 1+1+1+2+1+4 in
    # the first session and 2 in the second, 12; received 8 distinct; lost 4/12 = 1/3.
    # Every 12 hours, RSSI falls by 1 dB and SNR by 0.25 dB: -2 dB and -0.5 dB a day.
    for i, f_cnt in enumerate((1, 2, 3, 5, 6, 10, 1, 2, 2)):
        _uplink(admin, CHATTY, now - dt.timedelta(hours=12 * (8 - i)), f_cnt, -90 - i,
                10 - 0.25 * i)
    put(admin, BATTERY, "battery.level", [(now - dt.timedelta(hours=1), 15.0)])

    found = {d.dev_eui: d for d in health.devices(admin, SCHEMA, now, HealthSettings())}
    assert found[MUTE].silent and not found[CHATTY].silent and not found[BATTERY].silent
    chatty = found[CHATTY]
    assert (chatty.uplinks, chatty.expected_uplinks) == (8, 12)
    assert round(chatty.loss_rate, 6) == round(1 / 3, 6)
    assert round(chatty.rssi_slope_per_day, 6) == -2.0
    assert round(chatty.snr_slope_per_day, 6) == -0.5
    assert round(chatty.rssi_avg, 6) == -94.0
    assert (found[BATTERY].battery_pct, found[BATTERY].battery_low) == (15.0, True)
    assert found[CHATTY].battery_low is False
    silent = health.silent_devices(admin, SCHEMA, now, HealthSettings())
    assert [d.dev_eui for d in silent if d.last_seen is not None] == [MUTE]
    # Never heard at all: silent too.
    never = [d.dev_eui for d in found.values() if d.last_seen is None]
    assert never and {d.dev_eui for d in silent} == {MUTE, *never}

    refresh(admin, asettings)
    view = dict(admin.execute(
        f"SELECT dev_eui, coalesce(battery_pct < 20, false) FROM {SCHEMA}.dash_device_health"
        " WHERE dev_eui = ANY(%s)", ([MUTE, BATTERY],)).fetchall())
    assert view == {MUTE: False, BATTERY: True}


def test_a_gateway_that_stopped_hearing_is_reported(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    now = admin.execute("SELECT now()").fetchone()[0]
    _uplink(admin, CHATTY, now - dt.timedelta(hours=3), 1, gateways=("gw-a", "gw-b"))
    _uplink(admin, CHATTY, now - dt.timedelta(hours=2), 2, gateways=("gw-a", "gw-b"))
    _uplink(admin, CHATTY, now - dt.timedelta(minutes=5), 3, gateways=("gw-b",))
    refresh(admin, asettings)

    found = {g.gateway_id: g for g in health.gateways(admin, SCHEMA, now, HealthSettings())}
    assert found["gw-a"].silent and found["gw-a"].last_heard == now - dt.timedelta(hours=2)
    assert not found["gw-b"].silent
    assert found["gw-b"].last_heard == now - dt.timedelta(minutes=5)
    assert (found["gw-a"].uplinks_24h, found["gw-b"].uplinks_24h) == (2, 3)
    muted = dict(admin.execute(f"SELECT passerelle, muette FROM {SCHEMA}.v_sante_passerelles"
                               ).fetchall())
    assert muted == {"gw-a": True, "gw-b": False}


def test_silences_on_the_dashboards_are_never_negative(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    """A gateway heard during the current hour was "heard until" the end of that hour, in
    the future (a negative silence); a device whose last uplink is timed a little ahead of
    the database's clock (ChirpStack's time, from another host) showed one too."""
    admin = member_db
    refresh(admin, asettings)
    now = admin.execute("SELECT now()").fetchone()[0]
    _uplink(admin, CHATTY, now, 1, gateways=("gw-a",))
    refresh(admin, asettings)
    heard, silent = admin.execute(
        f"SELECT heard_until, hours_silent FROM {SCHEMA}.dash_gateways"
        " WHERE gateway_id = 'gw-a'").fetchone()
    local = now.astimezone(ZoneInfo("Europe/Paris")).replace(tzinfo=None)
    assert (heard, silent) == (local, 0)

    water = "c6c6c6c6c6c60001"
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=40)
    _seen(admin, CHATTY, ahead)
    _seen(admin, water, ahead)
    hours = admin.execute(f"SELECT hours_since_seen FROM {SCHEMA}.dash_device_health"
                          " WHERE dev_eui = %s", (CHATTY,)).fetchone()[0]
    days = admin.execute(f"SELECT days_without_reading FROM {SCHEMA}.dash_water_quality"
                         " WHERE dev_eui = %s", (water,)).fetchone()[0]
    assert (hours, days) == (0, 0)
    # A device never heard has no silence at all (not 0).
    never = admin.execute(f"SELECT hours_since_seen FROM {SCHEMA}.dash_device_health"
                          " WHERE dev_eui = %s", (MUTE,)).fetchone()
    assert never == (None,)


def test_radio_days_and_the_operators_gateway_activity(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    """The refresh keeps each device's uplinks, RSSI and SNR per local day (radio_daily,
    what the health dashboard's week reads); the operator's gateway activity over 24 hours
    reads the members' gateway_hourly before the hour of their last refresh and the raw
    uplinks after it, each uplink counted once."""
    admin = member_db
    now = admin.execute("SELECT now()").fetchone()[0]
    five = now - dt.timedelta(hours=5)
    _uplink(admin, CHATTY, five, 1, gateways=("gw-a", "gw-b"))
    _uplink(admin, CHATTY, five + dt.timedelta(minutes=1), 2, gateways=("gw-a",))
    _uplink(admin, CHATTY, now - dt.timedelta(hours=30), 3, gateways=("gw-a",))
    # In the hour of the refresh: in its hour row and in the raw uplinks read after it.
    _uplink(admin, CHATTY, now, 4, gateways=("gw-c",))
    # Two uplinks of another device within one hour, so one local day.
    heard = five.replace(minute=10, second=0, microsecond=0)
    _uplink(admin, BATTERY, heard, 1, rssi=-90, snr=4.0, gateways=("gw-a",))
    _uplink(admin, BATTERY, heard + dt.timedelta(minutes=1), 2, rssi=-100, snr=6.0,
            gateways=("gw-a",))
    refresh(admin, asettings)

    day = heard.astimezone(ZoneInfo("Europe/Paris")).date()
    assert admin.execute(
        f"SELECT day, uplinks, rssi_sum::float / rssi_n, snr_sum / snr_n"
        f" FROM {SCHEMA}.dash_radio_days WHERE dev_eui = %s", (BATTERY,)
    ).fetchall() == [(dt.datetime.combine(day, dt.time()), 2, -95.0, 5.0)]
    assert admin.execute(f"SELECT sum(uplinks) FROM {SCHEMA}.radio_daily"
                         " WHERE dev_eui = %s", (CHATTY,)).fetchone() == (4,)

    # Heard after the refresh: in no hour row yet, counted from the raw uplinks.
    late = now - dt.timedelta(minutes=1)
    _uplink(admin, CHATTY, late, 5, gateways=("gw-b",))
    activity = {r[0]: r[1:] for r in admin.execute(
        "SELECT gateway_id, uplinks, members, last_heard"
        " FROM hv_operator.gateway_activity_counts(24)").fetchall()}
    last_a = max(five, heard) + dt.timedelta(minutes=1)
    assert activity == {"gw-a": (4, 1, last_a),
                        "gw-b": (2, 1, late), "gw-c": (1, 1, now)}
    # The hours before the refresh's come from gateway_hourly, not from the uplinks.
    admin.execute(f"UPDATE {SCHEMA}.gateway_hourly SET uplinks = uplinks + 10"
                  " WHERE gateway_id = 'gw-a' AND bucket = %s",
                  (five.replace(minute=0, second=0, microsecond=0),))
    assert admin.execute("SELECT uplinks FROM hv_operator.gateway_activity_counts(24)"
                         " WHERE gateway_id = 'gw-a'").fetchone() == (14,)


def test_uplinks_stored_late_are_counted_in_their_own_hours(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    """The hours of gateway activity and the days of radio reception follow the uplinks'
    ingestion, not their time: a history published after a refresh (the demo's, a
    gateway's backlog) is counted in its hours and days by the next refresh."""
    admin = member_db
    now = admin.execute("SELECT now()").fetchone()[0]
    _uplink(admin, CHATTY, now - dt.timedelta(minutes=2), 1, gateways=("gw-a",))
    refresh(admin, asettings)
    old = (now - dt.timedelta(days=3)).replace(minute=10, second=0, microsecond=0)
    _uplink(admin, CHATTY, old, 2, rssi=-111, gateways=("gw-z",))
    _uplink(admin, CHATTY, old + dt.timedelta(minutes=20), 3, rssi=-113, gateways=("gw-z",))
    refresh(admin, asettings)

    day = old.astimezone(ZoneInfo("Europe/Paris")).date()
    assert admin.execute(
        f"SELECT uplinks, rssi_sum, rssi_n FROM {SCHEMA}.radio_daily"
        " WHERE dev_eui = %s AND day = %s", (CHATTY, day)).fetchone() == (2, -224, 2)
    assert admin.execute(
        f"SELECT uplinks, devices, last_heard FROM {SCHEMA}.gateway_hourly"
        " WHERE gateway_id = 'gw-z'").fetchall() == [(2, 1, old + dt.timedelta(minutes=20))]
    # Refreshing again with nothing new changes nothing.
    refresh(admin, asettings)
    assert admin.execute(f"SELECT sum(uplinks) FROM {SCHEMA}.radio_daily").fetchone() == (3,)

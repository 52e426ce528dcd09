"""Rollups: hourly and daily aggregates worked out by hand, late readings, a write
transaction that commits after a refresh, the first refresh, and the backfill command."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from hypervision.analytics import members, rollups
from hypervision.commands import analytics
from hypervision.settings import Settings
from tests.analytics.helpers import SCHEMA, SLUG, put, refresh, utc

pytestmark = pytest.mark.services

AIR = "c6c6c6c6c6c60008"
TEMPERATURE = "air.temperature"


def _hourly(admin: psycopg.Connection[Any]) -> list[tuple]:
    return admin.execute(
        f"SELECT bucket, n, min, max, round((sum / n)::numeric, 3)::float, first, last"
        f" FROM {SCHEMA}.rollup_hourly WHERE dev_eui = %s AND metric = %s ORDER BY bucket",
        (AIR, TEMPERATURE)).fetchall()


def _daily(admin: psycopg.Connection[Any]) -> list[tuple]:
    return admin.execute(
        f"SELECT day, n, min, max, sum, first, last FROM {SCHEMA}.rollup_daily"
        " WHERE dev_eui = %s AND metric = %s ORDER BY day", (AIR, TEMPERATURE)).fetchall()


READINGS = [
    (utc(2026, 3, 10, 8, 10), 20.0),
    (utc(2026, 3, 10, 8, 20), 21.0),
    (utc(2026, 3, 10, 8, 50), 23.0),
    (utc(2026, 3, 10, 9, 5), 22.0),
    # 00:30 on 11 March in Paris (UTC+1): the next local day.
    (utc(2026, 3, 10, 23, 30), 18.0),
]


def test_hourly_and_daily_rollups_match_hand_computed_values(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    refresh(admin, asettings)
    put(admin, AIR, TEMPERATURE, READINGS)
    result = refresh(admin, asettings)
    assert (result.hours, result.days, result.devices) == (3, 2, 1)
    # 08:00: 20, 21, 23 -> n 3, min 20, max 23, mean 64 / 3 = 21.333, first 20, last 23.
    assert _hourly(admin) == [
        (utc(2026, 3, 10, 8), 3, 20.0, 23.0, 21.333, 20.0, 23.0),
        (utc(2026, 3, 10, 9), 1, 22.0, 22.0, 22.0, 22.0, 22.0),
        (utc(2026, 3, 10, 23), 1, 18.0, 18.0, 18.0, 18.0, 18.0),
    ]
    # Local days: the 10th holds 20, 21, 23, 22 (sum 86, first 20, last 22); the 11th, 18.
    assert _daily(admin) == [
        (dt.date(2026, 3, 10), 4, 20.0, 23.0, 86.0, 20.0, 22.0),
        (dt.date(2026, 3, 11), 1, 18.0, 18.0, 18.0, 18.0, 18.0),
    ]
    # Nothing new: nothing recomputed.
    assert refresh(admin, asettings).hours == 0


def test_a_late_reading_is_rolled_up_in_its_own_hour_and_day(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    put(admin, AIR, TEMPERATURE, READINGS)
    refresh(admin, asettings)
    # Three days late, and into an hour that already has a rollup.
    put(admin, AIR, TEMPERATURE, [(utc(2026, 3, 7, 12), 19.0), (utc(2026, 3, 10, 8, 30), 26.0)])
    result = refresh(admin, asettings)
    assert (result.hours, result.days) == (2, 2)
    rows = _hourly(admin)
    assert rows[0] == (utc(2026, 3, 7, 12), 1, 19.0, 19.0, 19.0, 19.0, 19.0)
    # 08:00 now holds 20, 21, 26, 23: mean 90 / 4 = 22.5, max 26, last still 23 (08:50).
    assert rows[1] == (utc(2026, 3, 10, 8), 4, 20.0, 26.0, 22.5, 20.0, 23.0)
    assert _daily(admin)[1][:2] == (dt.date(2026, 3, 10), 5)
    assert rollups.lag(admin, members.member(admin, SLUG)).pending == 0


def test_a_transaction_committing_after_a_refresh_is_rolled_up_by_the_next(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    refresh(admin, asettings)
    with psycopg.connect(asettings.admin_conninfo()) as writer:
        # Written (not committed) before the refresh takes its snapshot...
        put(writer, AIR, TEMPERATURE, [(utc(2026, 3, 10, 10), 25.0)])
        assert refresh(admin, asettings).hours == 0
        writer.commit()
    # ... so its row is not covered by that snapshot and the next refresh picks it up,
    # although a refresh ran after the row's transaction began.
    assert rollups.lag(admin, members.member(admin, SLUG)).pending == 1
    assert refresh(admin, asettings).hours == 1
    assert _hourly(admin) == [(utc(2026, 3, 10, 10), 1, 25.0, 25.0, 25.0, 25.0, 25.0)]


def test_the_first_refresh_rolls_up_what_the_member_already_holds(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    put(admin, AIR, TEMPERATURE, READINGS)
    result = refresh(admin, asettings)
    assert result.first_run and result.hours == 3
    assert len(_hourly(admin)) == 3
    assert refresh(admin, asettings).hours == 0


def test_the_backfill_command_rebuilds_a_range_with_progress(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    put(admin, AIR, TEMPERATURE, READINGS)
    refresh(admin, asettings)
    before_hours, before_days = _hourly(admin), _daily(admin)
    admin.execute(f"TRUNCATE {SCHEMA}.rollup_hourly, {SCHEMA}.rollup_daily")

    app = typer.Typer()
    analytics.register(app)
    result = CliRunner().invoke(app, ["rollups", "backfill", SLUG, "--from", "2026-03-09",
                                      "--to", "2026-03-12", "--slice-days", "1"])
    assert result.exit_code == 0, result.output
    assert "3/3" in result.output and "3 hours" in result.output
    assert _hourly(admin) == before_hours
    assert _daily(admin) == before_days
    audit = admin.execute(
        "SELECT rows FROM hv.audit_log WHERE member_slug = %s AND action = 'rollups.backfill'"
        " ORDER BY id DESC LIMIT 1", (SLUG,)).fetchone()
    assert audit == (3,)

    refreshed = CliRunner().invoke(app, ["rollups", "refresh", "--member", SLUG])
    assert refreshed.exit_code == 0 and "analytica: 0 hours" in refreshed.output
    status = CliRunner().invoke(app, ["rollups", "status", "-m", SLUG])
    assert status.exit_code == 0 and SLUG in status.output
    wrong = CliRunner().invoke(app, ["rollups", "backfill", SLUG, "--from", "2026-03-12",
                                     "--to", "2026-03-09"])
    assert wrong.exit_code == 1


def test_the_copy_of_the_devices_follows_the_catalogue(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    refresh(admin, asettings)
    name = f"SELECT name, active FROM {SCHEMA}.analytics_devices WHERE dev_eui = %s"
    assert admin.execute(name, (AIR,)).fetchone() == ("Air CM1", True)
    try:
        # As `tenants apply` does: the row and its updated_at change together.
        admin.execute("UPDATE hv.devices SET name = 'Air CM1 bis', updated_at = now()"
                      " WHERE dev_eui = %s", (AIR,))
        refresh(admin, asettings)
        assert admin.execute(name, (AIR,)).fetchone() == ("Air CM1 bis", True)
        admin.execute("UPDATE hv.devices SET active = false, updated_at = now()"
                      " WHERE dev_eui = %s", (AIR,))
        refresh(admin, asettings)
        assert admin.execute(name, (AIR,)).fetchone() == ("Air CM1 bis", False)
    finally:
        admin.execute("UPDATE hv.devices SET name = 'Air CM1', active = true,"
                      " updated_at = now() WHERE dev_eui = %s", (AIR,))
    refresh(admin, asettings)
    assert admin.execute(name, (AIR,)).fetchone() == ("Air CM1", True)

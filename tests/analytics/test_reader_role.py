"""The analytics functions the API calls work with the member's read-only role, and that
role cannot write the analytics tables."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from hypervision.alerts import lifecycle
from hypervision.analytics import air, health, members, waste, water
from hypervision.db import connect_as
from hypervision.settings import Settings
from tests.analytics.helpers import SCHEMA, hourly, put, refresh, utc

pytestmark = pytest.mark.services


def test_the_read_only_role_can_call_every_reading_function(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    put(admin, "c6c6c6c6c6c60001", "water.index", hourly(utc(2026, 3, 10, 8), [0, 100, 250]))
    put(admin, "c6c6c6c6c6c60008", "air.co2", hourly(utc(2026, 3, 9, 8), [900, 1200]))
    put(admin, "c6c6c6c6c6c60006", "fill.level", hourly(utc(2026, 3, 9, 8), [20, 30]))
    refresh(admin, asettings)

    with connect_as(asettings, "analytica_reader") as reader:
        config = members.settings_of(reader, SCHEMA)
        volumes = water.consumption(reader, SCHEMA, "c6c6c6c6c6c60001", utc(2026, 3, 10),
                                    utc(2026, 3, 11), "day", config.timezone)
        assert [c.volume_l for c in volumes] == [250.0]
        assert water.index_at(reader, SCHEMA, "c6c6c6c6c6c60001", utc(2026, 3, 10, 8, 30),
                              water.Meter()).index_l == 50.0
        assert water.leaks(reader, SCHEMA, dt.date(2026, 3, 10), config.water,
                           config.timezone) == []
        assert water.abnormal_days(reader, SCHEMA, dt.date(2026, 3, 10), dt.date(2026, 3, 10),
                                   config.water) == []
        assert [r.room for r in air.rooms(reader, SCHEMA, utc(2026, 3, 9), utc(2026, 3, 10))] == [
            "CM1"]
        assert air.room_hours(reader, SCHEMA, utc(2026, 3, 9), utc(2026, 3, 10))
        assert waste.containers(reader, SCHEMA, config.waste, utc(2026, 3, 9, 12))
        assert health.devices(reader, SCHEMA, utc(2026, 3, 10), config.health)
        assert health.gateways(reader, SCHEMA, utc(2026, 3, 10), config.health) == []
        assert lifecycle.alerts(reader, SCHEMA) == []
        for view in ("dash_water_daily", "dash_air_days", "dash_waste_plan",
                     "dash_device_health", "dash_gateways", "dash_measurements"):
            reader.execute(f"SELECT * FROM {SCHEMA}.{view} LIMIT 1").fetchall()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute(f"DELETE FROM {SCHEMA}.water_hourly")

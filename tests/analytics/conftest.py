"""Fixtures of the analytics tests: the test member `analytica` (tests/analytics/tenants)
applied once, then before each test its tables emptied and its declaration put back as in
its file (no `analytics:` nor `alerts:` there: the defaults, no rules). A test declares
settings or rules with `helpers.declare`, through the tenant spec as in production."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hypervision.settings import Settings
from tests.analytics.helpers import SCHEMA, TENANTS, restore

TABLES = (
    "alert_notifications", "alerts", "measurements", "uplinks", "device_state",
    "rollup_state", "rollup_hourly", "rollup_daily", "water_hourly", "water_daily",
    "water_monthly", "water_events", "water_nights", "air_hourly", "air_daily",
    "waste_collections", "waste_containers",
    "gateway_hourly", "radio_daily", "battery_trends", "analytics_settings",
)


@pytest.fixture(scope="session")
def asettings(platform_db: Settings) -> Settings:
    """The platform's settings, once the test member is applied next to alpha and beta."""
    from hypervision.db import connect_admin
    from hypervision.tenancy import apply as tenancy
    from hypervision.tenancy.spec import load_dir
    from ingest.decode import Catalogue

    with connect_admin(platform_db) as conn:
        tenancy.apply(conn, load_dir(TENANTS), Catalogue.load(), platform_db,
                      log=lambda _: None)
    return platform_db


@pytest.fixture
def member_db(asettings: Settings, admin: psycopg.Connection[Any]) -> Iterator[
        psycopg.Connection[Any]]:
    """The superuser connection, with the test member's tables empty and its declaration
    as in its file."""
    restore(admin, asettings)
    admin.execute(sql.SQL("TRUNCATE {} CASCADE").format(
        sql.SQL(", ").join(sql.Identifier(SCHEMA, t) for t in TABLES)))
    yield admin

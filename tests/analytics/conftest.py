"""Fixtures of the analytics tests: the test member `analytica` (tests/analytics/tenants)
applied once, its tables emptied before each test, and settings whose analytics folder is
the test's own temporary folder (no file there: the defaults)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hypervision.settings import Settings
from tests.analytics.helpers import SCHEMA, TENANTS

TABLES = (
    "alert_notifications", "alerts", "measurements", "uplinks", "device_state",
    "rollup_state", "rollup_hourly", "rollup_daily", "water_hourly", "water_daily",
    "water_monthly", "water_events", "air_hourly", "air_daily", "waste_collections",
    "gateway_hourly", "analytics_settings",
)


@pytest.fixture(scope="session")
def analytica(platform_db: Settings) -> Settings:
    """The test member, applied next to alpha and beta."""
    from hypervision.db import connect_admin
    from hypervision.tenancy import apply as tenancy
    from hypervision.tenancy.spec import load_dir
    from ingest.decode import Catalogue

    with connect_admin(platform_db) as conn:
        tenancy.apply(conn, load_dir(TENANTS), Catalogue.load(), platform_db,
                      log=lambda _: None)
    return platform_db


@pytest.fixture
def member_db(analytica: Settings, admin: psycopg.Connection[Any]) -> Iterator[
        psycopg.Connection[Any]]:
    """The superuser connection, with the test member's tables empty."""
    admin.execute(sql.SQL("TRUNCATE {} CASCADE").format(
        sql.SQL(", ").join(sql.Identifier(SCHEMA, t) for t in TABLES)))
    yield admin


@pytest.fixture
def analytics_dir(tmp_path: Path) -> Path:
    return tmp_path / "analytics"


@pytest.fixture
def asettings(analytica: Settings, analytics_dir: Path) -> Settings:
    """Settings reading the member's analytics file from the test's own folder."""
    return analytica.model_copy(update={"analytics_dir": analytics_dir})

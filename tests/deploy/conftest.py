"""Fixtures of the deployment tests: a scratch copy of the platform's database to back up,
damage and restore, so that no other test's connections or data are touched.

The scratch database lives in the session's own PostgreSQL (the `services` fixture),
next to the main one: `hv_backup_template` is built once (migrations, the test members,
real uplinks through the ingestion Processor, and three months of measurements so that
the hypertables hold many chunks), and every test gets a fresh clone named
`hv_backup_test`. A clone does not inherit its template's privileges, so `tenants apply`
runs on it again, as on any new database.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hypervision import migrate
from hypervision.db import connect_admin, connect_as
from hypervision.settings import Settings
from hypervision.simulator import Simulator
from hypervision.tenancy import apply as tenancy
from hypervision.tenancy.spec import load_dir
from ingest.chirpstack import Envelope
from ingest.decode import Catalogue
from ingest.process import Processor
from ingest.registry import Registry, load_entries
from tests.deploy.stack import ImagesBuild

TEMPLATE = "hv_backup_template"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The stack tests (marker `docker`) last: their images are built meanwhile."""
    docker = [item for item in items if item.get_closest_marker("docker")]
    if docker:
        items[:] = [item for item in items if not item.get_closest_marker("docker")] + docker


def pytest_collection_finish(session: pytest.Session) -> None:
    """When the stack tests are to run, as root, Docker and their images start being
    built now, in the background, while the other tests run (tests/deploy/stack.py,
    ImagesBuild): a first build takes many minutes. HV_STACK_BUILD_EARLY=0 turns it off
    (the stack tests then build when they start)."""
    wanted = any(item.get_closest_marker("docker") for item in session.items)
    if wanted and os.geteuid() == 0 and os.environ.get("HV_STACK_BUILD_EARLY", "1") != "0" \
            and not session.config.option.collectonly:
        ImagesBuild.start()
SCRATCH = "hv_backup_test"
TENANTS = Path(__file__).resolve().parents[1] / "payloads" / "tenants"


def scratch_settings(base: Settings, backup_dir: Path, database: str = SCRATCH) -> Settings:
    """The session's settings, pointed at a scratch database and backup folder. Superset's
    metadata database is pointed at a name that does not exist, so that a full archive
    never includes (nor a restore replaces) a database another test uses."""
    return base.model_copy(update={
        "pg_database": database,
        "backup_dir": backup_dir,
        "superset_database": f"{database}_no_superset",
        # Plain archives here; tests/deploy/test_backup_encryption.py covers the encrypted.
        "backup_unencrypted": True,
    })


def drop_database(admin_settings: Settings, name: str) -> None:
    with connect_admin(admin_settings.model_copy(update={"pg_database": "postgres"})) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


def _apply_tenants(settings: Settings) -> None:
    with connect_admin(settings) as conn:
        migrate.migrate_control(conn, log=lambda _: None)
        tenancy.apply(conn, load_dir(TENANTS), Catalogue.load(), settings, log=lambda _: None)


def _ingest_real_uplinks(settings: Settings) -> None:
    """Uplinks, status and join events of every test device, through the real Processor."""
    simulator = Simulator(load_dir(TENANTS), Catalogue.load(), seed=7)
    items = []
    for device in simulator.devices:
        items.append(simulator.join(device))
        items.extend(simulator.uplink(device) for _ in range(5))
        items.append(simulator.status(device))
    envelopes = [Envelope.from_topic(t, p, time.time()) for t, p in items]
    with connect_as(settings, settings.ingest_role, autocommit=True) as conn:
        processor = Processor(Catalogue.load(), Registry(lambda: load_entries(conn)),
                              settings.max_payload_bytes, settings.fcnt_guard_window)
        processor.process(conn, envelopes)


def _add_history(conn: psycopg.Connection[Any]) -> None:
    """Three months of hourly readings per member: many 7-day chunks per hypertable."""
    for schema, device in (("tenant_alpha", "a1a1a1a1a1a10001"),
                           ("tenant_beta", "b2b2b2b2b2b20001")):
        conn.execute(sql.SQL(
            "INSERT INTO {}.measurements (time, dev_eui, metric, value, unit, deduplication_id)"
            " SELECT t, %s, 'volume', round((random() * 1000)::numeric, 3), 'L',"
            " gen_random_uuid()"
            " FROM generate_series(now() - interval '90 days', now() - interval '1 day',"
            " interval '1 hour') AS t ON CONFLICT DO NOTHING").format(sql.Identifier(schema)),
            (device,))


@pytest.fixture(scope="session")
def backup_template(platform_db: Settings, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The template database, built once per session."""
    base = scratch_settings(platform_db, tmp_path_factory.mktemp("unused"), TEMPLATE)
    for name in (TEMPLATE, SCRATCH):
        drop_database(platform_db, name)
    with connect_admin(platform_db) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    _apply_tenants(base)
    _ingest_real_uplinks(base)
    with connect_admin(base) as conn:
        _add_history(conn)
    # A template must have no session when it is copied: TimescaleDB's scheduler would
    # hold one, unless connections are refused outright.
    with connect_admin(platform_db) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(
            sql.Identifier(TEMPLATE)))
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                     " WHERE datname = %s", (TEMPLATE,))
    return TEMPLATE


@pytest.fixture
def scratch(backup_template: str, platform_db: Settings, tmp_path: Path) -> Iterator[Settings]:
    """A fresh clone of the template, and settings pointing at it and at an empty backup
    folder. Dropped afterwards, with any database a restore kept aside."""
    settings = scratch_settings(platform_db, tmp_path / "backups")
    drop_database(platform_db, SCRATCH)
    with connect_admin(platform_db) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(SCRATCH), sql.Identifier(backup_template)))
    _apply_tenants(settings)
    yield settings
    with connect_admin(platform_db) as conn:
        leftovers = [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{SCRATCH}%",))]
    for name in leftovers:
        drop_database(platform_db, name)


@pytest.fixture
def scratch_admin(scratch: Settings) -> Iterator[psycopg.Connection[Any]]:
    with connect_admin(scratch) as conn:
        yield conn

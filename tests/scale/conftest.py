"""Members on two database servers: a second PostgreSQL + TimescaleDB cluster started by
the fixtures beside the suite's own, on the next port, declared in a servers file.

The test members of tests/payloads/tenants-scale: `kappa`, placed on the second server
by its file, and `sigma`, created on the primary (the move tests move it).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql
from psycopg.types.json import Json

from hypervision.settings import Settings
from tests.conftest import PORT_BASE, REPO, TENANTS, TEST_DATA
from tests.public.members import remove_member

SCALE_TENANTS = REPO / "tests" / "payloads" / "tenants-scale"
SECOND_PORT = PORT_BASE + 433
KAPPA_AIR = "9a9a9a9a9a9a0002"  # kappa's air sensor


def kappa_uplink(conn: psycopg.Connection[Any], at: datetime, dedup: uuid.UUID,
                 f_cnt: int = 1) -> None:
    """One uplink of kappa's air sensor, received at `at`, written through `conn` (the
    second server's superuser); written once per deduplication id."""
    conn.execute(sql.SQL(
        "INSERT INTO {} (time, received_at, dev_eui, deduplication_id, f_cnt, f_port,"
        " data, event) VALUES (%s, %s, %s, %s, %s, 85, %s, %s) ON CONFLICT DO NOTHING"
    ).format(sql.Identifier("tenant_kappa", "uplinks")),
        (at, at, KAPPA_AIR, dedup, f_cnt, bytes([f_cnt % 256]), Json({"fCnt": f_cnt})))


@dataclass
class TwoServers:
    settings: Settings   # the platform's, with the servers file
    second: Settings     # the second cluster's own (its data folder, port, socket)
    file: Path


def write_servers_file(path: Path, second: Settings,
                       replica: dict[str, object] | None = None) -> None:
    """The servers file of the scale tests; `replica`: the second server's, if any."""
    declared: dict[str, object] = {
        "name": "second", "role": "members", "host": second.pg_host, "port": second.pg_port,
        "database": second.pg_database, "admin_url": second.admin_conninfo()}
    if replica is not None:
        declared["replica"] = replica
    path.write_text(yaml.safe_dump({
        "version": "v1", "kind": "database_servers",
        "servers": [{"name": "main", "role": "primary"}, declared],
    }), encoding="utf-8")


@pytest.fixture(scope="package")
def two_servers(platform_db: Settings) -> Iterator[TwoServers]:
    """The second cluster started, the servers file written and set for the processes the
    tests start (workers), the scale test members applied; at the end of this folder's
    tests, the scale members removed from the catalogue and the second cluster stopped, so
    that the tests after these see the suite's members only, all on the primary."""
    from hypervision import daemons
    from hypervision.db import connect_admin
    from hypervision.tenancy import apply as tenancy
    from hypervision.tenancy.spec import load_dir
    from ingest.decode import Catalogue

    second = platform_db.model_copy(update={
        "data_dir": TEST_DATA / "second", "pg_port": SECOND_PORT, "pg_shared_buffers": "128MB"})
    path = TEST_DATA / "servers.yaml"
    daemons.postgres.start(second)
    try:
        write_servers_file(path, second)
        settings = platform_db.model_copy(update={"database_servers_file": path})
        os.environ["HV_DATABASE_SERVERS_FILE"] = str(path)
        with connect_admin(settings) as conn:
            tenancy.apply(conn, load_dir(TENANTS) + load_dir(SCALE_TENANTS), Catalogue.load(),
                          settings, log=lambda _: None)
        yield TwoServers(settings, second, path)
        with connect_admin(settings) as conn:
            for spec in load_dir(SCALE_TENANTS):
                remove_member(conn, spec)
    finally:
        os.environ.pop("HV_DATABASE_SERVERS_FILE", None)
        daemons.postgres.stop(second)


@pytest.fixture
def scale_simulator(two_servers: TwoServers) -> Any:
    """A simulator of the scale members' devices (and alpha's), frame counters apart."""
    from hypervision.simulator import Simulator
    from hypervision.tenancy.spec import load_dir
    from ingest.decode import Catalogue

    seed = int(time.time() * 1000) % 100000
    specs = [s for s in load_dir(TENANTS) if s.name == "alpha"] + load_dir(SCALE_TENANTS)
    sim = Simulator(specs, Catalogue.load(), seed=seed)
    for device in sim.devices:
        device.f_cnt = seed * 10_000
    return sim

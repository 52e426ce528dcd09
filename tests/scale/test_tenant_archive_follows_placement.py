"""The member archive (`tenant export|import`) of a member on the second server: its
tables are read there, and an import recreates it there (its file names the server)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hypervision import archive, placement
from hypervision.db import connect_admin
from hypervision.tenancy.spec import load_dir
from tests.public.members import remove_member
from tests.scale.conftest import SCALE_TENANTS, TwoServers, kappa_uplink

pytestmark = pytest.mark.services



def _uplinks(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM tenant_kappa.uplinks").fetchone()
    return int(row[0]) if row else 0


def test_kappa_is_archived_from_its_server_and_restored_there(
    two_servers: TwoServers, tmp_path: Path
) -> None:
    settings = two_servers.settings
    start = datetime(2025, 3, 1, tzinfo=UTC)
    with placement.connect_admin(settings, "second") as second:
        for minute in range(12):
            kappa_uplink(second, start + timedelta(minutes=minute),
                         uuid.uuid5(uuid.NAMESPACE_URL, f"hv-test:archive:{minute}"), minute)
        held = _uplinks(second)
    assert held >= 12

    with connect_admin(settings) as primary:
        exported = archive.export_member(primary, settings, "kappa", tmp_path / "kappa.tar")
        assert exported.manifest.counts["uplinks"] == held

        # Gone from both servers, then back from the archive, where its file says.
        kappa = next(s for s in load_dir(SCALE_TENANTS) if s.name == "kappa")
        remove_member(primary, kappa)
        with placement.connect_admin(settings, "second") as second:
            second.execute("DROP SCHEMA tenant_kappa CASCADE")
            second.execute("DELETE FROM hv.schema_migrations WHERE schema_name = 'tenant_kappa'")
            second.execute("DELETE FROM hv.schema_views WHERE schema_name = 'tenant_kappa'")
        imported = archive.import_member(primary, settings, exported.archive)
        assert imported.inserted["uplinks"] == held
        assert primary.execute("SELECT server FROM hv.members WHERE slug = 'kappa'"
                               ).fetchone() == ("second",)
        assert primary.execute("SELECT to_regnamespace('tenant_kappa')").fetchone() == (None,)
    with placement.connect_admin(settings, "second") as second:
        assert _uplinks(second) == held

"""The API's own database role: it appends to the audit trail but can never rewrite it,
and it cannot read any member's schema (member data goes through reader roles)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from hypervision import audit
from hypervision.db import connect_as
from tests.api.conftest import World

pytestmark = pytest.mark.services


def test_the_api_role_appends_audit_entries_but_cannot_update_delete_or_truncate_them(
    world: World,
) -> None:
    role = world.settings.api_role
    with connect_as(world.settings, role, autocommit=True) as conn:
        entry = audit.record(conn, actor="system:test", member="alpha", action="test.append",
                             source="api")
        assert conn.execute("SELECT actor FROM hv.audit_log WHERE id = %s",
                            (entry,)).fetchone() == ("system:test",)
        for statement in ("UPDATE hv.audit_log SET rows = 1 WHERE id = %s",
                          "DELETE FROM hv.audit_log WHERE id = %s"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement, (entry,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("TRUNCATE hv.audit_log")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE hv.audit_head SET last_id = 0")


@pytest.mark.parametrize("role", ["alpha_reader", "beta_reader"])
def test_member_readers_cannot_touch_the_audit_trail_directly(world: World, role: str) -> None:
    with connect_as(world.settings, role, autocommit=True) as conn:
        for statement in ("SELECT * FROM hv.audit_log",
                          "INSERT INTO hv.audit_log (actor, action, source)"
                          " VALUES ('system:x', 'x', 'api')",
                          "DELETE FROM hv.audit_log"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_the_api_role_cannot_read_any_members_schema(world: World) -> None:
    with connect_as(world.settings, world.settings.api_role, autocommit=True) as conn:
        for table in ("tenant_alpha.measurements", "tenant_beta.uplinks"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT 1 FROM {table} LIMIT 1")


def test_the_ingest_role_can_append_audit_entries_once_granted(
    world: World, admin_conn: Any,
) -> None:
    """Jobs running as the NOINHERIT ingest role get the column privileges directly."""
    audit.grant_writer(admin_conn, world.settings.ingest_role, inherit=False)
    with connect_as(world.settings, world.settings.ingest_role, autocommit=True) as conn:
        entry = audit.record(conn, actor="system:retention", member="alpha",
                             action="retention.run", source="job")
        assert entry > 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM hv.audit_log WHERE id = %s", (entry,))

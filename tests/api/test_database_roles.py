"""The API's own database role: it appends to the audit trail but can never rewrite it,
and it cannot read any member's schema (member data goes through reader roles); in a
member's schema it holds exactly the column privileges of two changes: the state of alerts
and new downlink requests."""

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


def test_in_a_members_schema_the_api_role_holds_only_alert_and_downlink_columns(
    world: World, admin_conn: Any,
) -> None:
    """Effective privileges (grants, role memberships and PUBLIC included) of the API role
    on every column of alpha's tables and views, as `tenants apply` left them."""
    role = world.settings.api_role
    columns = admin_conn.execute(
        """SELECT c.relname::text, p.privilege, array_agg(a.attname::text ORDER BY a.attname)
           FROM pg_class c
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
           CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']) AS p(privilege)
           WHERE c.relnamespace = 'tenant_alpha'::regnamespace
             AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
             AND has_column_privilege(%s, c.oid, a.attnum, p.privilege)
           GROUP BY 1, 2 ORDER BY 1, 2""", (role,)).fetchall()
    assert columns == [
        ("alerts", "SELECT", ["id", "state"]),
        ("alerts", "UPDATE", ["acknowledged_at", "acknowledged_by", "close_reason", "closed_at",
                              "closed_by", "state"]),
        ("downlinks", "INSERT", ["command", "confirmed", "data", "dev_eui", "f_port",
                                 "model_id", "params", "queue_item_id", "requested_by"]),
    ]
    tables = admin_conn.execute(
        """SELECT c.relname FROM pg_class c
           WHERE c.relnamespace = 'tenant_alpha'::regnamespace
             AND has_table_privilege(%s, c.oid, 'DELETE, TRUNCATE, TRIGGER')""",
        (role,)).fetchall()
    assert tables == []
    # Not a member of any of alpha's roles, whose rights it would otherwise inherit or SET.
    assert admin_conn.execute(
        "SELECT rolname FROM pg_roles WHERE rolname LIKE 'alpha\\_%%'"
        " AND pg_has_role(%s, oid, 'MEMBER')", (role,)).fetchall() == []


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

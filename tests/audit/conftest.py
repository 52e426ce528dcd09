"""Fixtures of the audit tests: a login role that is not the superuser, holding only
what an application role holds (the audit writer's column INSERT)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hypervision import audit
from hypervision.db import connect_as
from hypervision.settings import Settings

APP_ROLE = "hv_audit_test_app"


@pytest.fixture(scope="session")
def app_role(platform_db: Settings) -> str:
    """A login role granted the audit writer role, as an API or job role would be."""
    from hypervision.db import connect_admin

    with connect_admin(platform_db) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,))
        if exists.fetchone() is None:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(APP_ROLE)))
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
            sql.Identifier(APP_ROLE), sql.Literal(platform_db.ensure_role_password(APP_ROLE))))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(platform_db.pg_database), sql.Identifier(APP_ROLE)))
        audit.grant_writer(conn, APP_ROLE)
    return APP_ROLE


@pytest.fixture
def app_conn(platform_db: Settings, app_role: str) -> Iterator[psycopg.Connection[Any]]:
    with connect_as(platform_db, app_role) as conn:
        yield conn

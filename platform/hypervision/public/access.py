"""The least-privileged database role of the public pages.

The public pages answer anyone on the Internet, so they connect as a login role
(`Settings.public_role`, default `hv_public`) that can read the hv.public_* views and
nothing else: no member schema, no hv.devices, no users. The views are owned by the
superuser, so the role needs no right on the tables behind them. Its password derives
from HV_SECRET_KEY like every platform role.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from hypervision.db import connect_as
from hypervision.settings import Settings

PUBLIC_VIEWS = ("hv.public_devices", "hv.public_members")


def ensure_public_role(conn: psycopg.Connection, settings: Settings) -> None:
    """Create or update the public role: login, password, and SELECT on the views only.

    Idempotent; run as the superuser after the control migrations (the lead's tenancy
    apply is the natural place; `hypervision public setup` runs it alone).
    """
    role = sql.Identifier(settings.public_role)
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                          (settings.public_role,)).fetchone()
    with conn.transaction():
        if not exists:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
        conn.execute(sql.SQL("ALTER ROLE {} LOGIN NOINHERIT PASSWORD {}").format(
            role, sql.Literal(settings.role_password(settings.public_role))))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(settings.pg_database), role))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA hv TO {}").format(role))
        for view in PUBLIC_VIEWS:
            schema, name = view.split(".")
            conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(
                sql.Identifier(schema, name), role))


READ_ONLY = "-c default_transaction_read_only=on -c statement_timeout=5000"
POOL_SIZE = 4
# Seconds a page request waits for a free connection before it fails (PoolTimeout: the
# API app answers 503).
POOL_TIMEOUT = 10.0


def connect_public(settings: Settings) -> psycopg.Connection:
    """A read-only, autocommit connection as the public role (tests, one-off use)."""
    return connect_as(settings, settings.public_role, autocommit=True, options=READ_ONLY)


@lru_cache(maxsize=4)
def public_pool(conninfo: str) -> ConnectionPool:
    """The pages' small pool, one per process: anyone may request a page, so a burst of
    requests must queue for a few connections, not open one each."""
    return ConnectionPool(conninfo, min_size=1, max_size=POOL_SIZE, timeout=POOL_TIMEOUT,
                          kwargs={"autocommit": True, "options": READ_ONLY},
                          name="hv-public", open=True)


@contextmanager
def public_connection(settings: Settings) -> Iterator[psycopg.Connection]:
    """A pooled read-only connection as the public role."""
    with public_pool(settings.role_conninfo(settings.public_role)).connection() as conn:
        yield conn

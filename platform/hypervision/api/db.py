"""The API's database connections: its own login role for the control schema, and one
small pool per member connecting as that member's reader role.

Member data is never read with the API's own role: `Databases.reader(slug)` connects as
`<slug>_reader`, so a bug in a handler cannot cross into another member's schema; the
database refuses it (BRIEF.md, "Tenancy"). What the API changes in a member's schema, it
changes with its own role, holding column privileges on that one table, granted per member
by `tenants apply`: the state of alerts (`grant_alert_changes`) and new downlink requests
(`grant_downlink_requests`). The API never connects as the superuser, nor as a member's
writer or owner role.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from hypervision import audit
from hypervision.chirpstack.downlinks import REQUEST_COLUMNS as DOWNLINK_REQUEST_COLUMNS
from hypervision.settings import Settings
from hypervision.tenancy.spec import member_role

CONTROL_POOL_SIZE = 8
READER_POOL_SIZE = 4
# Seconds a request waits for a free connection before it gets 503.
POOL_TIMEOUT = 15.0


def ensure_api_role(conn: psycopg.Connection, settings: Settings) -> None:
    """Create or update the API's login role and its grants (run as the superuser by
    `tenants apply`; idempotent). It reads the catalogue, manages accounts, tokens and
    grants, appends to and reads the audit trail, and nothing of any member's schema."""
    role = sql.Identifier(settings.api_role)
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                          (settings.api_role,)).fetchone()
    if exists is None:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
    conn.execute(sql.SQL("ALTER ROLE {} LOGIN INHERIT PASSWORD {}").format(
        role, sql.Literal(settings.role_password(settings.api_role))))
    for statement in (
        "GRANT CONNECT ON DATABASE {db} TO {role}",
        "GRANT USAGE ON SCHEMA hv TO {role}",
        "GRANT SELECT ON hv.members, hv.devices, hv.device_models, hv.dead_letters,"
        " hv.ingest_outcomes, hv.storage_usage, hv.audit_log TO {role}",
        "GRANT SELECT, INSERT, UPDATE ON hv.accounts, hv.api_tokens, hv.access_grants TO {role}",
        "GRANT USAGE ON SEQUENCE hv.accounts_id_seq, hv.api_tokens_id_seq,"
        " hv.access_grants_id_seq TO {role}",
    ):
        conn.execute(sql.SQL(statement).format(  # type: ignore[arg-type]
            db=sql.Identifier(settings.pg_database), role=role))
    audit.grant_writer(conn, settings.api_role)


# The columns a person changes when acknowledging or closing an alert
# (hypervision.alerts.lifecycle); the API role may update these and read only id and state.
ALERT_CHANGE_COLUMNS = ("state", "acknowledged_at", "acknowledged_by", "closed_at", "closed_by",
                        "close_reason")


def grant_alert_changes(conn: psycopg.Connection, settings: Settings, schema: str) -> None:
    """Let the API role acknowledge and close one member's alerts (run as the superuser by
    `tenants apply`, for every member; idempotent).

    Only the member's owner may write its tables, and the reader role stays read-only, so
    the API role gets column privileges on the `alerts` table and nothing else of the
    schema: UPDATE of the columns a person changes, SELECT of `id` and `state` (what the
    conditional UPDATE needs). It cannot read an alert's content, nor any other table.
    """
    _grant_columns(conn, settings, schema, "alerts",
                   {"SELECT": ("id", "state"), "UPDATE": ALERT_CHANGE_COLUMNS})


def grant_downlink_requests(conn: psycopg.Connection, settings: Settings, schema: str) -> None:
    """Let the API role record the downlinks its callers send to one member's devices (run
    as the superuser by `tenants apply`, for every member; idempotent).

    INSERT of the columns a request sets (hypervision.chirpstack.downlinks.REQUEST_COLUMNS)
    on the `downlinks` table, and nothing else: it cannot read downlinks (listing them goes
    through the member's reader role), nor change their state (`status`, `sent_at`,
    `acked_at`... are the tracking's, as the member's writer role), nor touch any other
    table of the schema.
    """
    _grant_columns(conn, settings, schema, "downlinks", {"INSERT": DOWNLINK_REQUEST_COLUMNS})


def _grant_columns(conn: psycopg.Connection, settings: Settings, schema: str, table: str,
                   privileges: dict[str, tuple[str, ...]]) -> None:
    """GRANT the API role USAGE on the schema and these column privileges on one of its
    tables (nothing when the table does not exist yet: an older member schema)."""
    if conn.execute("SELECT to_regclass(%s)", (f'"{schema}".{table}',)).fetchone() == (None,):
        return
    role = sql.Identifier(settings.api_role)
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), role))
    conn.execute(sql.SQL("GRANT {} ON {} TO {}").format(
        sql.SQL(", ").join(
            sql.SQL("{} ({})").format(sql.SQL(privilege),
                                      sql.SQL(", ").join(map(sql.Identifier, columns)))
            for privilege, columns in privileges.items()),
        sql.Identifier(schema, table), role))


class Databases:
    """Connection pools, opened lazily and closed with the application."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._control: ConnectionPool | None = None
        self._readers: dict[str, ConnectionPool] = {}

    def _pool(self, role: str, size: int) -> ConnectionPool:
        return ConnectionPool(
            self.settings.role_conninfo(role), min_size=0, max_size=size,
            kwargs={"autocommit": True, "application_name": "hypervision-api"},
            timeout=POOL_TIMEOUT, name=role, open=True,
        )

    @contextmanager
    def control(self) -> Iterator[psycopg.Connection]:
        with self._lock:
            if self._control is None:
                self._control = self._pool(self.settings.api_role, CONTROL_POOL_SIZE)
            pool = self._control
        with pool.connection() as conn:
            yield conn

    @contextmanager
    def reader(self, slug: str) -> Iterator[psycopg.Connection]:
        """A connection as the member's reader role; callers have checked the member."""
        with self._lock:
            pool = self._readers.get(slug)
            if pool is None:
                pool = self._readers[slug] = self._pool(member_role(slug, "reader"),
                                                        READER_POOL_SIZE)
        with pool.connection() as conn:
            yield conn

    def close(self) -> None:
        with self._lock:
            pools = [p for p in (self._control, *self._readers.values()) if p is not None]
            self._control, self._readers = None, {}
        for pool in pools:
            pool.close()

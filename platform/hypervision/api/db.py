"""The API's database connections: its own login role for the control schema, and one
small pool per member connecting as that member's reader role.

Member data is never read with the API's own role: `Databases.reader(slug)` connects as
`<slug>_reader`, so a bug in a handler cannot cross into another member's schema; the
database refuses it (docs/architecture.md, "Tenancy"). What the API changes in a member's schema, it
changes with its own role, holding column privileges on that one table, granted per member
by `tenants apply`: the state of alerts and new downlink requests (hypervision.roles,
`grant_alert_changes`, `grant_downlink_requests`). The API never connects as the
superuser, nor as a member's writer or owner role.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool

from hypervision import placement
from hypervision.roles import (  # noqa: F401  (the role DDL lives in hypervision.roles)
    ALERT_CHANGE_COLUMNS,
    ensure_api_role,
    grant_alert_changes,
    grant_downlink_requests,
    member_role,
)
from hypervision.settings import Settings

CONTROL_POOL_SIZE = 8
READER_POOL_SIZE = 4
# Seconds a request waits for a free connection before it gets 503.
POOL_TIMEOUT = 15.0


class Databases:
    """Connection pools, opened lazily and closed with the application."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._control: ConnectionPool | None = None
        self._readers: dict[tuple[str, str | None], ConnectionPool] = {}
        self._api_elsewhere: dict[str, ConnectionPool] = {}

    def _pool(self, role: str, size: int, server: str | None = None) -> ConnectionPool:
        return ConnectionPool(
            placement.role_conninfo(self.settings, server, role), min_size=0, max_size=size,
            kwargs={"autocommit": True, "application_name": "hypervision-api"},
            timeout=POOL_TIMEOUT, name=role, open=True,
            # A connection killed by a server restart is replaced, not served.
            check=ConnectionPool.check_connection,
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
        """A connection as the member's reader role, on the member's database server
        (hypervision.placement, read at each request: a member that moved is read where
        it is now); callers have checked the member."""
        with self.control() as conn:
            server = placement.member_server(conn, slug)
        key = (slug, server)
        with self._lock:
            pool = self._readers.get(key)
            if pool is None:
                pool = self._readers[key] = self._pool(member_role(slug, "reader"),
                                                       READER_POOL_SIZE, server)
        with pool.connection() as conn:
            yield conn

    @contextmanager
    def changes(self, slug: str) -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
        """The API role's connections to change a member's schema: to the primary (the
        catalogue, the audit trail) and to the member's database server, which is the same
        connection for a member on the primary. Callers open a transaction on each, the
        member's inside the primary's, so that the member's change commits just before
        its audit entry."""
        with self.control() as conn:
            server = placement.member_server(conn, slug)
            if server is None:
                yield conn, conn
                return
            with self._lock:
                pool = self._api_elsewhere.get(server)
                if pool is None:
                    pool = self._api_elsewhere[server] = self._pool(
                        self.settings.api_role, READER_POOL_SIZE, server)
            with pool.connection() as member_conn:
                yield conn, member_conn

    def close(self) -> None:
        with self._lock:
            pools = [p for p in (self._control, *self._readers.values(),
                                 *self._api_elsewhere.values()) if p is not None]
            self._control, self._readers, self._api_elsewhere = None, {}, {}
        for pool in pools:
            pool.close()

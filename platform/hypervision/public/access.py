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
from psycopg_pool import ConnectionPool

from hypervision.db import connect_as
from hypervision.roles import PUBLIC_VIEWS, ensure_public_role  # noqa: F401  (role DDL)
from hypervision.settings import Settings

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
                          name="hv-public", open=True,
                          # A connection killed by a server restart is replaced, not served.
                          check=ConnectionPool.check_connection)


@contextmanager
def public_connection(settings: Settings) -> Iterator[psycopg.Connection]:
    """A pooled read-only connection as the public role."""
    with public_pool(settings.role_conninfo(settings.public_role)).connection() as conn:
        yield conn

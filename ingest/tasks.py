"""Celery tasks of the pipeline: thin wrappers that apply the retry policy.

`process_batch` receives a list of envelopes from a receiver (ingest.receive) and hands
them to the Processor (ingest.process). Retry policy, by error type:
- database unreachable (connection refused or lost, server shutting down): retry with
  capped exponential backoff and jitter, without limit: nothing is dropped while
  PostgreSQL restarts;
- other database errors that may pass (deadlock, serialization failure): retry up to
  HV_TASK_MAX_RETRIES times, then process the events one by one so that only those that
  still fail end in the dead-letter store;
- anything else is handled inside the Processor (isolation and dead letters);
- members whose ingestion is paused (a move) or whose database server cannot be reached
  are left out by the Processor; their events alone are queued again, with the same
  backoff, without limit.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import psycopg
import redis

from hypervision import placement
from hypervision.celery_app import app
from hypervision.settings import Settings, get_settings
from ingest.chirpstack import Envelope
from ingest.decode.reload import CatalogueSource
from ingest.process import TRANSIENT_ERRORS, Processor, is_unavailable
from ingest.registry import Registry, load_entries

log = logging.getLogger(__name__)
STATS_KEY = "hv:stats:last_batch"


@dataclass
class _WorkerContext:
    """Per-process state, created after the fork: connection, catalogue, registry."""

    settings: Settings
    _conn: psycopg.Connection | None = None
    _servers: dict[str, psycopg.Connection] = field(default_factory=dict)

    def connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.settings.ingest_conninfo(), autocommit=True,
                                         connect_timeout=5)
        return self._conn

    def drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def server_connection(self, name: str) -> psycopg.Connection:
        """The ingest role's connection to another member server (hypervision.placement),
        opened again when it broke (the server restarted)."""
        conn = self._servers.get(name)
        if conn is None or conn.closed or conn.broken:
            self._servers.pop(name, None)
            conn = psycopg.connect(
                placement.role_conninfo(self.settings, name, self.settings.ingest_role),
                autocommit=True, connect_timeout=5)
            self._servers[name] = conn
        return conn

    @cached_property
    def catalogue(self) -> CatalogueSource:
        return CatalogueSource(self.settings.catalogue_dir,
                               self.settings.catalogue_reload_interval)

    @cached_property
    def processor(self) -> Processor:
        registry = Registry(lambda: load_entries(self.connection()))
        return Processor(self.catalogue.current(), registry, self.settings.max_payload_bytes,
                         self.settings.fcnt_guard_window, servers=self.server_connection)

    @cached_property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_url)


_context: _WorkerContext | None = None


def context() -> _WorkerContext:
    global _context
    if _context is None:
        _context = _WorkerContext(get_settings())
    return _context


def backoff(retries: int, cap: float) -> float:
    return min(cap, 2.0 ** retries) * random.uniform(0.5, 1.0)


@app.task(bind=True, name="ingest.process_batch", max_retries=None)
def process_batch(self: Any, items: list[list[Any]], isolate: bool = False) -> dict[str, int]:
    """Validate, decode and store a batch of ChirpStack events (see ingest.process)."""
    ctx = context()
    envelopes = [Envelope.from_wire(item) for item in items]
    retries = self.request.retries
    # Operator models added or changed since the last check are used from this batch on.
    ctx.processor.catalogue = ctx.catalogue.current()
    try:
        if isolate:
            result = ctx.processor.process_isolated(ctx.connection(), envelopes)
        else:
            result = ctx.processor.process(ctx.connection(), envelopes)
    except TRANSIENT_ERRORS as exc:
        ctx.drop_connection()
        countdown = backoff(retries, ctx.settings.retry_backoff_max)
        give_up = not is_unavailable(exc) and retries >= ctx.settings.task_max_retries
        if give_up:
            log.error("batch of %d kept failing (%s); its events will be stored one by one",
                      len(envelopes), exc)
        else:
            log.warning("batch of %d: database error (%s), retry %d in %.1fs",
                        len(envelopes), type(exc).__name__, retries + 1, countdown)
        raise self.retry(exc=exc, countdown=countdown,
                         kwargs={"isolate": isolate or give_up}) from None
    if result.deferred:
        # Members paused (a move) or on a server that cannot be reached: their events go
        # back to the queue alone, the others' are committed.
        countdown = backoff(retries, ctx.settings.retry_backoff_max)
        log.warning("batch of %d: %d event(s) of paused or unreachable members, retry %d"
                    " in %.1fs", len(envelopes), len(result.deferred), retries + 1, countdown)
        raise self.retry(args=[[e.to_wire() for e in result.deferred]],
                         kwargs={"isolate": isolate}, countdown=countdown)
    now = time.time()
    oldest = min(e.received_at for e in envelopes)
    try:
        ctx.redis.set(STATS_KEY, json.dumps({"at": now, "size": len(envelopes),
                                             "latency": now - oldest}))
    except redis.RedisError as exc:
        # The batch is committed; only the statistic is lost (Redis is restarting).
        log.warning("could not record the batch statistics: %s", exc)
    return {f"{m or '-'}:{o.value}": n for (m, o), n in result.outcomes.items()}

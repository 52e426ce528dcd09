"""The pipeline writes each member's rows to its server; outcomes stay exactly once.

In-process (the Processor, no Celery): a batch spanning members on both servers, the same
batch delivered again, the primary lost between the second server's commit and its own
(the crash window of two commits), a paused member, an unreachable server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hypervision import placement
from hypervision.db import connect_admin
from ingest.chirpstack import Envelope
from ingest.decode import Catalogue
from ingest.outcomes import Outcome
from ingest.process import TRANSIENT_ERRORS, Processor
from ingest.registry import Registry, load_entries
from tests.conftest import wait_for
from tests.scale.conftest import TwoServers

pytestmark = pytest.mark.services


class Servers:
    """The ingest role's connections to the other servers, as the worker keeps them; a
    test may run something before one is handed out (`before`)."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.open: dict[str, psycopg.Connection] = {}
        self.before: Any = None

    def __call__(self, name: str) -> psycopg.Connection:
        if self.before is not None:
            self.before()
        conn = self.open.get(name)
        if conn is None or conn.closed or conn.broken:
            conn = self.open[name] = placement.connect_as(
                self.settings, name, self.settings.ingest_role, autocommit=True)
        return conn

    def close(self) -> None:
        for conn in self.open.values():
            conn.close()


@pytest.fixture
def pipeline(two_servers: TwoServers) -> Iterator[tuple[Any, Processor, Servers]]:
    settings = two_servers.settings
    servers = Servers(settings)
    conn = placement.connect_as(settings, None, settings.ingest_role, autocommit=True)
    registry = Registry(lambda: load_entries(conn))
    holder = [conn]
    try:
        yield holder, Processor(Catalogue.load(), registry, settings.max_payload_bytes,
                                settings.fcnt_guard_window, servers=servers), servers
    finally:
        servers.close()
        holder[0].close()


def envelopes(items: list[tuple[str, bytes]]) -> list[Envelope]:
    return [Envelope.from_topic(t, p, time.time()) for t, p in items]


def rows_on(settings: Any, server: str | None, schema: str, ids: list[str]) -> int:
    with placement.connect_admin(settings, server) as conn:
        row = conn.execute(sql.SQL(
            "SELECT count(*) FROM {} WHERE deduplication_id = ANY(%s::uuid[])").format(
                sql.Identifier(schema, "uplinks")), (ids,)).fetchone()
        return int(row[0]) if row else 0


def outcome_totals(settings: Any, member: str) -> dict[str, int]:
    with connect_admin(settings) as conn:
        return dict(conn.execute(
            "SELECT outcome, sum(events)::int FROM hv.ingest_outcomes WHERE member_slug = %s"
            " GROUP BY outcome", (member,)).fetchall())


def batch_of(sim: Any, members: set[str], per_device: int = 3) -> list[tuple[str, bytes]]:
    return [sim.uplink(d) for d in sim.devices if d.member in members for _ in range(per_device)]


def ids_of(items: list[tuple[str, bytes]]) -> list[str]:
    return [json.loads(p)["deduplicationId"] for _, p in items]


def test_each_members_rows_go_to_its_server_and_a_redelivery_counts_once(
    pipeline: Any, scale_simulator: Any, two_servers: TwoServers
) -> None:
    settings = two_servers.settings
    holder, proc, _ = pipeline
    items = batch_of(scale_simulator, {"alpha", "kappa"})
    alpha = [i for i in items if "a1a1a1a1a1a1" in i[0]]
    kappa = [i for i in items if "9a9a9a9a9a9a" in i[0]]
    before = outcome_totals(settings, "kappa")

    first = proc.process(holder[0], envelopes(items))
    assert first.total(Outcome.STORED) == len(items)
    assert rows_on(settings, None, "tenant_alpha", ids_of(alpha)) == len(alpha)
    assert rows_on(settings, "second", "tenant_kappa", ids_of(kappa)) == len(kappa)

    # The same batch again (a redelivery): nothing written twice; kappa's receipt gives
    # its outcomes again and the primary does not count them a second time.
    again = proc.process(holder[0], envelopes(items))
    assert again.outcomes[("kappa", Outcome.STORED)] == len(kappa)
    assert again.outcomes[("alpha", Outcome.DUPLICATE)] == len(alpha)
    assert rows_on(settings, "second", "tenant_kappa", ids_of(kappa)) == len(kappa)
    after = outcome_totals(settings, "kappa")
    assert after.get("stored", 0) - before.get("stored", 0) == len(kappa)
    assert after.get("duplicate", 0) == before.get("duplicate", 0)


def test_losing_the_primary_between_the_two_commits_counts_the_outcomes_once(
    pipeline: Any, scale_simulator: Any, two_servers: TwoServers
) -> None:
    """The second server commits kappa's rows and receipt; the primary's connection is
    then cut before its own commit (the crash window). Delivered again, the batch finds
    the receipt: no row twice, and kappa's events counted stored, once."""
    settings = two_servers.settings
    holder, proc, servers = pipeline
    items = batch_of(scale_simulator, {"kappa"})
    before = outcome_totals(settings, "kappa")
    pid = holder[0].info.backend_pid

    def cut_the_primary() -> None:
        servers.before = None
        with connect_admin(settings) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    servers.before = cut_the_primary
    with pytest.raises(TRANSIENT_ERRORS):
        proc.process(holder[0], envelopes(items))
    # The rows are on the second server, their outcomes nowhere yet.
    assert rows_on(settings, "second", "tenant_kappa", ids_of(items)) == len(items)
    assert outcome_totals(settings, "kappa") == before

    holder[0] = placement.connect_as(settings, None, settings.ingest_role, autocommit=True)
    again = proc.process(holder[0], envelopes(items))
    assert again.total(Outcome.STORED) == len(items)
    after = outcome_totals(settings, "kappa")
    assert after.get("stored", 0) - before.get("stored", 0) == len(items)
    assert after.get("duplicate", 0) == before.get("duplicate", 0)
    assert rows_on(settings, "second", "tenant_kappa", ids_of(items)) == len(items)


def test_a_paused_member_waits_and_the_others_are_stored(
    pipeline: Any, scale_simulator: Any, two_servers: TwoServers
) -> None:
    settings = two_servers.settings
    holder, proc, _ = pipeline
    items = batch_of(scale_simulator, {"alpha", "kappa"})
    kappa = [i for i in items if "9a9a9a9a9a9a" in i[0]]
    with connect_admin(settings) as admin:
        admin.execute("UPDATE hv.members SET ingest_paused_at = now() WHERE slug = 'kappa'")
    try:
        result = proc.process(holder[0], envelopes(items))
    finally:
        with connect_admin(settings) as admin:
            admin.execute("UPDATE hv.members SET ingest_paused_at = NULL WHERE slug = 'kappa'")
    assert result.total(Outcome.STORED) == len(items) - len(kappa)
    assert sorted(e.payload for e in result.deferred) == sorted(p for _, p in kappa)
    assert rows_on(settings, "second", "tenant_kappa", ids_of(kappa)) == 0
    # Resumed: what waited is stored.
    later = proc.process(holder[0], result.deferred)
    assert later.total(Outcome.STORED) == len(kappa)
    assert not later.deferred


def test_an_unreachable_server_holds_back_only_its_members(
    pipeline: Any, scale_simulator: Any, two_servers: TwoServers
) -> None:
    from hypervision import daemons

    settings = two_servers.settings
    holder, proc, _ = pipeline
    items = batch_of(scale_simulator, {"alpha", "kappa"})
    kappa = [i for i in items if "9a9a9a9a9a9a" in i[0]]
    daemons.postgres.stop(two_servers.second)
    try:
        result = proc.process(holder[0], envelopes(items))
        assert result.total(Outcome.STORED) == len(items) - len(kappa)
        assert len(result.deferred) == len(kappa)
    finally:
        daemons.postgres.start(two_servers.second)
    later = proc.process(holder[0], result.deferred)
    assert later.total(Outcome.STORED) == len(kappa)
    assert rows_on(settings, "second", "tenant_kappa", ids_of(kappa)) == len(kappa)


def test_pausing_a_member_waits_for_the_batch_writing_it(two_servers: TwoServers) -> None:
    """A move's pause takes the member's lock exclusively: while a batch holds it (the
    pipeline's transaction on the primary, from reading the placement to its commit), the
    pause waits, so no batch writes the member on its old server once the pause is set."""
    import threading

    from hypervision.tenancy import move

    settings = two_servers.settings
    with placement.connect_as(settings, None, settings.ingest_role,
                              autocommit=True) as batch:
        with batch.transaction():
            assert placement.lock_and_read(batch, ["kappa"])["kappa"].paused is False
            def pause() -> None:
                with connect_admin(settings) as primary:
                    move._set_pause(primary, "kappa", True)

            pausing = threading.Thread(target=pause)
            pausing.start()
            with connect_admin(settings) as admin:
                wait_for(lambda: admin.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                    " AND NOT granted").fetchone()[0] == 1, what="the pause waiting")
                assert admin.execute("SELECT ingest_paused_at FROM hv.members"
                                     " WHERE slug = 'kappa'").fetchone() == (None,)
        pausing.join(timeout=30)
        assert not pausing.is_alive()
        with batch.transaction():
            assert placement.lock_and_read(batch, ["kappa"])["kappa"].paused is True
    move.resume(settings, "kappa")

"""Real workers (Celery processes), the receiver and MQTT, with members on two servers:
a server stopped holds back only its members; a member moved under load loses nothing
and doubles nothing (counted)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from psycopg import sql

from hypervision import placement
from hypervision.db import connect_admin
from tests.conftest import REPO, wait_for
from tests.pipeline.helpers import publish
from tests.scale.conftest import TwoServers
from tests.scale.test_ingest_placement import ids_of, outcome_totals

pytestmark = pytest.mark.services


def count_on(settings: Any, server: str | None, schema: str, ids: list[str]) -> tuple[int, int]:
    """(rows, distinct deduplication ids) among these ids in the member's uplinks there."""
    with placement.connect_admin(settings, server) as conn:
        row = conn.execute(sql.SQL(
            "SELECT count(*), count(DISTINCT deduplication_id) FROM {}"
            " WHERE deduplication_id = ANY(%s::uuid[])").format(
                sql.Identifier(schema, "uplinks")), (ids,)).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hypervision", *args], cwd=REPO,
                          env=os.environ.copy(), capture_output=True, text=True, timeout=600)


def test_a_stopped_server_holds_back_only_its_members_then_all_arrive_once(
    two_servers: TwoServers, worker: Any, receiver: Any, scale_simulator: Any
) -> None:
    from hypervision import daemons

    settings = two_servers.settings
    sim = scale_simulator
    alpha = [sim.uplink(d) for d in sim.devices if d.member == "alpha" for _ in range(5)]
    kappa = [sim.uplink(d) for d in sim.devices if d.member == "kappa" for _ in range(5)]
    before = outcome_totals(settings, "kappa")
    daemons.postgres.stop(two_servers.second)
    try:
        # Interleaved, so that batches hold both members.
        publish(settings, [x for pair in itertools.zip_longest(alpha, kappa) for x in pair
                           if x is not None])
        wait_for(lambda: count_on(settings, None, "tenant_alpha", ids_of(alpha))[0]
                 == len(alpha), timeout=120, what="alpha stored while the second server is down")
        # kappa's events wait: no outcome counted for them.
        assert outcome_totals(settings, "kappa") == before
    finally:
        daemons.postgres.start(two_servers.second)
    wait_for(lambda: count_on(settings, "second", "tenant_kappa", ids_of(kappa))[0]
             == len(kappa), timeout=180, what="kappa stored once the second server is back")
    wait_for(lambda: outcome_totals(settings, "kappa").get("stored", 0)
             - before.get("stored", 0) >= len(kappa), timeout=60, what="kappa's outcomes")
    time.sleep(2)  # nothing more may come: a second count would show here
    assert count_on(settings, "second", "tenant_kappa", ids_of(kappa)) == (len(kappa), len(kappa))
    after = outcome_totals(settings, "kappa")
    assert after.get("stored", 0) - before.get("stored", 0) == len(kappa)
    assert after.get("duplicate", 0) == before.get("duplicate", 0)


def test_moving_a_member_under_load_loses_nothing_and_doubles_nothing(
    two_servers: TwoServers, worker: Any, receiver: Any, scale_simulator: Any
) -> None:
    """sigma moves from the primary to the second server while its devices (and alpha's)
    keep publishing: every uplink published is on the second server once, counted
    stored once; alpha never waited; the old copy stays until --drop-old."""
    settings = two_servers.settings
    sim = scale_simulator
    devices = [d for d in sim.devices if d.member in ("alpha", "sigma")]
    published: list[tuple[str, bytes]] = []
    stop = threading.Event()
    failed: list[BaseException] = []
    before = outcome_totals(settings, "sigma")

    def load() -> None:
        try:
            while not stop.is_set():
                burst = [sim.uplink(d) for d in devices]
                publish(settings, burst)
                published.extend(burst)
                time.sleep(0.05)
        except BaseException as exc:  # the test fails on it below
            failed.append(exc)

    def sigma_ids() -> list[str]:
        return ids_of([i for i in list(published) if "8b8b8b8b8b8b" in i[0]])

    publisher = threading.Thread(target=load, daemon=True)
    publisher.start()
    try:
        # The move starts once sigma's rows are being stored on the primary.
        wait_for(lambda: count_on(settings, None, "tenant_sigma", sigma_ids())[0] > 20,
                 timeout=120, what="sigma's uplinks stored on the primary")
        moved = run_cli("tenants", "move", "sigma", "--to", "second")
        assert moved.returncode == 0, moved.stdout + moved.stderr
        assert "now on second" in moved.stdout
        # Publishing goes on after the switch, to the new server.
        on_second = count_on(settings, "second", "tenant_sigma", sigma_ids())[0]
        wait_for(lambda: count_on(settings, "second", "tenant_sigma", sigma_ids())[0]
                 > on_second + 10, timeout=120, what="sigma stored on the second server")
    finally:
        stop.set()
        publisher.join(timeout=60)
    assert not failed, failed
    ids = sigma_ids()
    wait_for(lambda: count_on(settings, "second", "tenant_sigma", ids)[0] == len(ids),
             timeout=180, what="every uplink of sigma on the second server")
    time.sleep(2)
    assert count_on(settings, "second", "tenant_sigma", ids) == (len(ids), len(ids))
    wait_for(lambda: outcome_totals(settings, "sigma").get("stored", 0)
             - before.get("stored", 0) >= len(ids), timeout=60, what="sigma's outcomes")
    after = outcome_totals(settings, "sigma")
    assert after.get("stored", 0) - before.get("stored", 0) == len(ids)
    assert after.get("duplicate", 0) == before.get("duplicate", 0)
    alpha = ids_of([i for i in published if "a1a1a1a1a1a1" in i[0]])
    wait_for(lambda: count_on(settings, None, "tenant_alpha", alpha)[0] == len(alpha),
             timeout=120, what="alpha's uplinks")

    with connect_admin(settings) as admin:
        assert admin.execute("SELECT server, moved_from, ingest_paused_at FROM hv.members"
                             " WHERE slug = 'sigma'").fetchone() == ("second", "main", None)
        assert admin.execute("SELECT count(*) FROM hv.audit_log WHERE member_slug = 'sigma'"
                             " AND action = 'tenant.move'").fetchone() == (1,)
        # The old copy is kept, as it was at the switch.
        assert admin.execute("SELECT to_regclass('tenant_sigma.uplinks') IS NOT NULL"
                             ).fetchone() == (True,)

    refused = run_cli("tenants", "move", "sigma", "--drop-old")
    assert refused.returncode == 1 and "--yes" in refused.stdout + refused.stderr
    dropped = run_cli("tenants", "move", "sigma", "--drop-old", "--yes")
    assert dropped.returncode == 0, dropped.stdout + dropped.stderr
    with connect_admin(settings) as admin:
        assert admin.execute("SELECT to_regclass('tenant_sigma.uplinks')").fetchone() == (None,)
        assert admin.execute("SELECT moved_from FROM hv.members WHERE slug = 'sigma'"
                             ).fetchone() == (None,)
    assert json.dumps(count_on(settings, "second", "tenant_sigma", ids)) == json.dumps(
        [len(ids), len(ids)])

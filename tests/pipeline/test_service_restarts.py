"""Each service restarted under load, the pipeline's processes left alone: ingestion goes
on by itself.

The worker, the receiver and beat run as real processes (`hypervision worker`,
`hypervision receive`, `hypervision beat`), not under a supervisor: surviving a restart of
Redis, PostgreSQL or Mosquitto is their own job, so each test also checks that the very
same processes are still running at the end. Uplinks are counted exactly: every one
stored once in its member's table, and `stored` counted once per uplink in
hv.ingest_outcomes (a redelivered batch may add `duplicate` outcomes, never rows).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from hypervision import daemons
from hypervision.settings import Settings
from tests.conftest import wait_for
from tests.pipeline.helpers import dedup_id, publish_at, stored_count

pytestmark = [pytest.mark.services, pytest.mark.slow]

UPLINKS = 3000
RATE = 400.0  # uplinks per second: the restart falls in the middle of the stream
STOP_BOUND = 15.0  # seconds from SIGTERM to exit, whatever is down


class Process:
    """One of the pipeline's commands as a real process, in its own process group."""

    def __init__(self, settings: Settings, name: str, *args: str,
                 env: dict[str, str] | None = None) -> None:
        self.log_path = settings.data_dir / "log" / f"restarts-{name}.log"
        self.argv = [sys.executable, "-m", "hypervision", *args]
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        self.log_path.write_bytes(b"")
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.argv, env=self.env, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def terminate(self, timeout: float = 30.0) -> float:
        """SIGTERM, wait; SIGKILL if it hangs. Returns how long it took to exit."""
        assert self.process is not None
        started = time.monotonic()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return time.monotonic() - started


def outcomes(admin: psycopg.Connection) -> dict[str, int]:
    return {outcome: int(events) for outcome, events in admin.execute(
        "SELECT outcome, sum(events) FROM hv.ingest_outcomes WHERE event_type = 'up'"
        " GROUP BY outcome"
    ).fetchall()}


def restart_redis(settings: Settings) -> None:
    daemons.redis.stop(settings)
    time.sleep(2)  # down long enough for every client to notice
    daemons.redis.start(settings)


def restart_mosquitto(settings: Settings) -> None:
    daemons.mosquitto.stop(settings)
    time.sleep(2)
    daemons.mosquitto.start(settings)


def restart_postgres(settings: Settings) -> None:
    daemons.postgres.stop(settings)
    time.sleep(2)
    daemons.postgres.start(settings)


RESTARTS: dict[str, Callable[[Settings], None]] = {
    "redis": restart_redis,
    "postgres": restart_postgres,
    "mosquitto": restart_mosquitto,
}


@pytest.fixture(scope="module")
def pipeline(platform_db: Settings) -> Iterator[dict[str, Process]]:
    """Worker, receiver and beat, started once as an operator would, for every test of
    this module in turn (so the same processes live through every restart); stopped at
    the end, when the last test has not stopped them already."""
    processes = {
        "worker": Process(platform_db, "worker", "worker", "--concurrency", "2",
                          "--loglevel", "info"),
        "receiver": Process(platform_db, "receiver", "receive"),
        # Beat sends a job every 5 s, so its survival shows within the test.
        "beat": Process(platform_db, "beat", "beat", env={"HV_ALERTS_INTERVAL": "5"}),
    }
    for process in processes.values():
        process.start()
    try:
        yield processes
    finally:
        for process in processes.values():
            process.terminate()
        # Whatever a test did, the services are up again for the next one.
        daemons.start_all(platform_db)


def sent_jobs(beat: Process) -> int:
    return beat.log().count("Sending due task")


@pytest.mark.parametrize("service", list(RESTARTS))
def test_a_service_restarted_during_ingestion_loses_nothing_and_stops_nobody(
    service: str, platform_db: Settings, pipeline: dict[str, Process], simulator: Any
) -> None:
    from hypervision.db import connect_admin

    with connect_admin(platform_db) as admin:
        wait_for(lambda: "receiving MQTT" in pipeline["receiver"].log(), what="receiver up")
        wait_for(lambda: "ready" in pipeline["worker"].log(), what="worker ready")
        before = outcomes(admin)
    events = [simulator.uplink(d) for _ in range(UPLINKS // len(simulator.devices))
              for d in simulator.devices]
    ids = [dedup_id(p) for _, p in events]
    publisher = threading.Thread(target=publish_at,
                                 args=(platform_db, events, RATE))
    publisher.start()
    try:
        time.sleep(len(events) / RATE / 3)
        RESTARTS[service](platform_db)
        jobs_after_restart = sent_jobs(pipeline["beat"])
    finally:
        publisher.join()

    with connect_admin(platform_db) as admin:
        wait_for(lambda: stored_count(admin, ids) == len(ids), timeout=180,
                 what=f"every uplink stored after the {service} restart")
        time.sleep(2)  # a late redelivery must not add anything either
        assert stored_count(admin, ids) == len(ids)
        after = outcomes(admin)
        assert after.get("stored", 0) - before.get("stored", 0) == len(ids)
        measurement_dups = admin.execute(
            "SELECT count(*) - count(DISTINCT (dev_eui, metric, time))"
            " FROM tenant_alpha.measurements WHERE deduplication_id = ANY(%s::uuid[])", (ids,)
        ).fetchone()[0]
        assert measurement_dups == 0
    # Beat went on sending its jobs after the restart.
    wait_for(lambda: sent_jobs(pipeline["beat"]) > jobs_after_restart, timeout=30,
             what="beat to send a job after the restart")
    for name, process in pipeline.items():
        assert process.alive(), f"the {name} exited:\n{process.log()[-3000:]}"


def test_a_batch_that_finishes_after_redis_came_back_is_acknowledged_and_the_worker_lives(
    platform_db: Settings, pipeline: dict[str, Process], simulator: Any
) -> None:
    """The worker acknowledges a batch (acks_late) on the connection it received it on.
    When Redis restarts while the batch is being stored, that connection is gone by the
    time the batch is done: the acknowledgement must neither kill the worker nor lose or
    double the batch."""
    from hypervision.db import connect_admin

    wait_for(lambda: "ready" in pipeline["worker"].log(), what="worker ready")
    wait_for(lambda: "receiving MQTT" in pipeline["receiver"].log(), what="receiver up")
    events = [simulator.uplink(d) for _ in range(50) for d in simulator.devices]
    ids = [dedup_id(p) for _, p in events]
    with connect_admin(platform_db) as admin, connect_admin(platform_db) as locker:
        before = outcomes(admin)
        # Hold the batches inside their transaction: every batch holds alpha's uplinks.
        with locker.transaction():
            locker.execute("LOCK TABLE tenant_alpha.uplinks IN ACCESS EXCLUSIVE MODE")
            publish_at(platform_db, events, rate=0)
            wait_for(lambda: admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            ).fetchone()[0] > 0, what="a batch waiting on the lock")
            connected = pipeline["worker"].log().count("Connected to")
            daemons.redis.stop(platform_db)
            daemons.redis.start(platform_db)
            wait_for(lambda: pipeline["worker"].log().count("Connected to") > connected,
                     timeout=60, what="the worker to reconnect")
        wait_for(lambda: stored_count(admin, ids) == len(ids), timeout=120,
                 what="every uplink stored")
        time.sleep(2)
        assert stored_count(admin, ids) == len(ids)
        assert outcomes(admin).get("stored", 0) - before.get("stored", 0) == len(ids)
    time.sleep(3)  # the acknowledgement comes after the batch is stored
    for name, process in pipeline.items():
        assert process.alive(), f"the {name} exited:\n{process.log()[-3000:]}"


def test_every_process_stops_promptly_on_sigterm_while_redis_and_mosquitto_are_down(
    platform_db: Settings, pipeline: dict[str, Process]
) -> None:
    """Last in this module: it stops the pipeline's processes. An operator stopping the
    pipeline during an outage must not wait on it: each process exits on SIGTERM within a
    bound (measured: 0.3 to 7.6 s on this shared machine; a hang would take minutes)."""
    wait_for(lambda: "ready" in pipeline["worker"].log(), what="worker ready")
    wait_for(lambda: "receiving MQTT" in pipeline["receiver"].log(), what="receiver up")
    failures = pipeline["worker"].log().count("Cannot connect")
    daemons.mosquitto.stop(platform_db)
    daemons.redis.stop(platform_db)
    # Long enough for each to be in its reconnection loop (and beat in its retries).
    wait_for(lambda: pipeline["worker"].log().count("Cannot connect") > failures,
             what="worker retrying")
    time.sleep(3)
    took = {name: process.terminate(timeout=60) for name, process in pipeline.items()}
    print("seconds to exit after SIGTERM:", {k: round(v, 2) for k, v in took.items()})
    slow = {name: t for name, t in took.items() if t > STOP_BOUND}
    assert not slow, f"slower than {STOP_BOUND} s to stop: {slow}"

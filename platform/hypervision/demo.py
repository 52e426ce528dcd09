"""The platform's main job on its embedded default: `hypervision demo`.

1. Start the local services (PostgreSQL + TimescaleDB, Redis, Mosquitto).
2. Apply migrations and the example members under tenants/, and start Superset with each
   member's dashboards and a demo login.
3. Start a Celery worker (a child process) and the MQTT receiver.
4. Publish simulated ChirpStack events for the members' devices through Mosquitto.
5. Show a live summary until Ctrl-C (or --duration), then stop the simulator, receiver
   and worker after the queue has drained, so that nothing published is left behind.
   The services and Superset stay up for the dashboards unless `stop_all` is asked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
import psycopg
import redis
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from hypervision.settings import Settings

INGEST_QUEUE = "ingest"


def publish_stream(settings: Settings, stream: Iterator[tuple[str, bytes]], rate: float,
                   stop: threading.Event, client_id: str = "hypervision-simulator",
                   on_publish: Callable[[], None] | None = None) -> int:
    """Publish (topic, payload) pairs at QoS 1, at most `rate` per second (0: no limit);
    returns the count once the broker has acknowledged every message."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=30)
    client.loop_start()
    sent = 0
    last = None
    started = time.monotonic()
    try:
        for topic, payload in stream:
            if stop.is_set():
                break
            last = client.publish(topic, payload, qos=1)
            sent += 1
            if on_publish is not None:
                on_publish()
            ahead = sent / rate - (time.monotonic() - started) if rate > 0 else 0
            if ahead > 0:
                stop.wait(ahead)
        if last is not None:
            last.wait_for_publish(timeout=60)
    finally:
        client.disconnect()
        client.loop_stop()
    return sent


@dataclass
class Snapshot:
    at: float
    stored: int = 0
    duplicate: int = 0
    failed: int = 0
    dead_letters: int = 0
    members: dict[str, tuple[int, int]] = field(default_factory=dict)
    queue: int = 0
    latency: float | None = None


def snapshot(conn: psycopg.Connection, broker: redis.Redis) -> Snapshot:
    snap = Snapshot(at=time.monotonic())
    for outcome, events in conn.execute(
        "SELECT outcome, sum(events) FROM hv.ingest_outcomes WHERE event_type = 'up'"
        " GROUP BY outcome"
    ).fetchall():
        if outcome in ("stored", "decode_failed"):
            snap.stored += int(events)
        elif outcome == "duplicate":
            snap.duplicate += int(events)
        else:
            snap.failed += int(events)
    snap.dead_letters = conn.execute("SELECT count(*) FROM hv.dead_letters").fetchone()[0]
    for slug, schema in conn.execute("SELECT slug, schema_name FROM hv.members ORDER BY slug"):
        from psycopg import sql

        uplinks, measurements = conn.execute(
            sql.SQL("SELECT (SELECT count(*) FROM {s}.uplinks),"
                    " (SELECT count(*) FROM {s}.measurements)").format(s=sql.Identifier(schema))
        ).fetchone()
        snap.members[slug] = (uplinks, measurements)
    snap.queue = int(broker.llen(INGEST_QUEUE))
    raw = broker.get("hv:stats:last_batch")
    if raw:
        stats = json.loads(raw)
        if time.time() - stats["at"] < 10:
            snap.latency = stats["latency"]
    return snap


def render(now: Snapshot, before: Snapshot | None, published: int) -> Group:
    rate = 0.0
    if before is not None and now.at > before.at:
        rate = (now.stored - before.stored) / (now.at - before.at)
    head = Table.grid(padding=(0, 2))
    head.add_row("published", str(published), "stored uplinks", str(now.stored),
                 "uplinks/s", f"{rate:.0f}")
    head.add_row("duplicates", str(now.duplicate), "dead letters", str(now.dead_letters),
                 "lag", f"{now.queue} batches queued"
                 + (f", last batch {now.latency:.2f}s after receipt" if now.latency else ""))
    members = Table(title="rows per member", title_justify="left")
    members.add_column("member")
    members.add_column("uplinks", justify="right")
    members.add_column("measurements", justify="right")
    for slug, (uplinks, measurements) in now.members.items():
        members.add_row(slug, str(uplinks), str(measurements))
    return Group(head, members)


def start_worker(settings: Settings, env: dict[str, str] | None = None,
                 concurrency: int | None = None) -> subprocess.Popen[bytes]:
    """A Celery worker as a child process, with its own process group."""
    command = [sys.executable, "-m", "hypervision", "worker", "--loglevel", "warning"]
    if concurrency:
        command += ["--concurrency", str(concurrency)]
    log_file = open(settings.data_dir / "log" / "worker.log", "ab")  # noqa: SIM115
    return subprocess.Popen(command, env=env or os.environ.copy(), stdout=log_file,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop_worker(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Warm shutdown (SIGTERM: finish the current batch), then SIGKILL if it hangs."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_drained(conn: psycopg.Connection, broker: redis.Redis, expected_events: int,
                 timeout: float) -> bool:
    """Wait until every published event has an outcome (or the timeout passes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = conn.execute("SELECT coalesce(sum(events), 0) FROM hv.ingest_outcomes").fetchone()[0]
        if done >= expected_events and broker.llen(INGEST_QUEUE) == 0:
            return True
        time.sleep(0.5)
    return False


def run(settings: Settings, rate: float, duration: float | None, console: Console,
        stop_all: bool = False) -> Snapshot:
    from hypervision import services
    from hypervision.commands.database import run_migrations
    from hypervision.commands.tenants import apply_tenants
    from hypervision.db import connect_admin
    from hypervision.simulator import Simulator
    from hypervision.superset import demo_login
    from hypervision.superset import stop as stop_superset
    from hypervision.tenancy.spec import load_dir
    from ingest.batcher import Batcher
    from ingest.decode import Catalogue
    from ingest.receive import MqttReceiver, celery_sender

    log = console.print
    were_running = services.status(settings)
    services.start_all(settings, log=log)
    run_migrations()
    apply_tenants(quiet=True)
    log("tenants applied: " + ", ".join(s.name for s in load_dir(settings.tenants_dir)))
    log("starting Superset and provisioning each member's dashboards")
    dashboards = demo_login(settings, log=log)
    log("dashboards: {} (login {} / {})".format(*dashboards))
    worker = start_worker(settings)
    receiver = MqttReceiver(
        settings, Batcher(celery_sender(settings), settings.batch_size,
                          settings.batch_max_wait).start()
    ).start()
    stop = threading.Event()
    published = [0]
    with connect_admin(settings) as conn:
        base = conn.execute("SELECT coalesce(sum(events), 0) FROM hv.ingest_outcomes").fetchone()[0]
    simulator = Simulator(load_dir(settings.tenants_dir), Catalogue.load())

    def count() -> None:
        published[0] += 1

    publisher = threading.Thread(
        target=publish_stream, args=(settings, simulator.stream(), rate, stop),
        kwargs={"on_publish": count}, daemon=True,
    )
    publisher.start()
    log(f"simulating {len(simulator.devices)} devices at {rate:g} uplinks/s; Ctrl-C to stop")
    broker = redis.Redis.from_url(settings.redis_url)
    started = time.monotonic()
    last: Snapshot | None = None
    try:
        with connect_admin(settings) as conn, Live(console=console, refresh_per_second=2) as live:
            while duration is None or time.monotonic() - started < duration:
                now = snapshot(conn, broker)
                live.update(render(now, last, published[0]))
                last = now
                time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        log("stopping: simulator, receiver (flushing), then waiting for the queue to drain")
        stop.set()
        publisher.join(30)
        receiver.stop()
        with connect_admin(settings) as conn:
            drained = wait_drained(conn, broker, base + published[0], timeout=60)
            final = snapshot(conn, broker)
        stop_worker(worker)
        if not drained:
            log("warning: some events were still queued; they stay in Redis for the next run")
        if stop_all:
            stop_superset(settings, log=log)
            if not any(were_running.values()):
                services.stop_all(settings, log=log)
    log(f"published {published[0]} events; stored {final.stored} uplinks,"
        f" {final.dead_letters} dead letters")
    if not stop_all:
        log("dashboards stay available at {} (login {} / {});".format(*dashboards)
            + " stop everything with: hypervision superset stop && hypervision services stop")
    return final

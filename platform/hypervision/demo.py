"""The platform's main job on its embedded default: `hypervision demo`.

1. Start the local services (PostgreSQL + TimescaleDB, Redis, Mosquitto).
2. Apply migrations and the example members under tenants/, and start Superset with each
   member's dashboards and a demo login.
3. Start a Celery worker and Celery beat (the periodic jobs: rollups, alerts, ...) under
   supervisord (hypervision.supervise: killed or crashed, they are started again), and
   the MQTT receiver.
4. Backfill the history: HV_DEMO_HISTORY_DAYS days (default 30) of simulated ChirpStack
   events for every example device, with past timestamps, published at full speed
   through Mosquitto and the real pipeline, with a progress bar. A second run only fills
   the time since the devices' last stored reading, carrying on from their last values.
5. Refresh every member's rollups and derived tables once (what beat does every minute),
   so that every dashboard is filled when the demo says it is ready.
6. Publish live events, show a summary until Ctrl-C (or --duration), then stop the
   simulator, receiver, beat and worker after the queue has drained, so that nothing
   published is left behind. The services and Superset stay up for the dashboards
   unless `stop_all` is asked. A failure before the demo is ready stops what it started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import redis
from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
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
    if settings.mqtt_username:
        password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        client.username_pw_set(settings.mqtt_username, password)
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
    (snap.dead_letters,) = conn.execute("SELECT count(*) FROM hv.dead_letters").fetchone() or (0,)
    for slug, schema in conn.execute("SELECT slug, schema_name FROM hv.members ORDER BY slug"):
        from psycopg import sql

        uplinks, measurements = conn.execute(
            sql.SQL("SELECT (SELECT count(*) FROM {s}.uplinks),"
                    " (SELECT count(*) FROM {s}.measurements)").format(s=sql.Identifier(schema))
        ).fetchone() or (0, 0)
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


def stop_worker(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Warm shutdown (SIGTERM: finish the current batch), then SIGKILL if it hangs.

    `process` is a worker, or the supervisord running one (which passes the SIGTERM on
    and waits for it, up to hypervision.supervise.STOP_WAIT_SECONDS)."""
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
        (done,) = conn.execute("SELECT coalesce(sum(events), 0) FROM hv.ingest_outcomes"
                               ).fetchone() or (0,)
        if done >= expected_events and broker.llen(INGEST_QUEUE) == 0:
            return True
        time.sleep(0.5)
    return False


def outcomes_total(conn: psycopg.Connection) -> int:
    """Events that have an outcome so far, whatever it is."""
    row = conn.execute("SELECT coalesce(sum(events), 0) FROM hv.ingest_outcomes").fetchone()
    return int(row[0]) if row else 0


def resume(conn: psycopg.Connection, simulator: Any) -> dict[str, datetime]:
    """Carry the simulated devices on from what a previous run stored: each device's last
    reading time and frame counter, and its last values (index, fill level, battery, ...).
    Returns the last reading time per DevEUI (the history resumes after it)."""
    from psycopg import sql

    by_member: dict[str, list[Any]] = {}
    for device in simulator.devices:
        by_member.setdefault(device.member, []).append(device)
    since: dict[str, datetime] = {}
    for member, devices in by_member.items():
        row = conn.execute("SELECT schema_name FROM hv.members WHERE slug = %s",
                           (member,)).fetchone()
        if row is None:
            continue
        s = sql.Identifier(row[0])
        last = {dev_eui: (seen, f_cnt) for dev_eui, seen, f_cnt in conn.execute(
            sql.SQL("SELECT dev_eui, last_seen, last_f_cnt FROM {}.device_state"
                    " WHERE last_seen IS NOT NULL").format(s))}
        values: dict[str, dict[str, float]] = {}
        for dev_eui, metric, value in conn.execute(
            sql.SQL("SELECT DISTINCT ON (dev_eui, metric) dev_eui, metric, value"
                    " FROM {}.measurements WHERE dev_eui = ANY(%s)"
                    " ORDER BY dev_eui, metric, time DESC").format(s),
            ([d.dev_eui for d in devices if d.dev_eui in last],),
        ):
            values.setdefault(dev_eui, {})[metric] = float(value)
        for device in devices:
            if device.dev_eui not in last:
                continue
            seen, f_cnt = last[device.dev_eui]
            since[device.dev_eui] = device.last = seen
            device.f_cnt = int(f_cnt or 0)
            simulator.carry_on(device, values.get(device.dev_eui, {}))
    return since


@dataclass
class Backfill:
    events: int = 0
    seconds: float = 0.0
    complete: bool = True


def backfill(settings: Settings, simulator: Any, days: float, console: Console,
             stop: threading.Event, stall_timeout: float = 120.0) -> Backfill:
    """Publish `days` of history for every simulated device at full speed through the real
    pipeline, with a progress bar of the events published and of those the pipeline has
    stored; returns once every event has an outcome (or nothing moved for
    `stall_timeout` seconds)."""
    from hypervision.db import connect_admin

    end = simulator.end
    with connect_admin(settings) as conn:
        since = resume(conn, simulator)
        schedule = simulator.schedule(end - timedelta(days=days), end, since)
        base = outcomes_total(conn)
    result = Backfill(events=len(schedule))
    if not schedule:
        console.print("history: already up to date")
        return result
    published = [0]

    def count() -> None:
        published[0] += 1

    publisher = threading.Thread(
        target=publish_stream, args=(settings, simulator.events(schedule), 0, stop),
        kwargs={"client_id": settings.mqtt_client_id + "-history", "on_publish": count},
        daemon=True,
    )
    columns = (TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
               TaskProgressColumn(), TextColumn("{task.fields[rate]:>6} /s"),
               TimeElapsedColumn(), TimeRemainingColumn())
    first = schedule[0][0].astimezone().strftime("%d/%m %H:%M")
    console.print(f"history: {len(schedule)} events of {len(simulator.devices)} devices"
                  f" since {first}, through the pipeline at full speed")
    started = time.monotonic()
    publisher.start()
    with connect_admin(settings) as conn, \
            Progress(*columns, console=console) as progress:
        sent = progress.add_task("published (MQTT)", total=len(schedule), rate="")
        done = progress.add_task("stored (TimescaleDB)", total=len(schedule), rate="")
        stored, moved = 0, time.monotonic()
        while stored < len(schedule) and not stop.is_set():
            time.sleep(0.5)
            now = outcomes_total(conn) - base
            if now != stored or publisher.is_alive():
                moved = time.monotonic()
            elif time.monotonic() - moved > stall_timeout:
                result.complete = False
                break
            stored = now
            elapsed = max(time.monotonic() - started, 0.1)
            progress.update(sent, completed=published[0], rate=f"{published[0] / elapsed:.0f}")
            progress.update(done, completed=min(stored, len(schedule)),
                            rate=f"{stored / elapsed:.0f}")
    publisher.join(60)
    result.seconds = time.monotonic() - started
    return result


def refresh_rollups(settings: Settings, console: Console) -> None:
    """What the beat job does every HV_ROLLUP_INTERVAL seconds, once, now: every member's
    rollups and derived tables (water, waste, air, health) from the fresh history."""
    from hypervision import placement
    from hypervision.analytics import members, rollups
    from hypervision.db import connect_admin

    with connect_admin(settings) as conn, placement.Connections(settings, conn) as servers:
        todo = members.members(conn)
        with Progress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[member]}"), TimeElapsedColumn(),
                      console=console) as progress:
            task = progress.add_task("rollups and analytics", total=len(todo), member="")
            for m in todo:
                progress.update(task, member=m.slug)
                # The beat job may be refreshing this member already: wait for it, then
                # pick up what it had not seen.
                while rollups.refresh(servers.get(m.server), m, settings,
                                      catalogue=conn).skipped:
                    time.sleep(1.0)
                progress.advance(task)


def run(settings: Settings, rate: float, duration: float | None, console: Console,
        stop_all: bool = False, history_days: float | None = None) -> Snapshot:
    from hypervision import daemons, supervise
    from hypervision.commands.database import run_migrations
    from hypervision.commands.tenants import apply_tenants
    from hypervision.db import connect_admin
    from hypervision.simulator import Simulator
    from hypervision.superset import demo_login, signin
    from hypervision.superset import status as superset_status
    from hypervision.superset import stop as stop_superset
    from hypervision.tenancy.spec import load_dir
    from ingest.batcher import Batcher
    from ingest.decode import Catalogue
    from ingest.receive import MqttReceiver, celery_sender

    log = console.print
    dashboards: tuple[str, str, str] = ("", "", "")
    days = settings.demo_history_days if history_days is None else history_days
    were_running = daemons.status(settings)
    superset_was_running = superset_status(settings)
    children: list[subprocess.Popen[bytes]] = []
    receiver = None
    ready = False
    stop = threading.Event()
    published = [0]
    publisher: threading.Thread | None = None
    base = 0
    broker = redis.Redis.from_url(settings.redis_url)
    last: Snapshot | None = None
    final: Snapshot | None = None
    try:
        daemons.start_all(settings, log=log)
        run_migrations()
        apply_tenants(quiet=True)
        specs = load_dir(settings.tenants_dir)
        log("tenants applied: " + ", ".join(s.name for s in specs))
        # The API serves the console, where people sign in, Superset included.
        if settings.platform_public_url is None:
            # Plain http on loopback: the session cookie cannot be `Secure` there.
            os.environ.setdefault("HV_CONSOLE_SECURE_COOKIE", "false")
        log("starting the worker, beat and the API under supervisord"
            f" (logs: {settings.data_dir / 'log'})")
        children.append(supervise.start(settings, ["worker", "beat", "api"]))
        receiver = MqttReceiver(
            settings, Batcher(celery_sender(settings), settings.batch_size,
                              settings.batch_max_wait).start()
        ).start()
        # Superset starts while the history goes through the pipeline (its first start
        # takes minutes too); a failure to start it stops the backfill.
        log("starting Superset and provisioning each member's dashboards")
        login: list[tuple[str, str, str]] = []
        failed: list[BaseException] = []

        def start_superset() -> None:
            try:
                login.append(demo_login(settings, log=log))
            except BaseException as exc:
                failed.append(exc)
                stop.set()

        superset_starter = threading.Thread(target=start_superset, daemon=True)
        superset_starter.start()
        simulator = Simulator(specs, Catalogue.load())
        if days > 0:
            history = backfill(settings, simulator, days, console, stop)
            if history.events and not stop.is_set():
                log(f"history: {history.events} events in {history.seconds:.0f}s"
                    + ("" if history.complete else " (some were still queued)"))
        superset_starter.join()
        if failed:
            raise failed[0]
        dashboards = login[0]
        if days > 0:
            refresh_rollups(settings, console)
        with connect_admin(settings) as conn:
            base = outcomes_total(conn)

        def count() -> None:
            published[0] += 1

        publisher = threading.Thread(
            target=publish_stream, args=(settings, simulator.stream(), rate, stop),
            kwargs={"on_publish": count}, daemon=True,
        )
        publisher.start()
        ready = True
        log("ready: dashboards at {} (sign in as {} / {})".format(*dashboards))
        log(f"the console: {signin.platform_public_url(settings)}/console/")
        log(f"simulating {len(simulator.devices)} devices at {rate:g} uplinks/s; Ctrl-C to stop")
        started = time.monotonic()
        with connect_admin(settings) as conn, Live(console=console, refresh_per_second=2) as live:
            while duration is None or time.monotonic() - started < duration:
                now = snapshot(conn, broker)
                live.update(render(now, last, published[0]))
                last = now
                time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        if receiver is not None or children:
            log("stopping: simulator, receiver (flushing), then waiting for the queue to drain")
        stop.set()
        if publisher is not None:
            publisher.join(30)
        if receiver is not None:
            receiver.stop()
        drained = True
        try:
            if ready:
                with connect_admin(settings) as conn:
                    drained = wait_drained(conn, broker, base + published[0], timeout=60)
                    final = snapshot(conn, broker)
            else:
                log("stopped before the demo was ready")
        finally:
            # The worker and beat go away even if the database went first.
            for child in reversed(children):
                stop_worker(child)
        if not drained:
            log("warning: some events were still queued; they stay in Redis for the next run")
        # What this run started goes away with it when asked, or when it never got ready.
        if stop_all or not ready:
            if not superset_was_running:
                stop_superset(settings, log=log)
            if not any(were_running.values()):
                daemons.stop_all(settings, log=log)
    if final is None:
        return Snapshot(at=time.monotonic())
    log(f"published {published[0]} live events; stored {final.stored} uplinks in all,"
        f" {final.dead_letters} dead letters")
    if not stop_all:
        log("dashboards stay available at {} (sign in as {} / {});".format(*dashboards)
            + " stop everything with: hypervision superset stop && hypervision services stop")
    return final

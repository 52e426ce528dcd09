"""Ingest, end to end: simulated ChirpStack events → Mosquitto → receiver → Celery → TimescaleDB.

Run: `.venv/bin/python -m bench.ingest [--uplinks 1000000]` (see bench/README.md).

1. A fleet (4 members x 2,500 devices: water meters hourly, containers every 30 min, CO2
   sensors every 10 min) is applied like any member. Its events are generated once, ahead
   of time, by two processes with the platform's simulator (hypervision.simulator): real
   ChirpStack JSON with real payload bytes, a status event every `--status-every`
   uplinks, each device at its own interval over the recent past (times spread out, never
   hundreds of frames in one second). The file is cached under the data folder.
2. Phases, each on emptied member tables, publishing at QoS 1 from a process of its own
   (bench/publisher/publish.mjs, MQTT.js on Node.js: the stream's events in order, at
   most 20,000 unacknowledged by the broker):
   - naive: `--naive-uplinks` through bench/naive.py (one task per uplink, one INSERT per
     row, a commit each);
   - throughput: `--uplinks` as fast as the broker takes them; the rate counts until every
     event has its outcome row, which is written in the same transaction as the rows;
   - latency: `--latency-uplinks` paced at `--latency-rate` (the 10,000/s target), for
     the publish → visible latency at that load (at saturation latency only measures the
     backlog);
   - profile: `--profile-uplinks` with py-spy on the receiver and the worker
     (bench/stacks.py summarises; bench/results/ingest_profile.json).
3. Latency: one uplink in `--sample-every` is timed from its publish to the first poll
   (every 0.1 s, the 200 oldest pending) of the member tables that sees its
   deduplicationId; also reported from
   `measurements.ingested_at` (its transaction's start, so a lower bound).
4. CPU and peak memory per process (bench.harness.Monitor): receiver, worker (main and
   pool), PostgreSQL, Redis, Mosquitto, and the publisher (the load generator).
"""

from __future__ import annotations

import argparse
import heapq
import json
import multiprocessing as mp
import os
import queue
import random
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from bench import harness

# The stream file's layout; bench/publisher/publish.mjs reads the same records.
RECORD = struct.Struct("<BHI")  # kind (0 uplink, 1 status), topic length, payload length
PART = struct.Struct("<I")  # position in the stream, before each record of a part file
UP, STATUS = 0, 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Ingest benchmark, end to end.")
    p.add_argument("--uplinks", type=int, default=1_000_000)
    p.add_argument("--members", type=int, default=4)
    p.add_argument("--devices-per-member", type=int, default=2500)
    p.add_argument("--status-every", type=int, default=50,
                   help="one status event after every N uplinks")
    p.add_argument("--sample-every", type=int, default=100,
                   help="time one uplink in N from publish to visible")
    p.add_argument("--naive-uplinks", type=int, default=20_000, help="0: skip the naive run")
    p.add_argument("--latency-uplinks", type=int, default=200_000,
                   help="0: skip the paced latency run")
    p.add_argument("--latency-rate", type=float, default=10_000.0)
    p.add_argument("--profile-uplinks", type=int, default=200_000, help="0: no profile")
    p.add_argument("--workers", type=int, default=1, help="Celery worker processes")
    p.add_argument("--concurrency", type=int, default=2, help="pool size of each worker")
    p.add_argument("--receivers", type=int, default=1,
                   help="MQTT receivers (more than one share a subscription)")
    p.add_argument("--servers", type=int, default=1, choices=(1, 2),
                   help="2: every second member on a second local PostgreSQL + TimescaleDB"
                        " (port base + 433), declared in a servers file (docs/scale.md)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--batch-max-wait", type=float, default=0.5)
    p.add_argument("--naive-concurrency", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--name", default="ingest",
                   help="result file bench/results/<name>.json (e.g. for a run at another rate)")
    p.add_argument("--timeout", type=float, default=1800.0,
                   help="give up a phase after this many seconds without completion")
    harness.add_common_args(p)
    return p.parse_args(argv)


# 1. The event stream, generated ahead of time -----------------------------------------


@dataclass
class Stream:
    path: Path
    events: int
    uplinks: int
    samples: dict[int, str]  # position in the stream -> deduplicationId of a timed uplink
    first_time: str
    last_time: str
    status_every: int

    def count_for(self, uplinks: int) -> int:
        """Events to publish so that `uplinks` uplinks (and their statuses) go out."""
        return min(self.events, uplinks + uplinks // self.status_every)


def _schedule(intervals: list[int], uplinks: int, status_every: int, seed: int,
              end: float) -> list[tuple[int, int, float]]:
    """(kind, device index, time) of every event, in time order: each device at its own
    interval with a random phase and a few seconds of jitter, over the window that gives
    `uplinks` uplinks."""
    rng = random.Random(seed)
    per_second = sum(1.0 / i for i in intervals)
    window = uplinks / per_second * 1.02 + max(intervals)
    start = end - window
    times: list[tuple[float, int]] = []
    for index, interval in enumerate(intervals):
        t = start + rng.uniform(0, interval)
        while t < end:
            times.append((t + rng.uniform(-3, 3), index))
            t += interval
    times.sort()
    events: list[tuple[int, int, float]] = []
    for n, (t, index) in enumerate(times[-uplinks:]):
        events.append((UP, index, t))
        if (n + 1) % status_every == 0:
            events.append((STATUS, index, t + 1.0))
    return events


def _generate_part(job: dict[str, Any]) -> tuple[str, dict[int, str]]:
    """Write the events of the devices with index % parts == part to a part file."""
    from hypervision.simulator import Simulator
    from hypervision.tenancy.spec import TenantSpec
    from ingest.decode import Catalogue

    specs = [TenantSpec.model_validate(s) for s in job["specs"]]
    sim = Simulator(specs, Catalogue.load(), seed=job["seed"] * 1000 + job["part"])
    intervals = job["intervals"]
    events = _schedule(intervals, job["uplinks"], job["status_every"], job["seed"], job["end"])
    samples: dict[int, str] = {}
    path = job["path"]
    uplink_no = -1
    with open(path, "wb", buffering=1 << 20) as out:
        for position, (kind, index, t) in enumerate(events):
            if kind == UP:
                uplink_no += 1
            if index % job["parts"] != job["part"]:
                continue
            device = sim.devices[index]
            when = datetime.fromtimestamp(t, UTC)
            if kind == UP:
                topic, payload = sim.uplink(device, when)
                if uplink_no % job["sample_every"] == 0:
                    samples[position] = json.loads(payload)["deduplicationId"]
            else:
                topic, payload = sim.status(device, when)
            raw_topic = topic.encode()
            out.write(PART.pack(position))
            out.write(RECORD.pack(kind, len(raw_topic), len(payload)))
            out.write(raw_topic)
            out.write(payload)
    return path, samples


def _read_part(path: str) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb", buffering=1 << 20) as f:
        while head := f.read(PART.size):
            (position,) = PART.unpack(head)
            record = f.read(RECORD.size)
            _, tlen, plen = RECORD.unpack(record)
            yield position, record + f.read(tlen + plen)


def ensure_stream(cache: Path, specs: list[Any], args: argparse.Namespace) -> Stream:
    """The cached stream for these parameters, generated first if missing."""
    from bench.fleet import kind_of

    total_uplinks = max(args.uplinks, args.naive_uplinks, args.latency_uplinks,
                        args.profile_uplinks, 1)
    key = (f"stream-{args.members}x{args.devices_per_member}-{total_uplinks}"
           f"-s{args.seed}-st{args.status_every}-sa{args.sample_every}")
    path = cache / f"{key}.bin"
    meta_path = cache / f"{key}.json"
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        return Stream(path, meta["events"], meta["uplinks"],
                      {int(k): v for k, v in meta["samples"].items()}, meta["first_time"],
                      meta["last_time"], args.status_every)
    cache.mkdir(parents=True, exist_ok=True)
    intervals = [kind_of(d.model).interval_s for s in specs for d in s.devices]
    end = float(int(time.time()) - 120)
    parts = 2
    jobs = [{
        "specs": [s.model_dump(mode="json") for s in specs], "intervals": intervals,
        "uplinks": total_uplinks, "status_every": args.status_every, "seed": args.seed,
        "end": end, "part": part, "parts": parts, "sample_every": args.sample_every,
        "path": str(cache / f"{key}.part{part}"),
    } for part in range(parts)]
    started = time.monotonic()
    print(f"generating {total_uplinks:,} uplinks for {len(intervals):,} devices"
          f" ({parts} processes, cached in {path})", flush=True)
    with mp.get_context("spawn").Pool(parts) as pool:
        results = pool.map(_generate_part, jobs)
    samples: dict[int, str] = {}
    events = 0
    with open(path.with_suffix(".tmp"), "wb", buffering=1 << 20) as out:
        for _, record in heapq.merge(*(_read_part(p) for p, _ in results)):
            out.write(record)
            events += 1
    for part_path, part_samples in results:
        samples.update(part_samples)
        os.unlink(part_path)
    path.with_suffix(".tmp").replace(path)
    schedule = _schedule(intervals, total_uplinks, args.status_every, args.seed, end)
    meta = {
        "events": events, "uplinks": total_uplinks, "samples": samples,
        "first_time": datetime.fromtimestamp(schedule[0][2], UTC).isoformat(),
        "last_time": datetime.fromtimestamp(schedule[-1][2], UTC).isoformat(),
        "generated_in_s": round(time.monotonic() - started, 1),
    }
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    print(f"generated {events:,} events in {meta['generated_in_s']} s", flush=True)
    return Stream(path, events, total_uplinks, samples, meta["first_time"], meta["last_time"],
                  args.status_every)


# 2. The publisher (a process of its own) -------------------------------------------------


PUBLISHER = harness.REPO / "bench" / "publisher"
WINDOW = 20_000  # events left unacknowledged by the broker, at most


def publisher_argv() -> list[str]:
    """The load generator's command (bench/publisher/publish.mjs, MQTT.js), or a clear
    error naming what is missing. A Python publisher (paho) cost several times the CPU
    per uplink (bench/README.md), on the same cores as the pipeline under test."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("the benchmark's publisher needs Node.js (`node`): run"
                           " infra/install.sh, or install Debian's nodejs and npm")
    if not (PUBLISHER / "node_modules" / "mqtt" / "package.json").exists():
        raise RuntimeError(f"the benchmark's publisher needs its packages: run `npm ci` in"
                           f" {PUBLISHER} (infra/install.sh does)")
    return [node, str(PUBLISHER / "publish.mjs")]


class Publisher:
    """The publisher process: the first `count` events of the stream, in order, at QoS 1,
    at most `rate` per second (0: as fast as the broker acknowledges, with at most
    `window` unacknowledged).

    It writes JSON lines (bench/publisher/publish.mjs says which); a thread of this
    process turns them into the messages `run_phase` reads from `out`: ('times',
    [(deduplicationId, publish time)]) for the sampled uplinks every 0.2 s, then
    ('done', {...}), or ('failed', exit code) if it stopped without finishing.
    """

    def __init__(self, host: str, port: int, path: str, count: int, rate: float,
                 samples: dict[int, str], out: queue.Queue[tuple[str, Any]], log: Path,
                 window: int = WINDOW) -> None:
        self.config = {
            "host": host, "port": port, "clientId": f"hv-bench-publisher-{os.getpid()}",
            "path": path, "count": count, "rate": rate, "window": window,
            "samples": sorted(samples),
        }
        self.samples = samples
        self.out = out
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        with self.log.open("ab") as errors:
            self.proc = subprocess.Popen(publisher_argv(), stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=errors,
                                         start_new_session=True, cwd=harness.REPO)
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(self.config).encode())
        self.proc.stdin.close()
        self.reader = threading.Thread(target=self._read, name="publisher-reader", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        done = False
        for line in self.proc.stdout:
            message = json.loads(line)
            if "times" in message:
                self.out.put(("times", [(self.samples[position], at)
                                        for position, at in message["times"]]))
            else:
                self.out.put(("done", message["done"]))
                done = True
        code = self.proc.wait()
        if not done:
            self.out.put(("failed", code))

    def join(self, timeout: float) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.reader is not None:
            self.reader.join(timeout)


# 3. Pipeline processes -------------------------------------------------------------------


@dataclass
class Procs:
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    receivers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    naive: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self, which: list[subprocess.Popen[bytes]]) -> None:
        import signal

        for p in which:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in which:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        which.clear()


def spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    return subprocess.Popen(argv, env=env, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=harness.REPO)


def wait_log(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited; see {path}")
        if path.exists() and text in path.read_text(encoding="utf-8", errors="replace"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"no '{text}' in {path} after {timeout:.0f} s")


def start_pipeline(ctx: Context) -> None:
    from ingest.receive import forget_session

    args, env, log_dir = ctx.args, dict(ctx.bench.env), ctx.log_dir
    env.update({
        "HV_BATCH_SIZE": str(args.batch_size), "HV_BATCH_MAX_WAIT": str(args.batch_max_wait),
        "HV_WORKER_CONCURRENCY": str(args.concurrency),
    })
    for w in range(args.workers):
        ctx.procs.workers.append(spawn(
            [sys.executable, "-m", "hypervision", "worker", "--concurrency",
             str(args.concurrency), "--loglevel", "warning"], env, log_dir / f"worker{w}.log"))
    wait_workers(ctx, args.workers)
    for r in range(args.receivers):
        client_id = f"hv-bench-receiver-{r}"
        forget_session(ctx.settings, client_id)
        renv = {**env, "HV_MQTT_CLIENT_ID": client_id}
        if args.receivers > 1:
            renv["HV_MQTT_SHARED_GROUP"] = "hvbench"
        log = log_dir / f"receiver{r}.log"
        log.unlink(missing_ok=True)
        proc = spawn([sys.executable, "-m", "hypervision", "receive", "--no-http"], renv, log)
        ctx.procs.receivers.append(proc)
        wait_log(log, "receiving MQTT", proc)
    time.sleep(1.0)


def wait_workers(ctx: Context, count: int, timeout: float = 90) -> None:
    """Until `count` Celery workers answer a ping (their pools are up)."""
    from hypervision.celery_app import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0) or []) >= count:
            return
        for p in ctx.procs.workers:
            if p.poll() is not None:
                raise RuntimeError(f"a worker exited; see {ctx.log_dir}")
    raise RuntimeError(f"{count} worker(s) did not answer within {timeout:.0f} s")


def start_naive(ctx: Context) -> None:
    env, log_dir = ctx.bench.env, ctx.log_dir
    ctx.procs.naive.append(spawn([sys.executable, "-m", "bench.naive", "worker",
                                  "--concurrency", str(ctx.args.naive_concurrency)],
                                 env, log_dir / "naive-worker.log"))
    time.sleep(3.0)
    log = log_dir / "naive-subscriber.log"
    log.unlink(missing_ok=True)
    proc = spawn([sys.executable, "-m", "bench.naive", "subscribe"], env, log)
    ctx.procs.naive.append(proc)
    wait_log(log, "naive subscriber ready", proc)
    time.sleep(0.5)


# 4. Phases --------------------------------------------------------------------------------


@dataclass
class Context:
    args: argparse.Namespace
    bench: harness.BenchEnv
    stream: Stream
    schemas: list[str]
    log_dir: Path
    procs: Procs = field(default_factory=Procs)
    # Each member schema's database server (None: the primary), with --servers 2.
    placed: dict[str, str | None] = field(default_factory=dict)

    def by_server(self) -> dict[str | None, list[str]]:
        """The member schemas per database server, the primary (None) first."""
        found: dict[str | None, list[str]] = {None: []}
        for schema in self.schemas:
            found.setdefault(self.placed.get(schema), []).append(schema)
        return found

    @property
    def settings(self) -> Any:
        return self.bench.settings


def reset_tables(ctx: Context) -> None:
    from psycopg import sql

    from hypervision import placement

    for server, schemas in ctx.by_server().items():
        with placement.connect_admin(ctx.settings, server) as conn:
            for schema in schemas:
                conn.execute(sql.SQL("TRUNCATE {s}.uplinks, {s}.measurements,"
                                     " {s}.device_events, {s}.device_state").format(
                                         s=sql.Identifier(schema)))
            conn.execute("TRUNCATE hv.ingest_outcomes, hv.ingest_receipts, hv.ingest_counted")
            conn.execute("DELETE FROM hv.dead_letters")
            conn.execute("CHECKPOINT")


class Poller(threading.Thread):
    """Polls the member tables for timed uplinks; records when each first became visible."""

    WINDOW = 200

    def __init__(self, ctx: Context, interval: float = 0.1) -> None:
        super().__init__(name="poller", daemon=True)
        self.ctx = ctx
        self.interval = interval
        self.published: dict[str, float] = {}
        self.visible: dict[str, float] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def add(self, times: list[tuple[str, float]]) -> None:
        with self._lock:
            self.published.update(times)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def run(self) -> None:
        from psycopg import sql

        from hypervision import placement

        queries = [(server, sql.SQL(" UNION ALL ").join(
            sql.SQL("SELECT deduplication_id::text FROM {}.uplinks"
                    " WHERE deduplication_id = ANY(%(ids)s::uuid[])").format(sql.Identifier(s))
            for s in schemas)) for server, schemas in self.ctx.by_server().items() if schemas]
        conns = {server: placement.connect_admin(self.ctx.settings, server)
                 for server, _ in queries}
        try:
            self._poll(queries, conns)
        finally:
            for conn in conns.values():
                conn.close()

    def _poll(self, queries: list[tuple[str | None, Any]], conns: dict[str | None, Any]) -> None:
        while not self._halt.is_set():
            with self._lock:
                # The oldest pending ones only: uplinks become visible nearly in
                # publish order (batches of hundreds, two at a time), so a window of
                # WINDOW samples (WINDOW x --sample-every uplinks) sees each as soon
                # as it is visible, and the poll stays cheap for PostgreSQL even when
                # thousands of samples wait in a backlog.
                pending = list(islice(
                    (i for i in self.published if i not in self.visible), self.WINDOW))
            if pending:
                at = time.time()
                for server, query in queries:
                    for (found,) in conns[server].execute(query,
                                                          {"ids": pending}).fetchall():
                        self.visible.setdefault(found, at)
            self._halt.wait(self.interval)


def outcome_count(conn: Any) -> tuple[int, int]:
    row = conn.execute("SELECT coalesce(sum(events), 0),"
                       " coalesce(sum(events) FILTER (WHERE outcome <> 'stored'), 0)"
                       " FROM hv.ingest_outcomes").fetchone()
    return int(row[0]), int(row[1])


def row_count_all(ctx: Context) -> tuple[int, int]:
    """Uplinks and device events stored, over every server's members."""
    from hypervision import placement

    ups = evs = 0
    for server, schemas in ctx.by_server().items():
        if schemas:
            with placement.connect_admin(ctx.settings, server) as conn:
                u, e = row_count(conn, schemas)
            ups, evs = ups + u, evs + e
    return ups, evs


def row_count(conn: Any, schemas: list[str]) -> tuple[int, int]:
    from psycopg import sql

    up = sql.SQL(" + ").join(sql.SQL("(SELECT count(*) FROM {}.uplinks)").format(
        sql.Identifier(s)) for s in schemas)
    ev = sql.SQL(" + ").join(sql.SQL("(SELECT count(*) FROM {}.device_events)").format(
        sql.Identifier(s)) for s in schemas)
    row = conn.execute(sql.SQL("SELECT {}, {}").format(up, ev)).fetchone()
    return int(row[0]), int(row[1])


def process_groups(ctx: Context, publisher_pid: int, naive: bool) -> list[harness.Group]:
    groups = []
    if naive:
        groups.append(harness.Group("naive_subscriber", [ctx.procs.naive[1].pid]))
        groups.append(harness.Group("naive_worker", [ctx.procs.naive[0].pid]))
    else:
        groups.append(harness.Group("receiver", [p.pid for p in ctx.procs.receivers]))
        groups.append(harness.Group("worker", [p.pid for p in ctx.procs.workers]))
    groups.extend(harness.service_groups(ctx.settings))
    second = harness.pidfile(ctx.settings.data_dir / "second" / "postgres" / "postmaster.pid")
    if any(ctx.placed.values()) and second is not None:
        groups.append(harness.Group("postgres_second", [second]))
    groups.append(harness.Group("publisher", [publisher_pid]))
    groups.append(harness.Group("bench_poller", [os.getpid()], include_children=False))
    return groups


def run_phase(ctx: Context, name: str, uplinks: int, rate: float = 0.0,
              naive: bool = False, profile: bool = False) -> dict[str, Any]:
    """Publish, wait until every event is visible, and measure."""
    from hypervision.db import connect_admin

    reset_tables(ctx)
    retries_before = batch_retries(ctx)
    count = ctx.stream.count_for(uplinks)
    samples = {p: d for p, d in ctx.stream.samples.items() if p < count}
    results: queue.Queue[tuple[str, Any]] = queue.Queue()
    publisher_log = ctx.log_dir / "publisher.log"
    publisher = Publisher(ctx.settings.mqtt_host, ctx.settings.mqtt_port, str(ctx.stream.path),
                          count, rate, samples, results, publisher_log)
    poller = Poller(ctx)
    print(f"[{name}] publishing {count:,} events"
          + (f" at {rate:,.0f}/s" if rate else " as fast as they are taken"), flush=True)
    publisher.start()
    monitor = harness.Monitor(process_groups(ctx, publisher.pid, naive)).start()
    poller.start()
    spies = start_profilers(ctx, name) if profile else []
    done_info: dict[str, Any] | None = None
    timeline: list[tuple[float, int]] = []
    end_at: float | None = None
    last_progress = time.monotonic()
    last_done = -1
    with connect_admin(ctx.settings) as conn:
        while True:
            try:
                while True:
                    kind, value = results.get_nowait()
                    if kind == "times":
                        poller.add(value)
                    elif kind == "done":
                        done_info = value
                    else:
                        monitor.stop()
                        poller.stop()
                        raise RuntimeError(f"[{name}] the publisher exited ({value}) before"
                                           f" it was done; see {publisher_log}")
            except queue.Empty:
                pass
            if naive:
                ups, evs = row_count_all(ctx)
                done = ups + evs
            else:
                done, _ = outcome_count(conn)
            now = time.time()
            timeline.append((now, done))
            if done != last_done:
                last_done, last_progress = done, time.monotonic()
            if done >= count and done_info is not None:
                end_at = now
                break
            # No progress for a tenth of --timeout once everything is published (or for
            # all of it before): give up and report what was visible.
            patience = ctx.args.timeout / 10 if done_info else ctx.args.timeout
            if time.monotonic() - last_progress > patience:
                print(f"[{name}] stalled at {done:,}/{count:,}", flush=True)
                break
            if len(timeline) % 20 == 0:
                print(f"[{name}] {done:,}/{count:,} events visible", flush=True)
            time.sleep(0.25)
        processes = monitor.stop()
        profile_files = stop_profilers(spies)
        time.sleep(0.3)
        poller.stop()
        publisher.join(30)
        info = done_info or {}
        first = info.get("first", timeline[0][0])
        ups, evs = row_count_all(ctx)
        outcomes, not_stored = outcome_count(conn)
        dead = conn.execute("SELECT count(*) FROM hv.dead_letters").fetchone()[0]
        # The members on the primary only (the others' rows are on the second server).
        tx_latencies = tx_start_latencies(conn, ctx.by_server()[None], poller.published)
    uplinks_sent = info.get("uplinks", 0)
    seconds = (end_at or timeline[-1][0]) - first
    latencies = [poller.visible[i] - t for i, t in poller.published.items() if i in poller.visible]
    result: dict[str, Any] = {
        "events_published": info.get("sent"), "uplinks_published": uplinks_sent,
        "complete": end_at is not None,
        "uplinks_stored": ups, "status_events_stored": evs,
        "outcomes_recorded": None if naive else outcomes,
        "outcomes_not_stored": None if naive else not_stored, "dead_letters": dead,
        "seconds": round(seconds, 2),
        "uplinks_per_s": round(uplinks_sent / seconds) if seconds > 0 else None,
        "events_per_s": round(info.get("sent", 0) / seconds) if seconds > 0 else None,
        "steady_uplinks_per_s": steady_rate(timeline, count, uplinks_sent),
        "publish_seconds": round(info.get("last_publish", first) - first, 2),
        "offered_rate": rate or None,
        "latency_ms": latency_summary(latencies, len(poller.published)),
        "latency_tx_start_ms": latency_summary(tx_latencies, len(poller.published)),
        "processes": processes,
        # Batches the workers had to retry (deadlock, lost connection...), from their logs.
        "batch_retries": {k: n - retries_before.get(k, 0)
                          for k, n in batch_retries(ctx).items()},
    }
    if profile_files:
        result["profile_files"] = {k: str(v) for k, v in profile_files.items()}
    print(f"[{name}] {uplinks_sent:,} uplinks in {seconds:.1f} s ="
          f" {result['uplinks_per_s']:,} uplinks/s; latency p50/p99"
          f" {result['latency_ms'].get('p50')}/{result['latency_ms'].get('p99')} ms", flush=True)
    return result


def batch_retries(ctx: Context) -> dict[str, int]:
    """Batch retries logged by the workers so far, per database error (ingest.tasks logs
    "batch of N: database error (DeadlockDetected), retry ...")."""
    counts: dict[str, int] = {}
    for log in ctx.log_dir.glob("worker*.log"):
        with log.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                if ": database error (" in line and "retry" in line:
                    kind = line.split(": database error (", 1)[1].split(")", 1)[0]
                    counts[kind] = counts.get(kind, 0) + 1
    return counts


PIPELINE = ("receiver", "worker", "postgres", "postgres_second", "redis", "mosquitto")


def cpu_cost(phase: dict[str, Any], cores: int) -> dict[str, Any]:
    """CPU time the pipeline spent per uplink, per process and in all (the publisher and
    the bench's own poller left out), and the rate that cost allows on `cores` cores with
    nothing else running: the figure that does not depend on what else the machine did."""
    procs = phase.get("processes") or {}
    uplinks = phase.get("uplinks_published") or 0
    if not uplinks:
        return {}
    per = {g: round(procs[g]["cpu_s"] / uplinks * 1e6, 1) for g in PIPELINE if g in procs}
    total = sum(per.values())
    return {"cpu_us_per_uplink": per, "cpu_us_per_uplink_total": round(total, 1),
            "cores": cores,
            "uplinks_per_s_if_the_cores_were_ours": round(cores * 1e6 / total) if total else None}


def cpu_cost_naive(phase: dict[str, Any], cores: int) -> dict[str, Any]:
    renamed = {**phase, "processes": {
        {"naive_subscriber": "receiver", "naive_worker": "worker"}.get(k, k): v
        for k, v in (phase.get("processes") or {}).items()}}
    return cpu_cost(renamed, cores)


def steady_rate(timeline: list[tuple[float, int]], total: int, uplinks: int) -> int | None:
    """Uplinks/s between 10 % and 90 % of the events becoming visible: the rate without
    the start-up and the tail."""
    lo = next((t for t, d in timeline if d >= 0.1 * total), None)
    hi = next((t for t, d in timeline if d >= 0.9 * total), None)
    if lo is None or hi is None or hi <= lo:
        return None
    return round(0.8 * uplinks / (hi - lo))


def tx_start_latencies(conn: Any, schemas: list[str], published: dict[str, float]) -> list[float]:
    """From publish to `measurements.ingested_at` (the writing transaction's start)."""
    from psycopg import sql

    if not published:
        return []
    cols = conn.execute("SELECT 1 FROM information_schema.columns WHERE table_schema = %s"
                        " AND table_name = 'measurements' AND column_name = 'ingested_at'",
                        (schemas[0],)).fetchone()
    if cols is None:
        return []
    query = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT deduplication_id::text, extract(epoch FROM min(ingested_at))::float8"
                " FROM {}.measurements WHERE deduplication_id = ANY(%(ids)s::uuid[])"
                " GROUP BY 1").format(sql.Identifier(s)) for s in schemas)
    rows = conn.execute(query, {"ids": list(published)}).fetchall()
    return [at - published[i] for i, at in rows]


def latency_summary(values: list[float], timed: int) -> dict[str, Any]:
    ms = [v * 1000 for v in values]
    return {
        "timed": timed, "seen": len(ms),
        "p50": _round(harness.percentile(ms, 50)), "p95": _round(harness.percentile(ms, 95)),
        "p99": _round(harness.percentile(ms, 99)), "max": _round(max(ms) if ms else None),
    }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


# 5. Profiles ----------------------------------------------------------------------------------


def start_profilers(ctx: Context, name: str) -> list[tuple[str, Path, subprocess.Popen[bytes]]]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
    if not Path(spy).exists():
        print("py-spy is not installed (pip install py-spy): no profile", flush=True)
        return out
    targets = [(f"receiver{i}", p.pid, False) for i, p in enumerate(ctx.procs.receivers)]
    targets += [(f"worker{i}", p.pid, True) for i, p in enumerate(ctx.procs.workers)]
    for label, pid, children in targets:
        path = ctx.log_dir / f"profile-{name}-{label}.txt"
        path.unlink(missing_ok=True)
        argv = [spy, "record", "--pid", str(pid), "--format", "raw", "--output", str(path),
                "--rate", "100", "--nonblocking"]
        if children:
            argv.append("--subprocesses")
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        out.append((label, path, proc))
    return out


def stop_profilers(spies: list[tuple[str, Path, subprocess.Popen[bytes]]]) -> dict[str, Path]:
    import signal

    files = {}
    for _, _, proc in spies:
        proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
    for label, path, proc in spies:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        if path.exists():
            files[label] = path
    return files


def profile_report(phase: dict[str, Any]) -> dict[str, Any]:
    """Per process, the share of CPU samples per stage; and the whole pipeline's CPU
    (from the process monitor) split the same way, with the servers' own CPU given to
    their stage (PostgreSQL: database, Redis: Celery/kombu, Mosquitto: MQTT)."""
    from bench import stacks

    per_process = {label: stacks.summarise(Path(path))
                   for label, path in phase.get("profile_files", {}).items()}
    procs = phase["processes"]
    cpu: dict[str, float] = {}
    for label, summary in per_process.items():
        group = "receiver" if label.startswith("receiver") else "worker"
        seconds = procs[group]["cpu_s"] / max(1, sum(1 for k in per_process
                                                      if k.startswith(group)))
        for stage, pct in summary["share_pct"].items():
            cpu[stage] = cpu.get(stage, 0.0) + seconds * pct / 100
    for server, stage in (("postgres", "database"), ("redis", "celery_kombu"),
                          ("mosquitto", "mqtt")):
        if server in procs:
            cpu[f"{stage} (server)"] = procs[server]["cpu_s"]
    total = sum(cpu.values())
    return {
        "per_process": per_process,
        "pipeline_cpu_s": {k: round(v, 1) for k, v in sorted(cpu.items())},
        "pipeline_cpu_share_pct": {k: round(100 * v / total, 1) for k, v in sorted(cpu.items())}
        if total else {},
        "note": "shares of on-CPU samples (py-spy, 100 Hz, idle excluded) of the receiver and"
                " of the worker's processes; pipeline_cpu_* weights them by each process's"
                " CPU seconds and adds the servers' CPU. The publisher (load generator) is"
                " left out.",
    }


# 6. Main -------------------------------------------------------------------------------------


def targets(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    thr = result.get("throughput") or {}
    lat = result.get("latency") or {}
    rate = thr.get("uplinks_per_s")
    out["uplinks_per_s"] = {"target": ">= 10000", "value": rate,
                            "met": rate is not None and rate >= 10_000}
    ratio = result.get("ratio_to_naive")
    out["ratio_to_naive"] = {"target": ">= 20", "value": ratio,
                             "met": ratio is not None and ratio >= 20}
    p99 = (lat.get("latency_ms") or {}).get("p99")
    ok = p99 is not None and p99 < 2000 and lat.get("complete", False)
    out["p99_publish_to_visible_ms"] = {
        "target": "< 2000 at 10,000 uplinks/s offered", "value": p99, "met": ok}
    return out


def summary_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows bench/report.py puts in bench/README.md."""
    t = result["targets"]
    thr = result.get("throughput") or {}
    lat = result.get("latency") or {}
    naive = result.get("naive") or {}
    rows: list[dict[str, Any]] = [] if not thr else [
        {"figure": f"ingest sustained, {thr.get('uplinks_published', 0):,} uplinks"
                   " (publish → all visible)", "value": thr.get("uplinks_per_s"),
         "unit": "uplinks/s", "target": ">= 10,000", "met": t["uplinks_per_s"]["met"]},
        {"figure": "ingest steady state (10–90 % visible)",
         "value": thr.get("steady_uplinks_per_s"), "unit": "uplinks/s"},
        {"figure": "pipeline CPU per uplink (receiver, worker, PostgreSQL, Redis, Mosquitto)",
         "value": (thr.get("cpu_cost") or {}).get("cpu_us_per_uplink_total"), "unit": "µs"},
        {"figure": "rate that CPU cost allows on the machine's cores, nothing else running",
         "value": (thr.get("cpu_cost") or {}).get("uplinks_per_s_if_the_cores_were_ours"),
         "unit": "uplinks/s"},
        {"figure": "CPU used by other work on the machine during the run",
         "value": ((thr.get("processes") or {}).get("_machine") or {}).get(
             "cpu_s_outside_these_processes"), "unit": "CPU s"},
        {"figure": "batches retried by the workers (deadlocks, lost connections)",
         "value": sum((thr.get("batch_retries") or {}).values()), "unit": "batches"},
    ]
    if naive:
        rows += [
        {"figure": f"naive pipeline, {naive.get('uplinks_published', 0):,} uplinks",
         "value": naive.get("uplinks_per_s"), "unit": "uplinks/s"},
        {"figure": "ratio to naive", "value": result.get("ratio_to_naive"), "unit": "×",
         "target": ">= 20", "met": t["ratio_to_naive"]["met"]},
        {"figure": "naive pipeline's CPU per uplink / this pipeline's",
         "value": result.get("cpu_cost_ratio_to_naive"), "unit": "×"},
        ]
    if lat:
        lm = lat.get("latency_ms") or {}
        rows += [
            {"figure": f"publish → visible p50, {lat.get('offered_rate') or 0:,.0f}/s offered"
                       f" (achieved {lat.get('uplinks_per_s')})",
             "value": lm.get("p50"), "unit": "ms"},
            {"figure": "publish → visible p99", "value": lm.get("p99"), "unit": "ms"},
        ]
        if (lat.get("offered_rate") or 0) >= 10_000:
            rows[-1].update(target="< 2,000", met=t["p99_publish_to_visible_ms"]["met"])
    return rows


def start_second_server(bench: harness.BenchEnv, args: argparse.Namespace) -> tuple[Any, Any]:
    """A second local PostgreSQL + TimescaleDB (fresh) and the servers file naming it;
    the workers inherit HV_DATABASE_SERVERS_FILE. Returns its settings and the
    platform's, which now carry the file."""
    import yaml

    from hypervision import daemons

    settings = bench.settings
    second = settings.model_copy(update={"data_dir": settings.data_dir / "second",
                                         "pg_port": args.port_base + 433})
    daemons.postgres.stop(second)
    shutil.rmtree(second.data_dir, ignore_errors=True)
    daemons.postgres.start(second)
    path = settings.data_dir / "servers.yaml"
    path.write_text(yaml.safe_dump({"version": "v1", "kind": "database_servers", "servers": [
        {"name": "primary", "role": "primary"},
        {"name": "second", "role": "members", "host": second.pg_host, "port": second.pg_port,
         "database": second.pg_database, "admin_url": second.admin_conninfo()},
    ]}), encoding="utf-8")
    os.environ["HV_DATABASE_SERVERS_FILE"] = str(path)
    bench.env["HV_DATABASE_SERVERS_FILE"] = str(path)
    bench.settings = settings.model_copy(update={"database_servers_file": path})
    return second, bench.settings


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    publisher_argv()  # a missing publisher fails here, not after the set-up
    bench = harness.setup(args, fresh=True)
    settings = bench.settings
    from bench.fleet import fleet

    log_dir = settings.data_dir / "log" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    per = args.devices_per_member
    specs = fleet("bench_ingest_", 0xB1, args.members,
                  {"water": per - 2 * (per // 3), "waste": per // 3, "air": per // 3})
    second = None
    if args.servers == 2:
        second, settings = start_second_server(bench, args)
        specs = [s.model_copy(update={"server": "second"}) if i % 2 else s
                 for i, s in enumerate(specs)]
    harness.apply_fleet(settings, specs)
    stream = ensure_stream(settings.data_dir / "cache", specs, args)
    ctx = Context(args, bench, stream, [s.schema for s in specs], log_dir,
                  placed={s.schema: s.server for s in specs})
    result: dict[str, Any] = {
        "benchmark": "ingest", "when": harness.now_iso(), "machine": harness.machine(settings),
        "command": "python -m bench.ingest " + " ".join(argv if argv is not None
                                                         else sys.argv[1:]),
        "config": {
            "members": args.members, "devices": args.members * per,
            "models": {"milesight-em300-di": "water, hourly",
                       "milesight-em400-mud": "container, every 30 min",
                       "milesight-am103": "CO2, every 10 min"},
            "event_times": [stream.first_time, stream.last_time],
            "status_every": args.status_every, "sample_every": args.sample_every,
            "batch_size": args.batch_size, "batch_max_wait": args.batch_max_wait,
            "workers": args.workers, "concurrency": args.concurrency,
            "receivers": args.receivers, "qos": 1,
            "servers": args.servers,
        },
    }
    try:
        if args.naive_uplinks:
            start_naive(ctx)
            try:
                result["naive"] = run_phase(ctx, "naive", args.naive_uplinks, naive=True)
            finally:
                ctx.procs.stop(ctx.procs.naive)
        start_pipeline(ctx)
        run_phase(ctx, "warm-up", 2_000)
        if args.uplinks:
            result["throughput"] = run_phase(ctx, "throughput", args.uplinks)
        if args.latency_uplinks:
            result["latency"] = run_phase(ctx, "latency", args.latency_uplinks,
                                          rate=args.latency_rate)
        if args.profile_uplinks:
            phase = run_phase(ctx, "profile", args.profile_uplinks, profile=True)
            report = profile_report(phase)
            report.update({"when": result["when"], "machine": result["machine"],
                           "command": result["command"],
                           "uplinks": phase["uplinks_published"],
                           "uplinks_per_s_while_profiled": phase["uplinks_per_s"]})
            harness.write_result(args.results, "ingest_profile", report)
            result["profile"] = {"uplinks_per_s_while_profiled": phase["uplinks_per_s"],
                                 "pipeline_cpu_share_pct": report["pipeline_cpu_share_pct"]}
            print(json.dumps(report, indent=2), flush=True)
    finally:
        ctx.procs.stop(ctx.procs.receivers)
        ctx.procs.stop(ctx.procs.workers)
        ctx.procs.stop(ctx.procs.naive)
        bench.close()
        if second is not None and not args.keep_services:
            from hypervision import daemons

            daemons.postgres.stop(second)
    cores = result["machine"].get("cores") or 2
    for phase in ("naive", "throughput", "latency"):
        if result.get(phase):
            result[phase]["cpu_cost"] = cpu_cost_naive(result[phase], cores) \
                if phase == "naive" else cpu_cost(result[phase], cores)
    naive_rate = (result.get("naive") or {}).get("uplinks_per_s")
    rate = (result.get("throughput") or {}).get("uplinks_per_s")
    result["ratio_to_naive"] = round(rate / naive_rate, 1) if rate and naive_rate else None
    naive_cost = ((result.get("naive") or {}).get("cpu_cost") or {}).get("cpu_us_per_uplink_total")
    cost = ((result.get("throughput") or {}).get("cpu_cost") or {}).get("cpu_us_per_uplink_total")
    result["cpu_cost_ratio_to_naive"] = round(naive_cost / cost, 1) if naive_cost and cost \
        else None
    result["targets"] = targets(result)
    result["summary"] = summary_rows(result)
    path = harness.write_result(args.results, args.name, result)
    print_summary(result)
    print(f"written: {path}")
    return result


def print_summary(result: dict[str, Any]) -> None:
    print("\nfigure | value | unit | target")
    for row in result["summary"]:
        met = row.get("met")
        mark = "" if met is None else (" ok" if met else " MISSED")
        print(f"{row['figure']} | {row['value']} | {row['unit']} |"
              f" {row.get('target', '')}{mark}")
    for phase in ("naive", "throughput", "latency"):
        procs = (result.get(phase) or {}).get("processes") or {}
        if procs:
            print(f"\n{phase}: CPU s (% of one core), peak RSS MB")
            for name, p in procs.items():
                if name.startswith("_"):
                    print(f"  machine: {p}")
                else:
                    print(f"  {name}: {p['cpu_s']} s ({p['cpu_pct_of_one_core']} %),"
                          f" {p['peak_rss_mb']} MB")


if __name__ == "__main__":
    main()

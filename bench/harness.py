"""What every benchmark needs: its own services, the machine's description, a process
monitor and the JSON result file.

Each benchmark runs against the platform's own local daemons (hypervision.daemons) in a
data folder and on ports of its own (`--data-dir`, `--port-base`), never the development
or test instances. The services are started if they are not running, and stopped at the
end only if the benchmark started them (unless `--keep-services`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
DEFAULT_DATA_DIR = REPO / "var" / "bench"
DEFAULT_PORT_BASE = 48000


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="folder of the benchmark's own services (default: var/bench)")
    parser.add_argument("--port-base", type=int, default=DEFAULT_PORT_BASE,
                        help="PostgreSQL on BASE+432, Redis on BASE+379, Mosquitto on BASE+883")
    parser.add_argument("--keep-services", action="store_true",
                        help="leave the services running at the end")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="folder of the JSON results (default: bench/results)")


@dataclass
class BenchEnv:
    """The benchmark's settings, and the environment its child processes inherit."""

    settings: Any  # hypervision.settings.Settings (imported after the environment is set)
    env: dict[str, str]
    started_services: bool
    keep_services: bool

    def close(self) -> None:
        if self.started_services and not self.keep_services:
            from hypervision import daemons

            daemons.stop_all(self.settings)


def setup(args: argparse.Namespace, extra_env: dict[str, str] | None = None,
          fresh: bool = False) -> BenchEnv:
    """Point the HV_* environment at the benchmark's services, start them, migrate.

    The environment is set before hypervision is imported anywhere in this process, so
    that `get_settings()` (used by hypervision.celery_app at import) agrees with it, and child
    processes (workers, receivers) inherit it. `fresh` drops the platform database and
    empties Redis first, so that the benchmark runs on the current migrations only.
    """
    data_dir = args.data_dir.resolve()
    base = args.port_base
    env_values = {
        "HV_SECRET_KEY": os.environ.get("HV_SECRET_KEY") or secrets.token_hex(32),
        "HV_DATA_DIR": str(data_dir),
        "HV_PG_PORT": str(base + 432),
        "HV_REDIS_PORT": str(base + 379),
        "HV_MQTT_PORT": str(base + 883),
        "HV_HTTP_PORT": str(base + 90),
        **(extra_env or {}),
    }
    os.environ.update(env_values)
    from hypervision import daemons
    from hypervision.settings import Settings, get_settings

    get_settings.cache_clear()
    settings = Settings(
        secret_key=env_values["HV_SECRET_KEY"], data_dir=data_dir, pg_port=base + 432,
        redis_port=base + 379, mqtt_port=base + 883,
    )
    if not data_dir.exists():
        data_dir.mkdir(parents=True)
        data_dir.chmod(0o755)
    running = daemons.status(settings)
    daemons.start_all(settings)
    if fresh:
        reset_database(settings)
    migrate_all(settings)
    return BenchEnv(settings, dict(os.environ), not all(running.values()),
                    args.keep_services)


def reset_database(settings: Any) -> None:
    import psycopg
    import redis
    from psycopg import sql

    with psycopg.connect(host=str(settings.pg_socket_dir), port=settings.pg_port,
                         dbname="postgres", user=settings.pg_superuser,
                         autocommit=True) as conn:
        name = sql.Identifier(settings.pg_database)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
    redis.Redis.from_url(settings.redis_url).flushdb()


def migrate_all(settings: Any) -> None:
    from hypervision import migrate
    from hypervision.db import connect_admin
    from hypervision.roles import member_role

    with connect_admin(settings) as conn:
        migrate.migrate_control(conn, log=lambda _: None)
        # Members on the primary only: another benchmark (bench.ingest --servers 2) may have
        # left members on a second server, which this run neither declares nor reads.
        for slug, schema in conn.execute(
                "SELECT slug, schema_name FROM hv.members WHERE server IS NULL").fetchall():
            migrate.migrate_tenant(conn, schema, member_role(slug, "owner"), log=lambda _: None)


def apply_fleet(settings: Any, specs: Sequence[Any]) -> None:
    """Create or update the benchmark's members and devices (hypervision.tenancy)."""
    from hypervision.db import connect_admin
    from hypervision.tenancy import apply as tenancy
    from ingest.decode import Catalogue

    with connect_admin(settings) as conn:
        tenancy.apply(conn, specs, Catalogue.load(), settings, log=lambda _: None)


# The machine ---------------------------------------------------------------------------


def machine(settings: Any | None = None) -> dict[str, Any]:
    """What the figures were measured on, and how busy the machine was with other work."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": psutil.cpu_count(logical=True),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    if settings is not None:
        try:
            from hypervision.db import connect_admin

            with connect_admin(settings) as conn:
                info["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
                row = conn.execute("SELECT extversion FROM pg_extension"
                                   " WHERE extname = 'timescaledb'").fetchone()
                info["timescaledb"] = row[0] if row else None
                info["shared_buffers"] = conn.execute("SHOW shared_buffers").fetchone()[0]
        except Exception as exc:  # the description must never fail a benchmark
            info["postgresql"] = f"unknown ({type(exc).__name__})"
    return info


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def write_result(folder: Path, name: str, data: dict[str, Any]) -> Path:
    """Write bench/results/<name>.json atomically (a reader never sees half a file)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0-100), nearest-rank on sorted values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


# Processes ----------------------------------------------------------------------------


@dataclass
class _Seen:
    first_cpu: float
    last_cpu: float
    peak_rss: int = 0


@dataclass
class Group:
    """One logical process (the receiver, the worker and its children, PostgreSQL...)."""

    name: str
    roots: list[int]
    include_children: bool = True
    seen: dict[int, _Seen] = field(default_factory=dict)
    peak_rss_sum: int = 0
    peak_rss_one: int = 0

    def processes(self) -> list[psutil.Process]:
        found: list[psutil.Process] = []
        for pid in self.roots:
            try:
                proc = psutil.Process(pid)
            except psutil.NoSuchProcess:
                continue
            found.append(proc)
            if self.include_children:
                with contextlib.suppress(psutil.NoSuchProcess):
                    found.extend(proc.children(recursive=True))
        return found


class Monitor:
    """Samples CPU time and resident memory of process groups every `interval` seconds.

    CPU is the sum of user and system time each process spent during the window; a
    process that appears mid-window (a new PostgreSQL backend) counts from zero. Memory is
    the peak over samples of the group's summed RSS (PostgreSQL's shared buffers count
    once per backend that touched them, so its sum overstates), and of its largest process.
    """

    def __init__(self, groups: Iterable[Group], interval: float = 0.5) -> None:
        self.groups = list(groups)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)
        self._started = 0.0
        self._started_wall = 0.0
        self._wall = 0.0
        self._machine_start: Any = None
        self._machine_end: Any = None

    def start(self) -> Monitor:
        self._started = time.monotonic()
        self._started_wall = time.time()
        self._machine_start = psutil.cpu_times()
        self._sample(first=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        self._sample()
        self._wall = time.monotonic() - self._started
        self._machine_end = psutil.cpu_times()
        return self.report()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self, first: bool = False) -> None:
        for group in self.groups:
            total = 0
            for proc in group.processes():
                try:
                    with proc.oneshot():
                        times = proc.cpu_times()
                        cpu = times.user + times.system
                        rss = proc.memory_info().rss
                        created = proc.create_time()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                seen = group.seen.get(proc.pid)
                if seen is None:
                    # A process born during the window counts from zero.
                    base = 0.0 if not first and created > self._started_wall else cpu
                    seen = group.seen[proc.pid] = _Seen(base, cpu)
                seen.last_cpu = cpu
                seen.peak_rss = max(seen.peak_rss, rss)
                group.peak_rss_one = max(group.peak_rss_one, rss)
                total += rss
            group.peak_rss_sum = max(group.peak_rss_sum, total)

    def report(self) -> dict[str, Any]:
        wall = self._wall or (time.monotonic() - self._started)
        out: dict[str, Any] = {}
        for group in self.groups:
            cpu = sum(s.last_cpu - s.first_cpu for s in group.seen.values())
            out[group.name] = {
                "cpu_s": round(cpu, 1),
                "cpu_pct_of_one_core": round(100 * cpu / wall, 1) if wall else None,
                "peak_rss_mb": round(group.peak_rss_sum / 2**20, 1),
                "peak_rss_largest_process_mb": round(group.peak_rss_one / 2**20, 1),
                "processes_seen": len(group.seen),
            }
        if self._machine_start is not None and self._machine_end is not None:
            a, b = self._machine_start, self._machine_end
            busy = sum((getattr(b, f) - getattr(a, f)) for f in ("user", "system", "nice",
                                                                "irq", "softirq", "steal"))
            ours = sum(v["cpu_s"] for v in out.values())
            out["_machine"] = {
                "wall_s": round(wall, 1),
                "busy_cpu_s": round(busy, 1),
                "busy_pct_of_all_cores": round(100 * busy / (wall * (psutil.cpu_count() or 1)),
                                               1),
                "cpu_s_outside_these_processes": round(max(0.0, busy - ours), 1),
            }
        return out


def pidfile(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").splitlines()[0].strip())
    except (OSError, IndexError, ValueError):
        return None


def service_groups(settings: Any) -> list[Group]:
    """PostgreSQL (postmaster and backends), Redis and Mosquitto of the benchmark."""
    data = Path(settings.data_dir).resolve()
    groups = []
    for name, path in (("postgres", data / "postgres" / "postmaster.pid"),
                       ("redis", data / "redis" / "redis.pid"),
                       ("mosquitto", data / "mosquitto" / "mosquitto.pid")):
        pid = pidfile(path)
        if pid is not None:
            groups.append(Group(name, [pid]))
    return groups

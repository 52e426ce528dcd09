"""Export throughput and memory: rows/s and peak RSS for each format, on generated data.

Run from the repository root (see bench/README.md; services of its own, like every
benchmark):

    .venv/bin/python -m bench.export [--rows 10000000] [--uplinks 1000000] [--baseline REV]
        [--via library|api]

It declares a member `bench_export` (100 CO2 sensors), fills its measurements and raw
uplinks with rows generated in SQL (kept for the next run while their counts match), then
exports them in every format through hypervision.export as the member's reader role, as
the API and the CLI do, each export in a child process of its own so that its peak RSS
is its own. Each export runs twice: over the first tenth of the rows, and over all of
them. Streaming in constant memory means the two peaks are about the same: the script
fails (exit 1) if the full export's peak RSS exceeds LIMIT_MIB or exceeds the tenth's by
more than GROWTH_MIB. Results: bench/results/export.json.

Besides wall time, each export records CPU seconds per million rows: its own process's
(user + system) and its PostgreSQL backend's (psutil on `pg_backend_pid()`); on a shared
machine CPU time is disturbed far less than wall time. With `--baseline REV`, the export
code of that git revision (its `platform/` and `ingest/`, extracted to a temporary folder
put first on the children's PYTHONPATH) is measured too, alternating with the working
tree's, export by export, on the same rows: a side-by-side comparison in one run.
`--via api` exports through `GET /api/v1/members/bench_export/exports/{kind}.{fmt}`
instead, served by a fresh `hypervision api` process (uvicorn, one process) per export
and read over loopback by this process: the peak RSS is then the API process's (VmHWM),
the CPU its own (its PostgreSQL backend is not told apart there), and the row count
the one its audit entry records. The load
average is recorded and the run labelled `loaded` when it exceeds the CPU count.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import harness

SLUG = "bench_export"
DEVICES = 100
METRICS = (("air.co2", "ppm"), ("air.temperature", "°C"), ("air.humidity", "%"),
           ("battery.level", "%"))
START = datetime(2024, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=10)  # every sensor sends every 10 minutes
LIMIT_MIB = 400
GROWTH_MIB = 64
EMAIL = "export@bench-export.example.org"
SERVE = "from hypervision.cli import app; app()"


def _spec() -> Any:
    from hypervision.tenancy.spec import TenantSpec

    return TenantSpec.model_validate({
        "version": "v1", "kind": "tenant", "name": SLUG,
        "identity": {"name": "Benchmark", "kind": "commune"},
        "contacts": {"dpo": {"name": "DPO", "email": "dpo@example.org"}},
        "users": [{"name": "Export", "email": EMAIL, "rights": ["read", "export"]}],
        "devices": [{"dev_eui": f"beec0000{i:08x}", "name": f"CO2 {i}",
                     "model": "milesight-am103", "data_class": "indoor-air"}
                    for i in range(DEVICES)],
    })


def _count(conn: Any, table: str) -> int:
    from psycopg import sql

    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
        sql.Identifier(f"tenant_{SLUG}", table))).fetchone()
    return int(row[0])


def prepare(rows: int, uplinks: int) -> str:
    """Declare the member and generate its rows (server-side), unless already there;
    returns an API token of the member's account (for `--via api`)."""
    from hypervision import accounts
    from hypervision.api.db import ensure_api_role
    from hypervision.db import connect_admin
    from hypervision.settings import get_settings
    from hypervision.tenancy import apply as tenancy
    from ingest.decode import Catalogue

    settings = get_settings()
    with connect_admin(settings) as conn:
        spec = _spec()
        tenancy.apply(conn, [spec], Catalogue.load(), settings, log=lambda _: None)
        ensure_api_role(conn, settings)
        who = accounts.Who("system:bench-export")
        accounts.sync_users(conn, spec, who)
        token = accounts.create_token(conn, who, email=EMAIL, label="bench.export",
                                      expires_at=datetime.now(UTC) + timedelta(days=1)).secret
        schema = f"tenant_{SLUG}"
        if _count(conn, "measurements") != rows:
            print(f"generating {rows:,} measurements…", flush=True)
            conn.execute(f"TRUNCATE {schema}.measurements")
            per_step = DEVICES * len(METRICS)
            for first in range(0, rows, 1_000_000):
                last = min(rows, first + 1_000_000) - 1
                conn.execute(
                    f"""
                    INSERT INTO {schema}.measurements
                        (time, dev_eui, metric, value, unit, deduplication_id)
                    SELECT %(start)s + (i / %(per_step)s) * %(step)s,
                           'beec0000' || lpad(to_hex(i %% %(devices)s), 8, '0'),
                           (%(metrics)s::text[])[(i / %(devices)s) %% 4 + 1],
                           round((400 + random() * 1600)::numeric, 1),
                           (%(units)s::text[])[(i / %(devices)s) %% 4 + 1],
                           gen_random_uuid()
                    FROM generate_series(%(first)s::bigint, %(last)s::bigint) i
                    """,
                    {"start": START, "per_step": per_step, "step": STEP, "devices": DEVICES,
                     "metrics": [m for m, _ in METRICS], "units": [u for _, u in METRICS],
                     "first": first, "last": last},
                )
                print(f"  {last + 1:,}", flush=True)
            conn.execute(f"ANALYZE {schema}.measurements")
        if _count(conn, "uplinks") != uplinks:
            print(f"generating {uplinks:,} uplinks…", flush=True)
            conn.execute(f"TRUNCATE {schema}.uplinks")
            for first in range(0, uplinks, 500_000):
                last = min(uplinks, first + 500_000) - 1
                conn.execute(
                    f"""
                    INSERT INTO {schema}.uplinks
                        (time, received_at, dev_eui, deduplication_id, f_cnt, f_port, dr, adr,
                         confirmed, dev_addr, data, rssi, snr, gateway_count, gateways,
                         frequency, spreading_factor, codec, event)
                    SELECT t, t + interval '1 second', d, u, i / %(devices)s, 85, 5, true,
                           false, '01ab23cd', '\\x0175640367e6000468620774f001', -90, 7.5, 1,
                           ARRAY['0016c001f153a14c'], 868100000, 7, 'builtin:milesight_am103',
                           json_build_object(
                             'deduplicationId', u, 'time', t,
                             'deviceInfo', json_build_object('devEui', d, 'deviceName',
                                                             'CO2 ' || (i %% %(devices)s)),
                             'devAddr', '01ab23cd', 'adr', true, 'dr', 5,
                             'fCnt', i / %(devices)s, 'fPort', 85,
                             'data', 'AXVkA2fmAARoYgd08AE=',
                             'rxInfo', json_build_array(json_build_object(
                               'gatewayId', '0016c001f153a14c', 'rssi', -90, 'snr', 7.5)))
                    FROM (SELECT i, %(start)s + (i / %(devices)s) * %(step)s AS t,
                                 'beec0000' || lpad(to_hex(i %% %(devices)s), 8, '0') AS d,
                                 gen_random_uuid() AS u
                          FROM generate_series(%(first)s::bigint, %(last)s::bigint) i) g
                    """,
                    {"start": START, "step": STEP, "devices": DEVICES, "first": first,
                     "last": last},
                )
            conn.execute(f"ANALYZE {schema}.uplinks")
    return token


def child(kind: str, fmt: str, end: str | None) -> None:
    """One export in this process; prints its measures as JSON."""
    import psutil

    from hypervision.db import connect_as
    from hypervision.export import ExportFilter, open_export
    from hypervision.settings import get_settings

    settings = get_settings()
    with connect_as(settings, f"{SLUG}_reader") as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        conn.rollback()
        backend = psutil.Process(int(row[0]))
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        cpu_started, pg_started = time.process_time(), sum(backend.cpu_times()[:2])
        started = time.perf_counter()
        flt = ExportFilter(end=datetime.fromisoformat(end) if end else None)
        stream = open_export(conn, f"tenant_{SLUG}", kind, fmt, flt)  # type: ignore[arg-type]
        size = 0
        with open(os.devnull, "wb") as sink:
            for chunk in stream.chunks:
                size += len(chunk)
                sink.write(chunk)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        pg_cpu = sum(backend.cpu_times()[:2]) - pg_started
    import hypervision

    millions = max(stream.rows(), 1) / 1e6
    print(json.dumps({
        "rows": stream.rows(), "seconds": round(seconds, 2), "bytes": size,
        "rows_per_s": round(stream.rows() / seconds) if seconds else None,
        "client_cpu_s_per_million_rows": round(cpu / millions, 3),
        "postgres_cpu_s_per_million_rows": round(pg_cpu / millions, 3),
        "rows_per_cpu_s": round(stream.rows() / (cpu + pg_cpu)) if cpu + pg_cpu else None,
        "code": hypervision.__file__,
        "baseline_rss_mib": round(baseline, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


def measure(env: harness.BenchEnv, kind: str, fmt: str, end: datetime | None,
            code: str | None = None) -> dict[str, Any]:
    """One export in a child process; `code` is a folder holding another revision's
    `platform/` and `ingest/`, imported instead of the working tree's."""
    args = [sys.executable, "-m", "bench.export", "--child", kind, fmt]
    if end is not None:
        args += ["--end", end.isoformat()]
    child_env = dict(env.env)
    if code is not None:
        child_env["PYTHONPATH"] = os.pathsep.join((f"{code}/platform", code, str(harness.REPO)))
    out = subprocess.run(args, check=True, capture_output=True, text=True, cwd=harness.REPO,
                         env=child_env).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if code is not None and not result["code"].startswith(code):
        raise RuntimeError(f"the baseline child imported {result['code']}, not {code}")
    return result


def _peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmHWM for process {pid}")


def measure_api(env: harness.BenchEnv, token: str, kind: str, fmt: str,
                end: datetime | None, code: str | None = None) -> dict[str, Any]:
    """One export through a fresh API process, read over HTTP (a loopback connection)."""
    import httpx
    import psutil

    from hypervision.db import connect_admin

    port = int(env.env["HV_PG_PORT"]) - 432 + 71  # the port base's own range
    base = f"http://127.0.0.1:{port}/api/v1"
    server_env = dict(env.env)
    if code is not None:
        server_env["PYTHONPATH"] = os.pathsep.join((f"{code}/platform", code,
                                                    str(harness.REPO)))
    server = subprocess.Popen([sys.executable, "-c", SERVE, "api", "--port", str(port)],
                              cwd=harness.REPO, env=server_env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/openapi.json", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the API did not start")
            time.sleep(0.3)
        process = psutil.Process(server.pid)
        baseline = _peak_rss_mib(server.pid)
        cpu_started = sum(process.cpu_times()[:2])
        params = {"end": end.isoformat()} if end is not None else {}
        size = 0
        started = time.perf_counter()
        with httpx.stream("GET", f"{base}/members/{SLUG}/exports/{kind}.{fmt}", params=params,
                          headers={"Authorization": f"Bearer {token}"},
                          timeout=900) as response:
            response.raise_for_status()
            for chunk in response.iter_raw(1024 * 1024):
                size += len(chunk)
        seconds = time.perf_counter() - started
        cpu = sum(process.cpu_times()[:2]) - cpu_started
        peak = _peak_rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    with connect_admin(env.settings) as conn:
        row = conn.execute("SELECT rows FROM hv.audit_log WHERE member_slug = %s AND action = %s"
                           " ORDER BY id DESC LIMIT 1", (SLUG, f"export.{fmt}")).fetchone()
    rows = int(row[0]) if row and row[0] is not None else 0
    millions = max(rows, 1) / 1e6
    return {"rows": rows, "seconds": round(seconds, 2), "bytes": size,
            "rows_per_s": round(rows / seconds) if seconds else None,
            "client_cpu_s_per_million_rows": round(cpu / millions, 3),
            "postgres_cpu_s_per_million_rows": 0.0,
            "rows_per_cpu_s": round(rows / cpu) if cpu else None,
            "code": code or str(harness.REPO),
            "baseline_rss_mib": baseline, "peak_rss_mib": peak}


def extract(rev: str, into: str) -> str:
    """The revision's platform/ and ingest/ under `into`; returns the short commit."""
    commit = subprocess.run(["git", "rev-parse", "--short", rev], cwd=harness.REPO,
                            check=True, capture_output=True, text=True).stdout.strip()
    archive = subprocess.run(["git", "archive", commit, "platform", "ingest"],
                             cwd=harness.REPO, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return commit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    harness.add_common_args(parser)
    parser.add_argument("--rows", type=int, default=10_000_000, help="measurements")
    parser.add_argument("--uplinks", type=int, default=1_000_000, help="raw uplinks")
    parser.add_argument("--formats", default="csv,jsonl,parquet")
    parser.add_argument("--via", choices=("library", "api"), default="library",
                        help="export through the library in a child process (default) or"
                             " through a fresh API process over HTTP")
    parser.add_argument("--baseline", default=None,
                        help="git revision whose export code is measured side by side")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "FORMAT"), help=argparse.SUPPRESS)
    parser.add_argument("--end", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.end)
        return 0

    env = harness.setup(args)
    try:
        return run(env, args)
    finally:
        env.close()


def run(env: harness.BenchEnv, args: argparse.Namespace) -> int:
    token = prepare(args.rows, args.uplinks)
    with tempfile.TemporaryDirectory(prefix="bench-export-") as folder:
        baseline = extract(args.baseline, folder) if args.baseline else None

        def one(kind: str, fmt: str, end: datetime | None,
                code: str | None = None) -> dict[str, Any]:
            if args.via == "api":
                return measure_api(env, token, kind, fmt, end, code)
            return measure(env, kind, fmt, end, code)

        return _run(env, args, one, folder if baseline else None, baseline)


def _line(kind: str, fmt: str, label: str, full: dict[str, Any], small: dict[str, Any],
          ok: bool) -> None:
    print(f"{kind:13} {fmt:8} {label:9} {full['rows']:>11,} {full['rows_per_s']:>9,}"
          f" {full['client_cpu_s_per_million_rows']:>8.2f}"
          f" {full['postgres_cpu_s_per_million_rows']:>8.2f}"
          f" {full['bytes'] / 2**20:>8.1f} {small['peak_rss_mib']:>10.1f}"
          f" {full['peak_rss_mib']:>9.1f}{'' if ok else '  OVER BOUND'}", flush=True)


def _run(env: harness.BenchEnv, args: argparse.Namespace, one: Any, code: str | None,
         baseline: str | None) -> int:
    results: list[dict[str, Any]] = []
    failed = False
    per_step = {"measurements": DEVICES * len(METRICS), "uplinks": DEVICES}
    machine = harness.machine(env.settings)
    print(f"{'kind':13} {'format':8} {'code':9} {'rows':>11} {'rows/s':>9} {'py cpu/M':>8}"
          f" {'pg cpu/M':>8} {'MiB out':>8} {'RSS (1/10)':>10} {'peak RSS':>9}")
    for kind, total in (("measurements", args.rows), ("uplinks", args.uplinks)):
        if total == 0:
            continue
        tenth = START + STEP * max(1, total // 10 // per_step[kind])
        for fmt in args.formats.split(","):
            entry: dict[str, Any] = {"kind": kind, "format": fmt}
            if code is not None:
                small = one(kind, fmt, tenth, code)
                full = one(kind, fmt, None, code)
                entry["baseline"] = {"full": full, "tenth": small}
                _line(kind, fmt, baseline or "", full, small, True)
            small = one(kind, fmt, tenth)
            full = one(kind, fmt, None)
            growth = full["peak_rss_mib"] - small["peak_rss_mib"]
            ok = full["peak_rss_mib"] <= LIMIT_MIB and growth <= GROWTH_MIB
            failed |= not ok
            entry.update({"full": full, "tenth": small, "rss_growth_mib": round(growth, 1),
                          "within_bound": ok})
            if code is not None:
                before = entry["baseline"]["full"]
                entry["cpu_per_row_current_over_baseline"] = round(
                    before["rows_per_cpu_s"] / full["rows_per_cpu_s"], 3)
            results.append(entry)
            _line(kind, fmt, "current", full, small, ok)
    load = max(machine["load_average_1m"], round(os.getloadavg()[0], 2))
    path = harness.write_result(args.results, "export", {
        "when": harness.now_iso(),
        "machine": machine,
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "loaded": load > (machine["cores"] or 1),
        "baseline": baseline,
        "via": args.via,
        "rows": {"measurements": args.rows, "uplinks": args.uplinks},
        "bound": {"peak_rss_mib": LIMIT_MIB, "growth_mib": GROWTH_MIB},
        "memory_bound_held": not failed,
        "results": results,
    })
    print(f"written {path}; memory bound {'exceeded' if failed else 'held'}"
          f" (peak <= {LIMIT_MIB} MiB, growth <= {GROWTH_MIB} MiB)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

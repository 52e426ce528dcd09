"""Export throughput and memory: rows/s and peak RSS for each format, on generated data.

Run from the repository root (see bench/README.md; services of its own, like every
benchmark):

    .venv/bin/python -m bench.export [--rows 10000000] [--uplinks 1000000]

It declares a member `bench_export` (100 CO2 sensors), fills its measurements and raw
uplinks with rows generated in SQL (kept for the next run while their counts match), then
exports them in every format through hypervision.export as the member's reader role, as
the API and the CLI do, each export in a child process of its own so that its peak RSS
is its own. Each export runs twice: over the first tenth of the rows, and over all of
them. Streaming in constant memory means the two peaks are about the same: the script
fails (exit 1) if the full export's peak RSS exceeds LIMIT_MIB or exceeds the tenth's by
more than GROWTH_MIB. Results: bench/results/export.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
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


def _spec() -> Any:
    from hypervision.tenancy.spec import TenantSpec

    return TenantSpec.model_validate({
        "version": "v1", "kind": "tenant", "name": SLUG,
        "identity": {"name": "Benchmark", "kind": "commune"},
        "contacts": {"dpo": {"name": "DPO", "email": "dpo@example.org"}},
        "devices": [{"dev_eui": f"beec0000{i:08x}", "name": f"CO2 {i}",
                     "model": "milesight-am103", "data_class": "indoor-air"}
                    for i in range(DEVICES)],
    })


def _count(conn: Any, table: str) -> int:
    from psycopg import sql

    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
        sql.Identifier(f"tenant_{SLUG}", table))).fetchone()
    return int(row[0])


def prepare(rows: int, uplinks: int) -> None:
    """Declare the member and generate its rows (server-side), unless already there."""
    from hypervision.db import connect_admin
    from hypervision.settings import get_settings
    from hypervision.tenancy import apply as tenancy
    from ingest.decode import Catalogue

    settings = get_settings()
    with connect_admin(settings) as conn:
        tenancy.apply(conn, [_spec()], Catalogue.load(), settings, log=lambda _: None)
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


def child(kind: str, fmt: str, end: str | None) -> None:
    """One export in this process; prints its measures as JSON."""
    from hypervision.db import connect_as
    from hypervision.export import ExportFilter, open_export
    from hypervision.settings import get_settings

    settings = get_settings()
    with connect_as(settings, f"{SLUG}_reader") as conn:
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        flt = ExportFilter(end=datetime.fromisoformat(end) if end else None)
        stream = open_export(conn, f"tenant_{SLUG}", kind, fmt, flt)  # type: ignore[arg-type]
        size = 0
        with open(os.devnull, "wb") as sink:
            for chunk in stream.chunks:
                size += len(chunk)
                sink.write(chunk)
        seconds = time.perf_counter() - started
    print(json.dumps({
        "rows": stream.rows(), "seconds": round(seconds, 2), "bytes": size,
        "rows_per_s": round(stream.rows() / seconds) if seconds else None,
        "baseline_rss_mib": round(baseline, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


def measure(env: harness.BenchEnv, kind: str, fmt: str, end: datetime | None
            ) -> dict[str, Any]:
    args = [sys.executable, "-m", "bench.export", "--child", kind, fmt]
    if end is not None:
        args += ["--end", end.isoformat()]
    out = subprocess.run(args, check=True, capture_output=True, text=True, cwd=harness.REPO,
                         env=env.env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    harness.add_common_args(parser)
    parser.add_argument("--rows", type=int, default=10_000_000, help="measurements")
    parser.add_argument("--uplinks", type=int, default=1_000_000, help="raw uplinks")
    parser.add_argument("--formats", default="csv,jsonl,parquet")
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
    prepare(args.rows, args.uplinks)
    results: list[dict[str, Any]] = []
    failed = False
    per_step = {"measurements": DEVICES * len(METRICS), "uplinks": DEVICES}
    print(f"{'kind':13} {'format':8} {'rows':>11} {'rows/s':>9} {'MiB out':>8}"
          f" {'peak RSS (1/10)':>16} {'peak RSS':>9}")
    for kind, total in (("measurements", args.rows), ("uplinks", args.uplinks)):
        if total == 0:
            continue
        tenth = START + STEP * max(1, total // 10 // per_step[kind])
        for fmt in args.formats.split(","):
            small = measure(env, kind, fmt, tenth)
            full = measure(env, kind, fmt, None)
            growth = full["peak_rss_mib"] - small["peak_rss_mib"]
            ok = full["peak_rss_mib"] <= LIMIT_MIB and growth <= GROWTH_MIB
            failed |= not ok
            results.append({"kind": kind, "format": fmt, "full": full, "tenth": small,
                            "rss_growth_mib": round(growth, 1), "within_bound": ok})
            print(f"{kind:13} {fmt:8} {full['rows']:>11,} {full['rows_per_s']:>9,}"
                  f" {full['bytes'] / 2**20:>8.1f} {small['peak_rss_mib']:>16.1f}"
                  f" {full['peak_rss_mib']:>9.1f}{'' if ok else '  OVER BOUND'}", flush=True)
    path = harness.write_result(args.results, "export", {
        "when": harness.now_iso(),
        "machine": harness.machine(env.settings),
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

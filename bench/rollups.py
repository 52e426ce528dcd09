"""Rollup refresh: how long the hourly and daily aggregates (and the derived water, air and
waste tables) take to catch up, after a year of backfill and after a day of new data.

Run: `.venv/bin/python -m bench.rollups [--devices 400 --days 365 --target-devices 40000]`
(bench/README.md). Prints its figures and writes bench/results/rollups.json.

Fleets are applied like any member and mixed as in bench/dashboards.py: 75 % water meters
(hourly), 15 % containers (every 30 minutes: level and distance), 10 % CO2 sensors (every
10 minutes: CO2, temperature, humidity), each device on its own phase within its interval.
Readings are generated straight into the member's measurements with INSERT ... SELECT
generate_series (no MQTT).

A. A year: `--days` days of `--devices` devices (member `rollup1`), then
   `rollups.backfill` over them, a week per transaction (`hypervision rollups backfill`).
   The rate per measurement row is extrapolated linearly to `--target-devices`, labelled
   as such: a year of a département (about 2.4 billion rows) does not fit this machine.
B. A département: `--target-devices` devices (member `rollup2`, 40,000 by default), a day
   of readings as context (its cursor set after it, not rolled up), then measured at that
   size: `--minutes` times one minute of new data and one refresh (`rollups.refresh`,
   what the beat job runs every minute), then a whole day of new data and one refresh
   (the catch-up after a day without refresh).
C. Late data: `--late` readings at random times of A's year (re-sent histories), then one
   refresh of `rollup1`.
The machine is shared with other work: its load average is recorded with the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time
from typing import Any

from bench import fleet, harness

MIX = {"water": 0.75, "waste": 0.15, "air": 0.10}
PREFIX, CODE = "rollup", 0xB6
ORIGIN = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)

# One INSERT per kind of device for readings in [a, b): each device reports every
# `interval` seconds from ORIGIN + its phase. Values: a water index that only grows, a
# fill level rising then emptied (a collection) every few days, CO2 following the day.
DEVICES_SQL = """
CREATE TEMP TABLE bench_rollup_devs AS
SELECT d.dev_eui, d.model_id, abs(hashtext(d.dev_eui)) AS h
FROM hv.devices d WHERE d.member_slug = %(member)s
"""
WINDOW = """
CROSS JOIN LATERAL generate_series(
    %(origin)s::timestamptz + make_interval(secs => d.h %% {i} + {i} * ceil(
        (extract(epoch FROM %(a)s::timestamptz - %(origin)s::timestamptz) - d.h %% {i}) / {i})),
    %(b)s::timestamptz - interval '1 microsecond', interval '{i} seconds') AS ts
"""
WATER_SQL = """
INSERT INTO {s}.measurements (time, dev_eui, metric, value, unit, deduplication_id)
SELECT ts, d.dev_eui, 'water.index',
       floor(extract(epoch FROM ts - %(origin)s) / 3600 * (5 + d.h %% 20)
             + 2 * sin(extract(epoch FROM ts) / 18000)), 'L', gen_random_uuid()
FROM bench_rollup_devs d
""" + WINDOW.replace("{i}", "3600") + " WHERE d.model_id = 'milesight-em300-di'"
WASTE_SQL = """
INSERT INTO {s}.measurements (time, dev_eui, metric, value, unit, deduplication_id)
SELECT ts, d.dev_eui, x.metric, x.value, x.unit, gen_random_uuid()
FROM bench_rollup_devs d
""" + WINDOW.replace("{i}", "1800") + """
CROSS JOIN LATERAL (SELECT (extract(epoch FROM ts) / 3600 * (0.5 + d.h %% 10 / 10.0)
                            + d.h %% 100)::numeric %% 100 AS level) l
CROSS JOIN LATERAL (VALUES ('fill.level', l.level::float8, '%%'),
                           ('fill.distance', 1500 - 15 * l.level::float8, 'mm'))
     AS x (metric, value, unit)
WHERE d.model_id = 'milesight-em400-mud'
"""
AIR_SQL = """
INSERT INTO {s}.measurements (time, dev_eui, metric, value, unit, deduplication_id)
SELECT ts, d.dev_eui, x.metric, x.value, x.unit, gen_random_uuid()
FROM bench_rollup_devs d
""" + WINDOW.replace("{i}", "600") + """
CROSS JOIN LATERAL (SELECT sin(2 * pi() * (extract(epoch FROM ts) / 86400 - 0.35)) AS w) p
CROSS JOIN LATERAL (VALUES ('air.co2', 700 + 600 * greatest(p.w, 0) + d.h %% 300, 'ppm'),
                           ('air.temperature', 19 + 2 * p.w, '°C'),
                           ('air.humidity', 45 - 5 * p.w, '%%')) x (metric, value, unit)
WHERE d.model_id = 'milesight-am103'
"""
LATE_SQL = """
INSERT INTO {s}.measurements (time, dev_eui, metric, value, unit, deduplication_id)
SELECT %(a)s::timestamptz + random() * (%(b)s::timestamptz - %(a)s::timestamptz)
           + interval '17 seconds', d.dev_eui, 'air.temperature', 20, '°C', gen_random_uuid()
FROM bench_rollup_devs d CROSS JOIN generate_series(1, %(per_device)s)
WHERE d.model_id = 'milesight-am103'
ON CONFLICT DO NOTHING
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Rollup refresh after a backfill and a day.")
    p.add_argument("--devices", type=int, default=400)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--minutes", type=int, default=5, help="steady-state refreshes")
    p.add_argument("--late", type=int, default=1000, help="late readings (approximate)")
    p.add_argument("--target-devices", type=int, default=40_000,
                   help="fleet B (measured at this size) and the extrapolation of A")
    harness.add_common_args(p)
    return p.parse_args(argv)


def mix(devices: int) -> dict[str, int]:
    waste, air = round(devices * MIX["waste"]), round(devices * MIX["air"])
    return {"water": devices - waste - air, "waste": waste, "air": air}


def rows_per_day(counts: dict[str, int]) -> int:
    """Measurement rows a day: water 24 x 1 metric, waste 48 x 2, air 144 x 3."""
    return counts["water"] * 24 + counts["waste"] * 48 * 2 + counts["air"] * 144 * 3


def generate(conn: Any, schema: str, a: dt.datetime, b: dt.datetime) -> int:
    """Readings of every device in [a, b); returns the rows inserted."""
    from psycopg import sql

    s = sql.Identifier(schema)
    values = {"origin": ORIGIN, "a": a, "b": b}
    count = 0
    for text in (WATER_SQL, WASTE_SQL, AIR_SQL):
        count += conn.execute(sql.SQL(text).format(s=s), values).rowcount
    return count


def generate_weeks(conn: Any, schema: str, a: dt.datetime, b: dt.datetime) -> int:
    count, week = 0, a
    while week < b:
        nxt = min(week + dt.timedelta(days=7), b)
        count += generate(conn, schema, week, nxt)
        week = nxt
    return count


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    env = harness.setup(args)
    try:
        report = run(env.settings, args)
        path = harness.write_result(args.results, "rollups", report)
        print(f"written to {path}")
    finally:
        env.close()


def _prepare(conn: Any, spec: Any) -> Any:
    """Empty the member's tables and rollup cursor; list its devices for the generators."""
    from psycopg import sql

    from hypervision.analytics import members

    for table in ("measurements", "rollup_state", "rollup_hourly", "rollup_daily",
                  "water_hourly", "water_daily", "water_monthly", "water_events", "air_hourly",
                  "air_daily", "waste_collections", "gateway_hourly"):
        conn.execute(sql.SQL("TRUNCATE {}.{}").format(sql.Identifier(spec.schema),
                                                      sql.Identifier(table)))
    conn.execute("DROP TABLE IF EXISTS bench_rollup_devs")
    conn.execute(DEVICES_SQL, {"member": spec.name})
    return members.member(conn, spec.name)


def year(conn: Any, settings: Any, spec: Any, args: argparse.Namespace,
         end: dt.datetime) -> dict[str, Any]:
    """A: generate and backfill a year; C: late readings."""
    from psycopg import sql

    from hypervision.analytics import rollups

    m = _prepare(conn, spec)
    start = end - dt.timedelta(days=args.days)
    print(f"A. {spec.name}: {args.devices} devices, generating {args.days} days", flush=True)
    t = time.monotonic()
    rows = generate_weeks(conn, spec.schema, start, end)
    load_s = time.monotonic() - t
    conn.execute(sql.SQL("VACUUM ANALYZE {}.measurements").format(sql.Identifier(spec.schema)))
    print(f"   {rows:,} rows in {load_s:.0f}s; backfilling", flush=True)

    def progress(done: int, total: int) -> None:
        print(f"\r   backfill {done}/{total} weeks", end="", flush=True)

    backfill = rollups.backfill(conn, m, settings, start, end, progress)
    print(f"\n   backfill: {backfill.seconds:.1f}s ({rows / backfill.seconds:,.0f} rows/s)",
          flush=True)

    per_device = max(1, round(args.late / max(1, mix(args.devices)["air"])))
    late_rows = conn.execute(sql.SQL(LATE_SQL).format(s=sql.Identifier(spec.schema)),
                             {"a": start, "b": end, "per_device": per_device}).rowcount
    late = rollups.refresh(conn, m, settings)
    print(f"C. {late_rows} late readings over the year: refresh {late.seconds:.2f}s", flush=True)
    sizes = {
        table: conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(spec.schema), sql.Identifier(table))).fetchone()[0]
        for table in ("measurements", "rollup_hourly", "rollup_daily", "water_hourly",
                      "water_daily", "air_hourly", "air_daily", "waste_collections")
    }
    return {
        "load": {"rows": rows, "seconds": round(load_s, 1)},
        "backfill": {"devices": args.devices, "days": args.days, "rows": rows,
                     "seconds": round(backfill.seconds, 1),
                     "rows_per_s": round(rows / backfill.seconds),
                     "hours_written": backfill.hours, "days_written": backfill.days,
                     "derived_rows": backfill.derived_rows},
        "late_refresh": {"rows": late_rows, "seconds": round(late.seconds, 2),
                         "hours": late.hours},
        "table_rows": sizes,
    }


def departement(conn: Any, settings: Any, spec: Any, args: argparse.Namespace,
                end: dt.datetime) -> dict[str, Any]:
    """B: a minute at a time, then a day, at the target size."""
    from psycopg import sql

    from hypervision.analytics import rollups

    m = _prepare(conn, spec)
    print(f"B. {spec.name}: {args.target_devices:,} devices, a day of context", flush=True)
    context = generate(conn, spec.schema, end - dt.timedelta(days=1), end)
    conn.execute(sql.SQL("VACUUM ANALYZE {}.measurements").format(sql.Identifier(spec.schema)))
    rollups.start_from_now(conn, m)
    rollups.refresh(conn, m, settings)  # copies the devices; reads nothing new
    minute_s, minute_rows = [], []
    at = end
    for _ in range(args.minutes):
        minute_rows.append(generate(conn, spec.schema, at, at + dt.timedelta(minutes=1)))
        minute_s.append(rollups.refresh(conn, m, settings).seconds)
        at += dt.timedelta(minutes=1)
    print(f"   one minute of new data (~{statistics.median(minute_rows):,.0f} rows): refresh"
          f" median {statistics.median(minute_s):.2f}s, max {max(minute_s):.2f}s", flush=True)
    day_rows = generate(conn, spec.schema, at, end + dt.timedelta(days=1))
    day = rollups.refresh(conn, m, settings)
    print(f"   a day of new data ({day_rows:,} rows): refresh {day.seconds:.1f}s", flush=True)
    return {
        "devices": args.target_devices, "context_rows": context,
        "minute_refresh": {"rows_median": statistics.median(minute_rows),
                           "seconds_median": round(statistics.median(minute_s), 3),
                           "seconds_max": round(max(minute_s), 3)},
        "day_refresh": {"rows": day_rows, "seconds": round(day.seconds, 1),
                        "hours": day.hours, "devices": day.devices,
                        "rows_per_s": round(day_rows / day.seconds)},
    }


def run(settings: Any, args: argparse.Namespace) -> dict[str, Any]:
    from hypervision.db import connect_admin

    small, target = mix(args.devices), mix(args.target_devices)
    specs = fleet.fleet(PREFIX, CODE, 1, small) + fleet.fleet(PREFIX, CODE + 1, 1, target)
    specs[1] = specs[1].model_copy(update={"name": f"{PREFIX}2"})
    harness.apply_fleet(settings, specs)
    end = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    out: dict[str, Any] = {"when": harness.now_iso(), "machine": harness.machine(settings),
                           "fleet": {"year": small, "departement": target}}
    with connect_admin(settings) as conn:
        conn.execute("SET synchronous_commit = off")
        out["year"] = year(conn, settings, specs[0], args, end)
        out["departement"] = departement(conn, settings, specs[1], args, end)
        conn.execute("DROP TABLE IF EXISTS bench_rollup_devs")
    out["machine"]["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)

    backfill, dep = out["year"]["backfill"], out["departement"]
    year_rows = rows_per_day(target) * 365
    out["extrapolated"] = {
        "devices": args.target_devices, "rows_per_year": year_rows,
        "year_backfill_hours": round(year_rows / backfill["rows_per_s"] / 3600, 1),
        "note": "the backfill rate of A, applied to a year of the target fleet",
    }
    out["summary"] = [
        {"figure": f"backfill of {args.days} days, {args.devices} devices",
         "value": backfill["seconds"], "unit": f"s ({backfill['rows']:,} rows)"},
        {"figure": "backfill rate", "value": backfill["rows_per_s"], "unit": "rows/s"},
        {"figure": f"refresh after a minute of new data, {args.target_devices:,} devices",
         "value": dep["minute_refresh"]["seconds_median"],
         "unit": f"s median ({dep['minute_refresh']['rows_median']:,.0f} rows)"},
        {"figure": f"refresh after a day of new data, {args.target_devices:,} devices",
         "value": dep["day_refresh"]["seconds"],
         "unit": f"s ({dep['day_refresh']['rows']:,} rows)"},
        {"figure": f"refresh after {out['year']['late_refresh']['rows']} late readings",
         "value": out["year"]["late_refresh"]["seconds"], "unit": "s"},
        {"figure": f"extrapolated: backfill of a year, {args.target_devices:,} devices",
         "value": out["extrapolated"]["year_backfill_hours"],
         "unit": f"h ({year_rows:,} rows)"},
    ]
    return out


if __name__ == "__main__":
    main()

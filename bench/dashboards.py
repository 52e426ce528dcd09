"""Dashboard and API queries on a département-sized data set: p50/p95 latency per query.

Run: `.venv/bin/python -m bench.dashboards [--devices 40000 --days 30]` (bench/README.md).

1. The fleet: `--devices` devices over `--members` members, as tenant specs applied like
   any member: 75 % water meters (hourly), 15 % containers (every 30 minutes), 10 % CO2
   sensors (every 10 minutes), ten to a school building, one per room.
2. Readings are generated straight into the member tables with INSERT ... SELECT
   generate_series (no MQTT): `--days` days of measurements (water index; fill level and
   distance; CO2, temperature and humidity; a daily battery level: about 90 million rows
   for 40,000 devices over 30 days), a day of raw uplinks, the device state, hourly
   rollups over the same days and a year (`--rollup-days`) of daily rollups and daily
   water consumption (in day order, as the refresh job writes it). The secondary indexes
   are dropped during the load and rebuilt after it (the same definitions), as a bulk
   load would. Then the refresh job's own code derives the rest, as it would for the
   member: the containers' collections from their readings, and what it computes from
   the rollups (`derive`: water days' index and history, months, nights, air averages
   and days, containers' state). A data set already loaded with the same parameters is
   kept (`--reload` regenerates it; the member roles' passwords derive from
   HV_SECRET_KEY: reuse needs the same key).
3. Each query runs `--repeat` times (after one warm-up run) as the member's read-only
   role, like the dashboards and the API do, on a device drawn at random each time;
   p50/p95 are printed with the rows returned and the volume they were read from.
Queries: the dashboard views of the member schema (dash_*), the water dashboard's charts
as Superset writes their SQL (dashboards/water.yaml), the analytics views when they
exist, the SQL of the API's measurements and uplinks routes, and our own
representative SQL for what the other dashboard templates show.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import harness

MIX = {"water": 0.75, "waste": 0.15, "air": 0.10}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Dashboard and API query latency.")
    p.add_argument("--devices", type=int, default=40_000)
    p.add_argument("--members", type=int, default=8)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--rollup-days", type=int, default=365)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--reload", action="store_true", help="regenerate the data set")
    harness.add_common_args(p)
    return p.parse_args(argv)


# 1-2. The data set ------------------------------------------------------------------------


def member_mix(devices: int, members: int) -> dict[str, int]:
    per = devices // members
    waste, air = round(per * MIX["waste"]), round(per * MIX["air"])
    return {"water": per - waste - air, "waste": waste, "air": air}


# Per-device constants derived from the DevEUI, stable across statements.
DEVICES_SQL = """
CREATE TEMP TABLE bench_devs ON COMMIT PRESERVE ROWS AS
SELECT d.dev_eui, dm.category, abs(hashtext(d.dev_eui)) AS h
FROM hv.devices d JOIN hv.device_models dm ON dm.id = d.model_id
WHERE d.member_slug = %(member)s
"""

# Water meters: a cumulative index in litres, hourly, at the device's own minute.
WATER_SQL = """
INSERT INTO {s}.measurements (time, dev_eui, metric, value, unit, deduplication_id)
SELECT ts + make_interval(secs => d.h %% 3600), d.dev_eui, 'water.index',
       (d.h %% 100000) * 10.0 + floor(extract(epoch FROM ts - %(origin)s) / 3600)
           * (4 + d.h %% 30), 'L', gen_random_uuid()
FROM bench_devs d,
     generate_series(%(t0)s::timestamptz, %(t1)s::timestamptz - interval '1 hour',
                     interval '1 hour') ts
WHERE d.category = 'water'
"""

# Containers: a fill level rising over a cycle of two to seven days, then emptied.
WASTE_SQL = """
INSERT INTO {s}.measurements (time, dev_eui, metric, value, unit, deduplication_id)
SELECT ts + make_interval(secs => d.h %% 1800), d.dev_eui, x.metric, x.value, x.unit,
       gen_random_uuid()
FROM bench_devs d,
     generate_series(%(t0)s::timestamptz, %(t1)s::timestamptz - interval '30 minutes',
                     interval '30 minutes') ts,
     LATERAL (SELECT (((extract(epoch FROM ts) / 3600 + d.h %% 97)::numeric
                       %% (48 + d.h %% 120)) / (48 + d.h %% 120) * 100)::float8 AS lvl) l,
     LATERAL (VALUES ('fill.level', l.lvl, '%%'),
                     ('fill.distance', 1500 * (1 - l.lvl / 100), 'mm')) x(metric, value, unit)
WHERE d.category = 'waste'
"""

# CO2 sensors: every 10 minutes, high while the school is occupied (weekdays 8-17 h).
AIR_SQL = """
INSERT INTO {s}.measurements (time, dev_eui, metric, value, unit, deduplication_id)
SELECT ts + make_interval(secs => d.h %% 600), d.dev_eui, x.metric, x.value, x.unit,
       gen_random_uuid()
FROM bench_devs d,
     generate_series(%(t0)s::timestamptz, %(t1)s::timestamptz - interval '10 minutes',
                     interval '10 minutes') ts,
     LATERAL (SELECT extract(hour FROM ts AT TIME ZONE 'Europe/Paris') AS hr,
                     extract(isodow FROM ts AT TIME ZONE 'Europe/Paris') AS dow) c,
     LATERAL (VALUES
        ('air.co2', 420 + CASE WHEN c.dow < 6 AND c.hr BETWEEN 8 AND 16
                               THEN 400 + (d.h %% 900) * sin(pi() * (c.hr - 8) / 9)
                               ELSE 0 END + random() * 60, 'ppm'),
        ('air.temperature', 19 + 2 * sin(c.hr / 4) + random(), '°C'),
        ('air.humidity', 40 + random() * 15, '%%')) x(metric, value, unit)
WHERE d.category = 'air'
"""

BATTERY_SQL = """
INSERT INTO {s}.measurements (time, dev_eui, metric, value, unit, deduplication_id)
SELECT ts + make_interval(secs => d.h %% 86400), d.dev_eui, 'battery.level',
       greatest(5, 100 - d.h %% 60 - extract(epoch FROM ts - %(origin)s) / 86400 / 30),
       '%%', gen_random_uuid()
FROM bench_devs d,
     generate_series(%(t0)s::timestamptz, %(t1)s::timestamptz - interval '1 day',
                     interval '1 day') ts
"""

UPLINKS_SQL = """
INSERT INTO {s}.uplinks (time, received_at, dev_eui, deduplication_id, f_cnt, f_port, dr,
                         data, rssi, snr, gateway_count, gateways, codec, event)
SELECT ts + make_interval(secs => d.h %% i.s), ts + make_interval(secs => d.h %% i.s + 1),
       d.dev_eui, gen_random_uuid(), row_number() OVER (PARTITION BY d.dev_eui ORDER BY ts),
       85, 5, '\\x0175'::bytea, -120 + d.h %% 70, -10 + (d.h %% 200) / 10.0, 1 + d.h %% 2,
       ARRAY['0016c001f153a14c'], 'builtin', '{{}}'::json
FROM bench_devs d
JOIN (VALUES ('water', 3600), ('waste', 1800), ('air', 600)) i(category, s)
     USING (category),
     LATERAL generate_series(%(u0)s::timestamptz, %(t1)s::timestamptz
                             - make_interval(secs => i.s), make_interval(secs => i.s)) ts
"""

STATE_SQL = """
INSERT INTO {s}.device_state (dev_eui, last_seen, last_f_cnt, last_rssi, last_snr, last_dr,
                              uplinks_seen, battery_level, updated_at)
SELECT d.dev_eui, %(t1)s::timestamptz - make_interval(secs => d.h %% 5400), 1000,
       -120 + d.h %% 70, -10 + (d.h %% 200) / 10.0, 5, 1000, 100 - d.h %% 90, now()
FROM bench_devs d
ON CONFLICT (dev_eui) DO NOTHING
"""

HOURLY_SQL = """
INSERT INTO {s}.rollup_hourly (bucket, dev_eui, metric, n, min, max, sum, first, last,
                               first_time, last_time)
SELECT time_bucket('1 hour', time), dev_eui, metric, count(*), min(value), max(value),
       sum(value), first(value, time), last(value, time), min(time), max(time)
FROM {s}.measurements
WHERE time >= %(t0)s AND time < %(t1)s AND metric <> 'water.index'
GROUP BY 1, 2, 3
"""

# Water meters read once an hour: their hourly rollup is their reading (the same formula
# as WATER_SQL, without reading the measurements back).
WATER_ROLLUP_SQL = """
INSERT INTO {s}.rollup_hourly (bucket, dev_eui, metric, n, min, max, sum, first, last,
                               first_time, last_time)
SELECT ts, d.dev_eui, 'water.index', 1, v, v, v, v, v,
       ts + make_interval(secs => d.h %% 3600), ts + make_interval(secs => d.h %% 3600)
FROM bench_devs d,
     generate_series(%(t0)s::timestamptz, %(t1)s::timestamptz - interval '1 hour',
                     interval '1 hour') ts,
     LATERAL (SELECT (d.h %% 100000) * 10.0 + floor(extract(epoch FROM ts - %(origin)s) / 3600)
                     * (4 + d.h %% 30) AS v) x
WHERE d.category = 'water'
"""

# A year of daily rollups: synthetic for the main metric of each kind of device.
DAILY_SQL = """
INSERT INTO {s}.rollup_daily (day, dev_eui, metric, n, min, max, sum, first, last,
                              first_time, last_time)
SELECT day::date, d.dev_eui, x.metric, x.n, x.lo, x.hi, x.n * (x.lo + x.hi) / 2, x.lo, x.hi,
       day, day + interval '23 hours'
FROM bench_devs d
JOIN (VALUES ('water', 'water.index', 24), ('waste', 'fill.level', 48),
             ('air', 'air.co2', 144)) k(category, metric, n) USING (category),
     generate_series(%(r0)s::date, %(r1)s::date - 1, interval '1 day') day,
     LATERAL (SELECT k.metric, k.n,
                     CASE k.category WHEN 'water'
                          THEN (d.h %% 100000) * 10.0
                               + (day::date - %(r0)s::date) * 24 * (4 + d.h %% 30)
                          WHEN 'waste' THEN 0 ELSE 420 END::float8 AS lo,
                     CASE k.category WHEN 'water'
                          THEN (d.h %% 100000) * 10.0 + (day::date - %(r0)s::date + 1) * 24
                               * (4 + d.h %% 30)
                          WHEN 'waste' THEN 100 ELSE 1500 END::float8 AS hi) x
"""

# In day order, as the refresh job writes them (a day at a time, every meter).
WATER_DAILY_SQL = """
INSERT INTO {s}.water_daily (day, dev_eui, volume_l, estimated, hours)
SELECT day::date, d.dev_eui, 24 * (4 + d.h %% 30) * (0.7 + random() * 0.6), false, 24
FROM bench_devs d,
     generate_series(%(r0)s::date, %(r1)s::date - 1, interval '1 day') day
WHERE d.category = 'water'
ORDER BY day, d.dev_eui
"""

WATER_HOURLY_SQL = """
INSERT INTO {s}.water_hourly (bucket, dev_eui, volume_l, estimated)
SELECT ts, d.dev_eui, 4 + d.h %% 30, false
FROM bench_devs d,
     generate_series(%(t0)s::timestamptz, %(t1)s::timestamptz - interval '1 hour',
                     interval '1 hour') ts
WHERE d.category = 'water'
"""

# What the analytics refresh job copies from the catalogue (hypervision.analytics).
ANALYTICS_DEVICES_SQL = """
INSERT INTO {s}.analytics_devices (dev_eui, name, model_id, category, data_class, building,
                                   room, address, typical_interval_s, variables, active)
SELECT d.dev_eui, d.name, d.model_id, dm.category, d.spec ->> 'data_class',
       d.spec -> 'location' ->> 'building', d.spec -> 'location' ->> 'room',
       d.spec -> 'location' ->> 'address',
       coalesce((dm.spec ->> 'typical_interval_s')::integer, 600), d.variables, d.active
FROM hv.devices d JOIN hv.device_models dm ON dm.id = d.model_id
WHERE d.member_slug = %(member)s
"""

AIR_HOURLY_SQL = """
INSERT INTO {s}.air_hourly (bucket, dev_eui, occupied_s, above_low_s, above_high_s,
                            low_ppm, high_ppm, n0, n1, n2)
SELECT time_bucket('1 hour', time), dev_eui,
       CASE WHEN extract(isodow FROM time_bucket('1 hour', time) AT TIME ZONE 'Europe/Paris') < 6
             AND extract(hour FROM time_bucket('1 hour', time) AT TIME ZONE 'Europe/Paris')
                 BETWEEN 8 AND 16 THEN 3600 ELSE 0 END,
       600 * count(*) FILTER (WHERE value >= 800), 600 * count(*) FILTER (WHERE value >= 1500),
       800, 1500, count(*) FILTER (WHERE value < 1000),
       count(*) FILTER (WHERE value BETWEEN 1000 AND 1700), count(*) FILTER (WHERE value > 1700)
FROM {s}.measurements
WHERE metric = 'air.co2' AND time >= %(t0)s AND time < %(t1)s
GROUP BY 1, 2
"""


TABLES = ("measurements", "uplinks", "device_state", "rollup_hourly", "rollup_daily",
          "water_hourly", "water_daily", "water_monthly", "water_nights", "air_hourly",
          "air_daily", "waste_collections", "waste_containers", "analytics_devices")


def table_exists(conn: Any, schema: str, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                        (f'"{schema}"."{table}"',)).fetchone()[0]


def secondary_indexes(conn: Any, schema: str, table: str) -> list[tuple[str, str]]:
    """(name, definition) of a table's indexes that back no constraint."""
    return conn.execute(
        """
        SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.schemaname = %s AND i.tablename = %s
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                          WHERE c.conname = i.indexname AND c.connamespace = %s::regnamespace)
        """,
        (schema, table, schema),
    ).fetchall()


def load(settings: Any, specs: list[Any], args: argparse.Namespace,
         end: datetime) -> dict[str, Any]:
    """Generate the data set into every member's tables; returns timings."""
    from psycopg import sql

    from hypervision.db import connect_admin

    t1 = end
    t0 = t1 - timedelta(days=args.days)
    r1 = t1.date()
    r0 = r1 - timedelta(days=args.rollup_days)
    params = {"t0": t0, "t1": t1, "u0": t1 - timedelta(days=1), "origin": t0 - timedelta(
        days=365), "r0": r0, "r1": r1}
    timings: dict[str, float] = {}

    def timed(label: str, conn: Any, statement: Any, values: dict[str, Any]) -> None:
        started = time.monotonic()
        conn.execute(statement, values)
        timings[label] = timings.get(label, 0.0) + time.monotonic() - started

    with connect_admin(settings) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET work_mem = '256MB'")
        conn.execute("SET synchronous_commit = off")
        for spec in specs:
            s = sql.Identifier(spec.schema)
            print(f"  {spec.name}: loading", flush=True)
            for table in TABLES:
                if table_exists(conn, spec.schema, table):
                    conn.execute(sql.SQL("TRUNCATE {}.{}").format(s, sql.Identifier(table)))
            dropped = secondary_indexes(conn, spec.schema, "measurements")
            for name, _ in dropped:
                conn.execute(sql.SQL("DROP INDEX {}.{}").format(s, sql.Identifier(name)))
            conn.execute("DROP TABLE IF EXISTS bench_devs")
            conn.execute(DEVICES_SQL, {"member": spec.name})
            # A week at a time: each statement fills one or two chunks.
            week = t0
            while week < t1:
                nxt = min(week + timedelta(days=7), t1)
                values = {**params, "t0": week, "t1": nxt}
                for label, text in (("water", WATER_SQL), ("waste", WASTE_SQL),
                                    ("air", AIR_SQL), ("battery", BATTERY_SQL)):
                    timed(f"measurements {label}", conn, sql.SQL(text).format(s=s), values)
                week = nxt
            started = time.monotonic()
            for _, definition in dropped:
                conn.execute(definition)
            timings["measurements indexes"] = timings.get("measurements indexes", 0.0) + \
                time.monotonic() - started
            timed("uplinks (1 day)", conn, sql.SQL(UPLINKS_SQL).format(s=s), params)
            timed("device_state", conn, sql.SQL(STATE_SQL).format(s=s), params)
            for table, text in (("rollup_hourly", HOURLY_SQL), ("rollup_hourly", WATER_ROLLUP_SQL),
                                ("air_hourly", AIR_HOURLY_SQL),
                                ("water_hourly", WATER_HOURLY_SQL)):
                if table_exists(conn, spec.schema, table):
                    week = t0
                    while week < t1:
                        nxt = min(week + timedelta(days=7), t1)
                        timed(table, conn, sql.SQL(text).format(s=s),
                              {**params, "t0": week, "t1": nxt})
                        week = nxt
            for table, text in (("rollup_daily", DAILY_SQL), ("water_daily", WATER_DAILY_SQL)):
                if table_exists(conn, spec.schema, table):
                    timed(table, conn, sql.SQL(text).format(s=s), params)
            if table_exists(conn, spec.schema, "analytics_devices"):
                try:
                    timed("analytics_devices", conn,
                          sql.SQL(ANALYTICS_DEVICES_SQL).format(s=s), {"member": spec.name})
                except Exception as exc:  # another version of the analytics schema
                    print(f"  analytics_devices not filled: {exc}", flush=True)
            conn.execute("DROP TABLE bench_devs")
            if table_exists(conn, spec.schema, "waste_containers"):
                started = time.monotonic()
                derive(conn, spec.name, t0, t1)
                timings["derived (refresh code)"] = timings.get(
                    "derived (refresh code)", 0.0) + time.monotonic() - started
        print("  vacuuming and analysing", flush=True)
        started = time.monotonic()
        for spec in specs:
            for table in TABLES:
                if table_exists(conn, spec.schema, table):
                    conn.execute(sql.SQL("VACUUM ANALYZE {}.{}").format(
                        sql.Identifier(spec.schema), sql.Identifier(table)))
        timings["vacuum analyze"] = time.monotonic() - started
    return {k: round(v, 1) for k, v in timings.items()}


def derive(conn: Any, slug: str, t0: datetime, t1: datetime) -> None:
    """The tables the refresh job derives from the readings and rollups generated above,
    by the refresh job's own code: the containers' collections over the readings, then
    what is computed from the rollups and derived tables (water_daily's index, readings
    and history, water_monthly, water_nights, air_hourly's averages, air_daily,
    waste_containers; hypervision.analytics.rollups.rederive)."""
    from psycopg import sql

    from hypervision.analytics import members, rollups, waste

    m = members.member(conn, slug)
    config = members.sync(conn, m)
    known = members.devices(conn, m.schema, category="waste")
    with conn.transaction():
        waste.recompute(conn, m.schema, dict.fromkeys(known, (t0, t1)), known, config.waste)
    rollups.rederive(conn, m)
    # `rederive` updates a year of rows at once, which leaves them in the order of the
    # update; the refresh job writes and updates a day's rows within minutes of each
    # other, so a member's tables are in time order: put them back in it.
    for table, index in (("water_daily", "water_daily_day_timestamp_idx"),
                         ("air_hourly", "air_hourly_bucket_idx")):
        conn.execute(sql.SQL("CLUSTER {} USING {}").format(
            sql.Identifier(m.schema, table), sql.Identifier(index)))


def volume(settings: Any, specs: list[Any]) -> dict[str, Any]:
    """Rows and on-disk size (with indexes) of each table, summed over the members."""
    from psycopg import sql

    from hypervision.db import connect_admin

    out: dict[str, Any] = {}
    with connect_admin(settings) as conn:
        for table in TABLES:
            rows = size = 0
            for spec in specs:
                if not table_exists(conn, spec.schema, table):
                    continue
                name = sql.Identifier(spec.schema, table)
                rows += conn.execute(sql.SQL("SELECT count(*) FROM {}").format(name)).fetchone()[0]
                hyper = conn.execute(
                    "SELECT 1 FROM timescaledb_information.hypertables"
                    " WHERE hypertable_schema = %s AND hypertable_name = %s",
                    (spec.schema, table)).fetchone()
                if hyper:
                    size += conn.execute("SELECT hypertable_size(%s::regclass)",
                                         (f'"{spec.schema}"."{table}"',)).fetchone()[0] or 0
                else:
                    size += conn.execute("SELECT pg_total_relation_size(%s::regclass)",
                                         (f'"{spec.schema}"."{table}"',)).fetchone()[0]
            out[table] = {"rows": rows, "size_mb": round(size / 2**20)}
        out["database_size_mb"] = round(conn.execute(
            "SELECT pg_database_size(current_database())").fetchone()[0] / 2**20)
    return out


# 3. The queries -----------------------------------------------------------------------------


@dataclass
class Query:
    name: str
    source: str  # what it stands for: a dashboard template, an API route, a view
    text: str  # SQL, with {s} for the member schema
    needs: str = ""  # a table or view that must exist in the member schema
    device: str | None = None  # category of the device drawn for %(dev)s


QUERIES = [
    # Water.
    Query("water: last index of every meter (member)", "water dashboard, map/table",
          """SELECT d.dev_eui, last.time, last.value FROM {s}.dash_devices d
             CROSS JOIN LATERAL (SELECT m.time, m.value FROM {s}.measurements m
                 WHERE m.dev_eui = d.dev_eui AND m.metric = 'water.index'
                 ORDER BY m.time DESC LIMIT 1) last
             WHERE d.category = 'water'""", needs="dash_devices"),
    # The four charts of dashboards/water.yaml, as Superset queries dash_water_daily
    # (saved metrics of dashboards/datasets.yaml, time range "last 30 days": from 30 days
    # before now to the end of today, TO_TIMESTAMP as Superset writes it).
    Query("water dashboard: consumption over 30 days (big number)", "dashboards/water.yaml",
          """SELECT SUM(consumption_m3) AS consumption FROM {s}.dash_water_daily
             WHERE {superset_30_days} LIMIT 50000""", needs="dash_water_daily"),
    Query("water dashboard: meters read over 30 days (big number)", "dashboards/water.yaml",
          """SELECT COUNT(DISTINCT dev_eui) AS meters FROM {s}.dash_water_daily
             WHERE {superset_30_days} LIMIT 50000""", needs="dash_water_daily"),
    # Superset's series limit: the top 20 meters in a subquery, joined.
    Query("water dashboard: consumption per day, top 20 meters (bars)", "dashboards/water.yaml",
          """SELECT DATE_TRUNC('day', day) AS day, device_name AS device_name,
                    SUM(consumption_m3) AS consumption FROM {s}.dash_water_daily
             JOIN (SELECT device_name AS device_name__, SUM(consumption_m3) AS mme_inner__
                   FROM {s}.dash_water_daily WHERE {superset_30_days}
                   GROUP BY device_name ORDER BY SUM(consumption_m3) DESC LIMIT 20)
                  AS series_limit ON device_name = device_name__
             WHERE {superset_30_days}
             GROUP BY DATE_TRUNC('day', day), device_name
             ORDER BY consumption DESC LIMIT 10000""", needs="dash_water_daily"),
    Query("water dashboard: consumption and index per meter (table)", "dashboards/water.yaml",
          """SELECT device_name AS device_name, address AS address,
                    SUM(consumption_m3) AS consumption, MAX(index_m3) AS last_index,
                    SUM(readings) AS readings FROM {s}.dash_water_daily
             WHERE {superset_30_days}
             GROUP BY device_name, address ORDER BY consumption DESC LIMIT 1000""",
          needs="dash_water_daily"),
    Query("water: one meter, daily over a year (rollup)", "water dashboard, meter page",
          """SELECT day, last - first AS litres FROM {s}.rollup_daily
             WHERE dev_eui = %(dev)s AND metric = 'water.index'
               AND day >= (%(end)s - interval '365 days')::date ORDER BY day""",
          needs="rollup_daily", device="water"),
    # Waste.
    Query("waste: containers above 80 % now", "dashboards/waste (dash_waste_latest)",
          "SELECT * FROM {s}.dash_waste_latest WHERE fill_pct >= 80 ORDER BY fill_pct DESC",
          needs="dash_waste_latest"),
    Query("waste: one container, fill level over a week", "waste dashboard",
          """SELECT time, value FROM {s}.measurements WHERE dev_eui = %(dev)s
             AND metric = 'fill.level' AND time >= %(end)s - interval '7 days'
             ORDER BY time""", device="waste"),
    # Air.
    Query("air: CO2 hourly per room over a day (raw)", "dashboards/co2",
          """SELECT d.building, d.room, time_bucket('1 hour', m.time) AS hour,
                    avg(m.value), max(m.value)
             FROM {s}.measurements m JOIN {s}.dash_devices d USING (dev_eui)
             WHERE m.metric = 'air.co2' AND m.time >= %(end)s - interval '1 day'
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""", needs="dash_devices"),
    # The refresh job's tables with the refresh job's copy of the devices, as the
    # analytics views join them: dash_devices (hv_shared.member_devices(), estimated at
    # 1,000 rows) makes the planner probe the rollups once per device.
    Query("air: CO2 hourly per room over a day (rollup)", "dashboards/co2",
          """SELECT d.building, d.room, r.bucket, r.sum / r.n, r.max
             FROM {s}.rollup_hourly r JOIN {s}.analytics_devices d USING (dev_eui)
             WHERE r.metric = 'air.co2' AND r.bucket >= %(end)s - interval '1 day'
             ORDER BY 1, 2, 3""", needs="rollup_hourly"),
    Query("air: one sensor, hourly CO2 over a week (raw)", "co2 dashboard, room page",
          """SELECT time_bucket('1 hour', time), avg(value), max(value) FROM {s}.measurements
             WHERE dev_eui = %(dev)s AND metric = 'air.co2'
               AND time >= %(end)s - interval '7 days' GROUP BY 1 ORDER BY 1""",
          device="air"),
    Query("air: one sensor, hourly CO2 over a week (rollup)", "co2 dashboard, room page",
          """SELECT bucket, sum / n, max FROM {s}.rollup_hourly
             WHERE dev_eui = %(dev)s AND metric = 'air.co2'
               AND bucket >= %(end)s - interval '7 days' ORDER BY bucket""",
          needs="rollup_hourly", device="air"),
    # From the sensors' local days (air_daily, kept by the refresh job), as
    # v_air_icone_journalier: 31 rows per sensor rather than 720 hours.
    Query("air: ICONE index per room over a month", "co2 dashboard (air_daily)",
          """SELECT dev_eui, {s}.icone_index(sum(n1), sum(n2), sum(n0 + n1 + n2))
             FROM {s}.air_daily WHERE day >= (%(end)s - interval '30 days')::date
               AND occupied_s > 0 GROUP BY dev_eui""", needs="air_daily"),
    # Health and radio.
    Query("health: every device with its status", "dashboards/health (dash_device_health)",
          "SELECT * FROM {s}.dash_device_health", needs="dash_device_health"),
    Query("radio: one device's uplinks over a day", "dash_uplinks view",
          """SELECT * FROM {s}.dash_uplinks WHERE dev_eui = %(dev)s
             AND time >= %(end)s - interval '1 day' ORDER BY time""",
          needs="dash_uplinks", device="air"),
    Query("last values of one device (dash_measurements, 1 day)", "dash_measurements view",
          """SELECT * FROM {s}.dash_measurements WHERE dev_eui = %(dev)s
             AND time >= %(end)s - interval '1 day' ORDER BY time DESC""",
          needs="dash_measurements", device="air"),
    # The API's own SQL (platform/hypervision/api/routes/measurements.py, uplinks.py).
    Query("API GET /members/{slug}/measurements?devices=..&bucket=1h (7 days)",
          "api/routes/measurements.py",
          """SELECT time_bucket('1 hour'::interval, time) AS bucket, dev_eui, metric,
                    avg(value), min(unit), count(*) FROM {s}.measurements
             WHERE time >= %(end)s - interval '7 days' AND time < %(end)s
               AND (cardinality(ARRAY[%(dev)s]::text[]) = 0 OR dev_eui = ANY(ARRAY[%(dev)s]))
               AND (cardinality(ARRAY[]::text[]) = 0 OR metric = ANY(ARRAY[]::text[]))
               AND NOT (dev_eui = ANY(ARRAY[]::text[]))
             GROUP BY bucket, dev_eui, metric ORDER BY bucket, dev_eui, metric
             LIMIT 1001""", device="air"),
    Query("API GET /members/{slug}/measurements (raw, 24 h, all devices, limit 1000)",
          "api/routes/measurements.py",
          """SELECT time, dev_eui, metric, value, unit, 1 FROM {s}.measurements
             WHERE time >= %(end)s - interval '1 day' AND time < %(end)s
               AND (cardinality(ARRAY[]::text[]) = 0 OR dev_eui = ANY(ARRAY[]::text[]))
               AND (cardinality(ARRAY[]::text[]) = 0 OR metric = ANY(ARRAY[]::text[]))
               AND NOT (dev_eui = ANY(ARRAY[]::text[]))
             ORDER BY time, dev_eui, metric LIMIT 1001"""),
    Query("API GET /members/{slug}/uplinks?device=.. (24 h)", "api/routes/uplinks.py",
          """SELECT time, received_at, dev_eui, deduplication_id, f_cnt, f_port, dr, rssi, snr,
                    gateway_count, data, object, codec, decode_error, event FROM {s}.uplinks
             WHERE dev_eui = %(dev)s AND time >= %(end)s - interval '1 day'
             ORDER BY time LIMIT 1001""", device="water"),
]

# The analytics views of the member schema (migrations/tenant/0062_analytics_views.sql), as a
# Superset chart would query them.
QUERIES += [
    Query("analytics: v_mesures_horaires, one sensor's CO2 over a week", "v_mesures_horaires",
          """SELECT heure_locale, moyenne, maximum FROM {s}.v_mesures_horaires
             WHERE dispositif = %(dev)s AND metrique = 'air.co2'
               AND heure >= %(end)s - interval '7 days' ORDER BY heure""",
          needs="v_mesures_horaires", device="air"),
    Query("analytics: v_eau_conso_journaliere, member total per day over a month",
          "v_eau_conso_journaliere",
          """SELECT jour, sum(volume_m3) FROM {s}.v_eau_conso_journaliere
             WHERE jour >= (%(end)s - interval '30 days')::date GROUP BY jour ORDER BY jour""",
          needs="v_eau_conso_journaliere"),
    Query("analytics: v_eau_conso_journaliere, top 20 meters over a month",
          "v_eau_conso_journaliere",
          """SELECT compteur, sum(volume_m3) AS m3 FROM {s}.v_eau_conso_journaliere
             WHERE jour >= (%(end)s - interval '30 days')::date
             GROUP BY compteur ORDER BY m3 DESC LIMIT 20""", needs="v_eau_conso_journaliere"),
    Query("analytics: v_eau_conso_mensuelle, member total per month over a year",
          "v_eau_conso_mensuelle",
          """SELECT mois, sum(volume_m3) FROM {s}.v_eau_conso_mensuelle
             WHERE mois >= (%(end)s - interval '365 days')::date GROUP BY mois ORDER BY mois""",
          needs="v_eau_conso_mensuelle"),
    Query("analytics: v_eau_conso_anormale, yesterday", "v_eau_conso_anormale",
          """SELECT * FROM {s}.v_eau_conso_anormale
             WHERE jour = (%(end)s - interval '1 day')::date""",
          needs="v_eau_conso_anormale"),
    Query("analytics: v_eau_nuits, every meter's last night", "v_eau_nuits",
          """SELECT * FROM {s}.v_eau_nuits WHERE nuit = (%(end)s - interval '1 day')::date""",
          needs="v_eau_nuits"),
    Query("analytics: v_eau_nuits, continuous flow nights per meter over a week",
          "v_eau_nuits",
          """SELECT dispositif, count(*) FILTER (WHERE debit_continu) FROM {s}.v_eau_nuits
             WHERE nuit > (%(end)s - interval '8 days')::date GROUP BY dispositif""",
          needs="v_eau_nuits"),
    Query("analytics: v_dechets_conteneurs, containers to empty", "v_dechets_conteneurs",
          "SELECT * FROM {s}.v_dechets_conteneurs WHERE a_vider",
          needs="v_dechets_conteneurs"),
    Query("analytics: v_air_salles_horaires, every room over a day", "v_air_salles_horaires",
          """SELECT * FROM {s}.v_air_salles_horaires
             WHERE heure >= %(end)s - interval '1 day'""", needs="v_air_salles_horaires"),
    Query("analytics: v_air_icone_journalier, last month", "v_air_icone_journalier",
          """SELECT * FROM {s}.v_air_icone_journalier
             WHERE jour >= (%(end)s - interval '30 days')::date""",
          needs="v_air_icone_journalier"),
    Query("analytics: v_sante_dispositifs, every device", "v_sante_dispositifs",
          "SELECT * FROM {s}.v_sante_dispositifs", needs="v_sante_dispositifs"),
]

OPERATOR_QUERIES = [
    Query("operator: devices per member and category", "hv_operator.devices_per_member",
          "SELECT * FROM hv_operator.devices_per_member", needs="hv_operator.devices_per_member"),
    Query("operator: device health counts per member", "hv_operator.device_health_counts()",
          "SELECT * FROM hv_operator.device_health_counts()",
          needs="hv_operator.device_health_per_member"),
    Query("operator: measurements in the last hour per member", "usage / cost sharing",
          "{union}"),
]


def member_devices(settings: Any, slug: str) -> dict[str, list[str]]:
    from hypervision.db import connect_admin

    out: dict[str, list[str]] = {}
    with connect_admin(settings) as conn:
        for eui, category in conn.execute(
            "SELECT d.dev_eui, dm.category FROM hv.devices d JOIN hv.device_models dm"
            " ON dm.id = d.model_id WHERE d.member_slug = %s", (slug,)).fetchall():
            out.setdefault(category, []).append(eui)
    return out


def superset_range(end: datetime, days: int) -> Any:
    """Superset's filter for a template's `last N days` on `day` (hypervision.superset
    .bundle.time_range): from N days before now to the end of today, Paris time, as
    literals written with TO_TIMESTAMP."""
    from zoneinfo import ZoneInfo

    from psycopg import sql

    local = end.astimezone(ZoneInfo("Europe/Paris")).replace(tzinfo=None)
    since = local - timedelta(days=days)
    until = datetime.combine(local.date() + timedelta(days=1), datetime.min.time())
    form = "YYYY-MM-DD HH24:MI:SS.US"
    return sql.SQL("day >= TO_TIMESTAMP({}, {}) AND day < TO_TIMESTAMP({}, {})").format(
        sql.Literal(since.strftime("%Y-%m-%d %H:%M:%S.%f")), sql.Literal(form),
        sql.Literal(until.strftime("%Y-%m-%d %H:%M:%S.%f")), sql.Literal(form))


def time_query(conn: Any, text: str, params: dict[str, Any], draw: Any,
               repeat: int) -> tuple[list[float], int]:
    conn.execute(text, params | draw()).fetchall()  # warm-up
    times = []
    rows = 0
    for _ in range(repeat):
        values = params | draw()
        started = time.perf_counter()
        rows = len(conn.execute(text, values).fetchall())
        times.append((time.perf_counter() - started) * 1000)
    return times, rows


def run_queries(settings: Any, specs: list[Any], args: argparse.Namespace,
                end: datetime) -> list[dict[str, Any]]:
    """Each query as the member's read-only role (the operator's as the superuser)."""
    import psycopg
    from psycopg import sql

    from hypervision.db import connect_admin

    spec = specs[0]
    devices = member_devices(settings, spec.name)
    rng = random.Random(7)
    reader = spec.role("reader")
    results = []
    with psycopg.connect(settings.role_conninfo(reader), autocommit=True) as conn:
        for q in QUERIES:
            exists = not q.needs or conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL",
                (q.needs if "." in q.needs else f'"{spec.schema}"."{q.needs}"',)).fetchone()[0]
            if not exists:
                results.append({"query": q.name, "source": q.source, "skipped": f"no {q.needs}"})
                continue
            text = sql.SQL(q.text).format(  # type: ignore[arg-type]
                s=sql.Identifier(spec.schema), superset_30_days=superset_range(end, 30))

            def draw(category: str | None = q.device) -> dict[str, Any]:
                return {"dev": rng.choice(devices[category])} if category else {}

            results.append(_measure(conn, q, text, {"end": end}, draw, args.repeat))
    with connect_admin(settings) as conn:
        union = sql.SQL(" UNION ALL ").join(
            sql.SQL("SELECT {m}, count(*) FROM {s}.measurements"
                    " WHERE time >= %(end)s - interval '1 hour'").format(
                m=sql.Literal(s.name), s=sql.Identifier(s.schema)) for s in specs)
        for q in OPERATOR_QUERIES:
            if q.needs and not conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                            (q.needs,)).fetchone()[0]:
                results.append({"query": q.name, "source": q.source, "skipped": f"no {q.needs}"})
                continue
            text = union if q.text == "{union}" else sql.SQL(q.text)  # type: ignore[arg-type]
            results.append(_measure(conn, q, text, {"end": end}, dict, args.repeat))
    return results


def _measure(conn: Any, q: Query, text: Any, params: dict[str, Any], draw: Any,
             repeat: int) -> dict[str, Any]:
    try:
        times, rows = time_query(conn, text, params, draw, repeat)
    except Exception as exc:  # one broken view must not hide the other figures
        return {"query": q.name, "source": q.source,
                "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
    out = {"query": q.name, "source": q.source, "rows": rows,
           "p50_ms": round(harness.percentile(times, 50) or 0, 1),
           "p95_ms": round(harness.percentile(times, 95) or 0, 1),
           "max_ms": round(max(times), 1), "runs": len(times),
           # The machine may be shared: how busy it was right after the runs.
           "load_average_1m": round(os.getloadavg()[0], 2)}
    out["met"] = out["p95_ms"] < 150
    print(f"  {out['p50_ms']:>8.1f} {out['p95_ms']:>8.1f} ms  {rows:>7} rows  {q.name}",
          flush=True)
    return out


# Main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    bench = harness.setup(args)
    settings = bench.settings
    from bench.fleet import fleet

    mix = member_mix(args.devices, args.members)
    specs = fleet("bench_dash_", 0xD1, args.members, mix)
    marker = settings.data_dir / "dashboards-data.json"
    wanted = {"devices": args.devices, "members": args.members, "days": args.days,
              "rollup_days": args.rollup_days, "mix": mix}
    try:
        loaded = json.loads(marker.read_text(encoding="utf-8")) if marker.exists() else {}
        if args.reload or loaded.get("parameters") != wanted:
            marker.unlink(missing_ok=True)
            print(f"applying {args.devices:,} devices over {args.members} members", flush=True)
            harness.apply_fleet(settings, specs)
            end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            print(f"generating {args.days} days of readings and {args.rollup_days} days of"
                  " rollups", flush=True)
            started = time.monotonic()
            timings = load(settings, specs, args, end)
            loaded = {"parameters": wanted, "end": end.isoformat(), "timings_s": timings,
                      "load_s": round(time.monotonic() - started), "when": harness.now_iso()}
            marker.write_text(json.dumps(loaded), encoding="utf-8")
        end = datetime.fromisoformat(loaded["end"])
        data = volume(settings, specs)
        print(f"data: {json.dumps(data)}", flush=True)
        print(f"queries ({args.repeat} runs each, as {specs[0].name}'s reader role;"
              f" {sum(mix.values()):,} of the {args.devices:,} devices): p50, p95", flush=True)
        queries = run_queries(settings, specs, args, end)
        machine = harness.machine(settings)
    finally:
        bench.close()
    measured = [q for q in queries if "p95_ms" in q]
    result = {
        "benchmark": "dashboards", "when": harness.now_iso(), "machine": machine,
        "command": "python -m bench.dashboards " + " ".join(argv if argv is not None
                                                             else sys.argv[1:]),
        "config": {**wanted, "member_queried": specs[0].name,
                   "devices_per_member": sum(mix.values()), "data_end": loaded["end"]},
        "load": {k: v for k, v in loaded.items() if k != "parameters"},
        "data": data,
        "queries": queries,
        "targets": {"p95_ms": {"target": "< 150 per query",
                               "worst": max((q["p95_ms"] for q in measured), default=None),
                               "missed": [q["query"] for q in measured if not q["met"]],
                               "met": all(q["met"] for q in measured) and bool(measured)}},
    }
    result["summary"] = [
        {"figure": f"{q['query']} ({q['rows']} rows)", "value": q["p95_ms"],
         "unit": "ms p95", "target": "< 150", "met": q["met"]}
        for q in measured
    ]
    path = harness.write_result(args.results, "dashboards", result)
    print(f"written: {path}")
    return result


if __name__ == "__main__":
    main()

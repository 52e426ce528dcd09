"""Dashboard and API queries on a département-sized data set: p50/p95 latency per query.

Run: `.venv/bin/python -m bench.dashboards [--devices 40000 --days 30]` (bench/README.md).

1. The fleet: `--devices` devices over `--members` members, as tenant specs applied like
   any member: 75 % water meters (hourly), 15 % containers (every 30 minutes), 10 % CO2
   sensors (every 10 minutes), ten to a school building, one per room.
2. Readings are generated straight into the member tables with INSERT ... SELECT
   generate_series (no MQTT): `--days` days of measurements (water index; fill level and
   distance; CO2, temperature and humidity; a daily battery level: about 90 million rows
   for 40,000 devices over 30 days), a week of raw uplinks (heard by 40 gateways, half of
   them by two) with their hourly gateway activity and radio reception, the device state,
   hourly rollups over the same days and a year (`--rollup-days`) of daily rollups and
   daily water consumption (in day order, as the refresh job writes it), a month of
   ingestion counters (hv.ingest_outcomes, the operator's usage). The secondary indexes
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
Queries: every chart of every dashboard template (dashboards/*.yaml, the operator's
included) as Superset writes its SQL, generated from the template (`template_queries`);
the dashboard views of the member schema (dash_*), the analytics views when they exist,
the SQL of the API's measurements and uplinks routes, and our own representative SQL
for a device's pages.
4. The console's pages (`console_pages`): each page requested `--repeat` times through
   the API app in process (FastAPI's TestClient, no network), with the session of an
   admin of the first member (and of an operator for the operators' page) that passed
   the second factor; a page that does not answer 200 itself (a redirect to the sign-in
   included) is reported as an error. The server's time for the whole page, its audit
   entry included. Target p95 < 300 ms. `--no-console` skips
   them; `--console-only` times them alone (on the data set already loaded).
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

MIX = {"water": 0.73, "waste": 0.15, "air": 0.10, "lighting": 0.02}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Dashboard and API query latency.")
    p.add_argument("--devices", type=int, default=40_000)
    p.add_argument("--members", type=int, default=8)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--rollup-days", type=int, default=365)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--reload", action="store_true", help="regenerate the data set")
    p.add_argument("--no-console", action="store_true", help="skip the console's pages")
    p.add_argument("--console-only", action="store_true",
                   help="time the console's pages only (skip the dashboard and API queries)")
    harness.add_common_args(p)
    return p.parse_args(argv)


# 1-2. The data set ------------------------------------------------------------------------


def member_mix(devices: int, members: int) -> dict[str, int]:
    per = devices // members
    waste, air, lighting = (round(per * MIX[k]) for k in ("waste", "air", "lighting"))
    return {"water": per - waste - air - lighting, "waste": waste, "air": air,
            "lighting": lighting}


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

# Lighting cabinets, every 20 minutes: lamps on from 18:00 to 07:00 local time (one in
# ten also by day, a faulty clock), power when on, and the cumulative energy counter.
LIGHTING_SQL = """
INSERT INTO {s}.measurements (time, dev_eui, metric, value, unit, deduplication_id)
SELECT l.t, d.dev_eui, x.metric, x.value, x.unit, gen_random_uuid()
FROM bench_devs d,
     generate_series(%(t0)s::timestamptz, %(t1)s::timestamptz - interval '20 minutes',
                     interval '20 minutes') ts,
     LATERAL (SELECT ts + make_interval(secs => d.h %% 1200) AS t,
                     (d.h %% 10 = 0 OR extract(hour FROM ts AT TIME ZONE 'Europe/Paris')
                                       NOT BETWEEN 7 AND 17)::int AS lit,
                     (d.h %% 100000) * 100.0
                         + floor(extract(epoch FROM ts - %(origin)s) / 1200)
                           * (100 + d.h %% 400) * 0.55 AS wh) l,
     LATERAL (VALUES ('lamp.on', l.lit::float8, 'bool'),
                     ('power.active', l.lit * (300.0 + d.h %% 1200), 'W'),
                     ('energy.active', l.wh, 'Wh')) x(metric, value, unit)
WHERE d.category = 'lighting'
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
       CASE WHEN d.h %% 2 = 0 THEN ARRAY[lpad(to_hex(d.h %% 40), 16, '0016c001f153a0')]
            ELSE ARRAY[lpad(to_hex(d.h %% 40), 16, '0016c001f153a0'),
                       lpad(to_hex((d.h + 1) %% 40), 16, '0016c001f153a0')] END,
       'builtin', '{{}}'::json
FROM bench_devs d
JOIN (VALUES ('water', 3600), ('waste', 1800), ('air', 600)) i(category, s)
     USING (category),
     LATERAL generate_series(%(u0)s::timestamptz, %(t1)s::timestamptz
                             - make_interval(secs => i.s), make_interval(secs => i.s)) ts
"""

# The ingestion counters of a month (the operator's usage charts): per member and day,
# the uplinks of its devices stored, a few duplicates and failures, status events.
OUTCOMES_SQL = """
INSERT INTO hv.ingest_outcomes (day, member_slug, event_type, outcome, events, bytes)
SELECT d::date, m, o.event_type, o.outcome, o.events, o.events * 60
FROM unnest(%(members)s::text[]) m,
     generate_series(%(t0)s::timestamptz, %(t1)s::timestamptz - interval '1 day',
                     interval '1 day') d,
     (VALUES ('up', 'stored', 195000), ('up', 'duplicate', 2000), ('up', 'decode_failed', 40),
             ('up', 'unknown_device', 15), ('up', 'rejected', 5), ('status', 'stored', 5000),
             ('join', 'stored', 30)) o(event_type, outcome, events)
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
             ('air', 'air.co2', 144), ('lighting', 'energy.active', 72))
     k(category, metric, n) USING (category),
     generate_series(%(r0)s::date, %(r1)s::date - 1, interval '1 day') day,
     LATERAL (SELECT k.metric, k.n,
                     CASE k.category WHEN 'water'
                          THEN (d.h %% 100000) * 10.0
                               + (day::date - %(r0)s::date) * 24 * (4 + d.h %% 30)
                          WHEN 'lighting'
                          THEN (d.h %% 100000) * 100.0
                               + (day::date - %(r0)s::date) * 72 * (100 + d.h %% 400) * 0.55
                          WHEN 'waste' THEN 0 ELSE 420 END::float8 AS lo,
                     CASE k.category WHEN 'water'
                          THEN (d.h %% 100000) * 10.0 + (day::date - %(r0)s::date + 1) * 24
                               * (4 + d.h %% 30)
                          WHEN 'lighting'
                          THEN (d.h %% 100000) * 100.0
                               + (day::date - %(r0)s::date + 1) * 72 * (100 + d.h %% 400) * 0.55
                          WHEN 'waste' THEN 100 ELSE 1500 END::float8 AS hi) x
"""

# The daily battery levels of the data's days, from their readings (the battery
# forecast reads a month of them).
BATTERY_DAILY_SQL = """
INSERT INTO {s}.rollup_daily (day, dev_eui, metric, n, min, max, sum, first, last,
                              first_time, last_time)
SELECT (time AT TIME ZONE 'Europe/Paris')::date, dev_eui, metric, count(*), min(value),
       max(value), sum(value), first(value, time), last(value, time), min(time), max(time)
FROM {s}.measurements
WHERE metric = 'battery.level' AND time >= %(t0)s AND time < %(t1)s
GROUP BY 1, 2, 3
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
          "air_daily", "waste_collections", "waste_containers", "analytics_devices",
          "gateway_hourly", "radio_daily")
# Days of raw uplinks, up to the end of the data: the health dashboard's week.
UPLINK_DAYS = 7


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
    params = {"t0": t0, "t1": t1, "u0": t1 - timedelta(days=UPLINK_DAYS), "origin": t0 - timedelta(
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
                                    ("air", AIR_SQL), ("lighting", LIGHTING_SQL),
                                    ("battery", BATTERY_SQL)):
                    timed(f"measurements {label}", conn, sql.SQL(text).format(s=s), values)
                week = nxt
            started = time.monotonic()
            for _, definition in dropped:
                conn.execute(definition)
            timings["measurements indexes"] = timings.get("measurements indexes", 0.0) + \
                time.monotonic() - started
            timed(f"uplinks ({UPLINK_DAYS} days)", conn, sql.SQL(UPLINKS_SQL).format(s=s),
                  params)
            started = time.monotonic()
            radio(conn, spec.name, params["u0"], t1)
            timings["gateway_hourly, radio_daily (refresh code)"] = timings.get(
                "gateway_hourly, radio_daily (refresh code)", 0.0) + time.monotonic() - started
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
            for table, text in (("rollup_daily", DAILY_SQL), ("rollup_daily", BATTERY_DAILY_SQL),
                                ("water_daily", WATER_DAILY_SQL)):
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
        started = time.monotonic()
        slugs = [spec.name for spec in specs]
        conn.execute("DELETE FROM hv.ingest_outcomes WHERE member_slug = ANY(%s)", (slugs,))
        conn.execute(OUTCOMES_SQL, {**params, "members": slugs})
        timings["ingest_outcomes"] = time.monotonic() - started
        print("  vacuuming and analysing", flush=True)
        started = time.monotonic()
        for spec in specs:
            for table in TABLES:
                if table_exists(conn, spec.schema, table):
                    conn.execute(sql.SQL("VACUUM ANALYZE {}.{}").format(
                        sql.Identifier(spec.schema), sql.Identifier(table)))
        timings["vacuum analyze"] = time.monotonic() - started
    return {k: round(v, 1) for k, v in timings.items()}


def radio(conn: Any, slug: str, u0: datetime, t1: datetime) -> None:
    """Gateway activity per hour and radio reception per device and local day, from the
    raw uplinks, by the refresh job's own code, and its watermark at the end of the data,
    as a refresh at that time would leave it (hv_operator.gateway_activity_counts reads
    the raw uplinks after it)."""
    from zoneinfo import ZoneInfo

    from psycopg import sql

    from hypervision.analytics import health, members, rollups

    m = members.member(conn, slug)
    zone = members.sync(conn, m).timezone
    with conn.transaction():
        health.recompute_gateways(conn, m.schema, u0, t1)
        if table_exists(conn, m.schema, "radio_daily"):
            health.recompute_radio(conn, m.schema, u0.astimezone(ZoneInfo(zone)).date(),
                                   t1.astimezone(ZoneInfo(zone)).date()
                                   + timedelta(days=1), zone)
        conn.execute(
            sql.SQL("INSERT INTO {}.rollup_state (stream, watermark) VALUES (%s, %s)"
                    " ON CONFLICT (stream) DO UPDATE SET watermark = excluded.watermark").format(
                sql.Identifier(m.schema)), (rollups.UPLINKS, t1))


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
    chart: str = ""  # "dashboard/chart" of the template chart it stands for
    # (column, days, last day) of a chart's time range, the {time_filter} of its text.
    time: tuple[str | None, int, bool] | None = None


QUERIES = [
    # Water.
    Query("water: last index of every meter (member)", "water dashboard, map/table",
          """SELECT d.dev_eui, last.time, last.value FROM {s}.dash_devices d
             CROSS JOIN LATERAL (SELECT m.time, m.value FROM {s}.measurements m
                 WHERE m.dev_eui = d.dev_eui AND m.metric = 'water.index'
                 ORDER BY m.time DESC LIMIT 1) last
             WHERE d.category = 'water'""", needs="dash_devices"),
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
    # dash_air_days: 31 rows per sensor rather than 720 hours.
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

OPERATOR_QUERIES = [
    Query("operator: devices per member and category", "hv_operator.devices_per_member",
          "SELECT * FROM hv_operator.devices_per_member", needs="hv_operator.devices_per_member"),
    Query("operator: device health counts per member", "hv_operator.device_health_counts()",
          "SELECT * FROM hv_operator.device_health_counts()",
          needs="hv_operator.device_health_per_member"),
]


# The charts of the dashboard templates (dashboards/*.yaml), each as Superset writes its
# SQL for PostgreSQL, generated from the template rather than copied by hand, so that a
# chart added to a template is measured too: the saved metrics of datasets.yaml, the
# chart's filters and time range (as literals, Superset's "last N days" up to the end of
# today), its grouping, ordering and row limit (the bundle's defaults, VIZ_DEFAULTS).
# tests/bench/test_bench_scripts.py checks that every chart has its query and that each
# runs. Member dashboards run as the member's reader role; the operator's dashboard on
# the hv_operator views.

GRAINS = {"PT1H": "hour", "P1D": "day", "P1W": "week", "P1M": "month"}
UNITS = {"hour": 1 / 24, "day": 1, "week": 7, "month": 30}
COMPARISONS = {"==": "=", "!=": "<>", ">": ">", "<": "<", ">=": ">=", "<=": "<="}


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    # Doubled braces: the text goes through psycopg's sql.SQL().format().
    return "'" + str(value).replace("'", "''").replace("{", "{{").replace("}", "}}") + "'"


def _where(column: str, operator: str, value: Any) -> str:
    col = f'"{column}"'
    op = operator.upper()
    if op in COMPARISONS:
        return f"{col} {COMPARISONS[op]} {_literal(value)}"
    if op in ("IN", "NOT IN"):
        return f"{col} {op} ({', '.join(_literal(v) for v in value)})"
    if op in ("IS NULL", "IS NOT NULL", "IS TRUE", "IS FALSE"):
        return f"{col} {op}"
    raise ValueError(f"filter operator {operator!r}: add it to bench.dashboards._where")


def _time_range(text: str) -> tuple[int, bool]:
    """(days, last_day) of a template's time range."""
    from hypervision.superset.bundle import RELATIVE

    if text.strip().lower() == "last day":
        return 1, True
    match = RELATIVE.match(text.strip().lower())
    if match is None:
        raise ValueError(f"time range {text!r}: add it to bench.dashboards._time_range")
    return round(int(match[1]) * UNITS[match[2]]), False


def chart_sql(chart: Any, dataset: Any, params: dict[str, Any]) -> str:
    """The SQL Superset runs for `chart` (templates.ChartSpec) on `dataset`
    (templates.DatasetSpec), with {s} for the schema and {time_filter} for the range."""

    def metric(name: Any) -> tuple[str, str]:
        if isinstance(name, dict):
            return name["sqlExpression"], name["label"]
        return dataset.metrics[name].sql.replace("{", "{{").replace("}", "}}"), name

    def metrics(*keys: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for key in keys:
            value = params.get(key)
            for item in value if isinstance(value, list) else [value] if value else []:
                if metric(item) not in out:
                    out.append(metric(item))
        return out

    where = [_where(*f) for f in chart.filters]
    if chart.time_range is not None:
        where.insert(0, "{time_filter}")
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    source = f"{{s}}.{dataset.table}"
    limit = int(params.get("row_limit") or 50000)
    desc = "DESC" if params.get("order_desc", True) else "ASC"
    groupby = [f'"{c}"' for c in params.get("groupby") or []]
    viz = chart.viz
    if viz == "big_number_total":
        expr, name = metric(params["metric"])
        return f'SELECT {expr} AS "{name}" FROM {source}{clause} LIMIT 50000'
    if viz == "table" and params.get("query_mode") == "raw":
        order = [json.loads(o) for o in params.get("order_by_cols") or []]
        order_sql = (" ORDER BY " + ", ".join(f'"{c}" {"ASC" if asc else "DESC"}'
                                              for c, asc in order)) if order else ""
        columns = ", ".join(f'"{c}"' for c in params["all_columns"])
        return f"SELECT {columns} FROM {source}{clause}{order_sql} LIMIT {limit}"
    if viz == "table":
        shown = metrics("metrics")
        by = (metrics("timeseries_limit_metric") or shown)[0]
        select = ", ".join([*groupby, *(f'{e} AS "{n}"' for e, n in shown)])
        group = f" GROUP BY {', '.join(groupby)}" if groupby else ""
        return (f"SELECT {select} FROM {source}{clause}{group} ORDER BY {by[0]} {desc}"
                f" LIMIT {limit}")
    if viz.startswith("echarts_timeseries"):
        grain = GRAINS[params.get("time_grain_sqla", "P1D")]
        x = f"DATE_TRUNC('{grain}', \"{params['x_axis']}\")"
        shown = metrics("metrics")
        select = ", ".join([f'{x} AS "{params["x_axis"]}"', *groupby,
                            *(f'{e} AS "{n}"' for e, n in shown)])
        join = ""
        if groupby and params.get("series_limit"):
            # Superset's series limit: the top groups over the range in a subquery, in the
            # chart's order (order_desc: false, the lowest).
            by = (metrics("series_limit_metric") or shown)[0][0]
            names = params.get("groupby") or []
            inner = ", ".join(f'"{c}" AS "{c}__"' for c in names)
            on = " AND ".join(f'"{c}" = "{c}__"' for c in names)
            join = (f" JOIN (SELECT {inner} FROM {source}{clause}"
                    f" GROUP BY {', '.join(groupby)} ORDER BY {by} {desc}"
                    f" LIMIT {int(params['series_limit'])}) AS series_limit ON {on}")
        return (f"SELECT {select} FROM {source}{join}{clause}"
                f" GROUP BY {', '.join([x, *groupby])} ORDER BY {shown[0][0]} {desc}"
                f" LIMIT {limit}")
    if viz == "bubble_v2":
        entity = f'"{params["entity"]}"'
        shown = [metric(params[k]) for k in ("x", "y", "size")]
        select = ", ".join([entity, *(f'{e} AS "{n}"' for e, n in shown)])
        return f"SELECT {select} FROM {source}{clause} GROUP BY {entity} LIMIT {limit}"
    raise ValueError(f"viz {viz!r} (chart {chart.name}): add it to bench.dashboards.chart_sql")


def template_queries() -> tuple[list[Query], list[Query]]:
    """(member queries, operator queries): one per chart of the dashboard templates."""
    from hypervision.superset import templates
    from hypervision.superset.bundle import VIZ_DEFAULTS

    loaded = templates.load()
    member: list[Query] = []
    operator: list[Query] = []
    for dashboard in loaded.dashboards:
        for chart in dashboard.charts:
            dataset = loaded.datasets[chart.dataset]
            params = {**VIZ_DEFAULTS.get(chart.viz, {}), **chart.params}
            days, last_day = _time_range(chart.time_range) if chart.time_range else (0, False)
            query = Query(
                f"{dashboard.name} dashboard: {chart.title}", f"dashboards/{dashboard.name}.yaml",
                chart_sql(chart, dataset, params), chart=f"{dashboard.name}/{chart.name}",
                time=(dataset.time_column, days, last_day) if chart.time_range else None)
            if dataset.scope == "operator":
                query.text = query.text.replace("{s}", "hv_operator")
                query.needs = f"hv_operator.{dataset.table}"
                operator.append(query)
            else:
                query.needs = dataset.table
                member.append(query)
    return member, operator


def member_devices(settings: Any, slug: str) -> dict[str, list[str]]:
    from hypervision.db import connect_admin

    out: dict[str, list[str]] = {}
    with connect_admin(settings) as conn:
        for eui, category in conn.execute(
            "SELECT d.dev_eui, dm.category FROM hv.devices d JOIN hv.device_models dm"
            " ON dm.id = d.model_id WHERE d.member_slug = %s", (slug,)).fetchall():
            out.setdefault(category, []).append(eui)
    return out


def superset_range(end: datetime, days: int, column: str = "day",
                   last_day: bool = False) -> Any:
    """Superset's filter for a template's `last N days` on `column` (hypervision.superset
    .bundle.time_range): from N days before now to the end of today, Paris time, as
    literals written with TO_TIMESTAMP; with `last_day`, Superset's "Last day" (yesterday
    from midnight to midnight)."""
    from zoneinfo import ZoneInfo

    from psycopg import sql

    local = end.astimezone(ZoneInfo("Europe/Paris")).replace(tzinfo=None)
    since = local - timedelta(days=days)
    until = datetime.combine(local.date() + timedelta(days=1), datetime.min.time())
    if last_day:
        until = datetime.combine(local.date(), datetime.min.time())
        since = until - timedelta(days=1)
    form = "YYYY-MM-DD HH24:MI:SS.US"
    return sql.SQL("{c} >= TO_TIMESTAMP({}, {}) AND {c} < TO_TIMESTAMP({}, {})").format(
        sql.Literal(since.strftime("%Y-%m-%d %H:%M:%S.%f")), sql.Literal(form),
        sql.Literal(until.strftime("%Y-%m-%d %H:%M:%S.%f")), sql.Literal(form),
        c=sql.Identifier(column))


def time_filter(q: Query, end: datetime) -> Any:
    """The {time_filter} of a chart's query: Superset's literals for its time range."""
    from psycopg import sql

    if q.time is None:
        return sql.SQL("true")
    column, days, last_day = q.time
    return superset_range(end, days, column or "time", last_day=last_day)


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
    member_charts, operator_charts = template_queries()
    with psycopg.connect(settings.role_conninfo(reader), autocommit=True) as conn:
        for q in [*QUERIES, *member_charts]:
            exists = not q.needs or conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL",
                (q.needs if "." in q.needs else f'"{spec.schema}"."{q.needs}"',)).fetchone()[0]
            if not exists:
                results.append({"query": q.name, "source": q.source, "chart": q.chart or None,
                                "skipped": f"no {q.needs}"})
                continue
            text = sql.SQL(q.text).format(  # type: ignore[arg-type]
                s=sql.Identifier(spec.schema), time_filter=time_filter(q, end))

            def draw(category: str | None = q.device) -> dict[str, Any]:
                return {"dev": rng.choice(devices[category])} if category else {}

            results.append(_measure(conn, q, text, {"end": end}, draw, args.repeat))
    with connect_admin(settings) as conn:
        for q in [*OPERATOR_QUERIES, *operator_charts]:
            if q.needs and not conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                            (q.needs,)).fetchone()[0]:
                results.append({"query": q.name, "source": q.source, "chart": q.chart or None,
                                "skipped": f"no {q.needs}"})
                continue
            text = sql.SQL(q.text).format(  # type: ignore[arg-type]
                time_filter=time_filter(q, end))
            results.append(_measure(conn, q, text, {"end": end}, dict, args.repeat))
    return results


def _measure(conn: Any, q: Query, text: Any, params: dict[str, Any], draw: Any,
             repeat: int) -> dict[str, Any]:
    try:
        times, rows = time_query(conn, text, params, draw, repeat)
    except Exception as exc:  # one broken view must not hide the other figures
        return {"query": q.name, "source": q.source, "chart": q.chart or None,
                "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
    out = {"query": q.name, "source": q.source, "chart": q.chart or None, "rows": rows,
           "p50_ms": round(harness.percentile(times, 50) or 0, 1),
           "p95_ms": round(harness.percentile(times, 95) or 0, 1),
           "max_ms": round(max(times), 1), "runs": len(times),
           # The machine may be shared: how busy it was right after the runs.
           "load_average_1m": round(os.getloadavg()[0], 2)}
    out["met"] = out["p95_ms"] < 150
    print(f"  {out['p50_ms']:>8.1f} {out['p95_ms']:>8.1f} ms  {rows:>7} rows  {q.name}",
          flush=True)
    return out


# 4. The console's pages ---------------------------------------------------------------------

CONSOLE_TARGET_MS = 300


def console_pages(settings: Any, specs: list[Any],
                  args: argparse.Namespace) -> list[dict[str, Any]]:
    """Server time of each console page (hypervision.console) for the first member."""
    from fastapi.testclient import TestClient

    from hypervision import accounts
    from hypervision.api.db import ensure_api_role
    from hypervision.api.main import create_app
    from hypervision.console.session import SESSION_COOKIE, SESSION_KIND
    from hypervision.db import connect_admin
    from hypervision.tenancy.spec import TenantSpec

    spec = specs[0]
    who = accounts.Who("system:bench")
    password = "bench console password"
    syndic = TenantSpec.model_validate({
        "version": "v1", "kind": "tenant", "name": "bench_syndic",
        "identity": {"name": "Syndicat (banc d'essai)", "kind": "syndicate"},
        "contacts": {"dpo": {"name": "DPO", "email": "dpo@syndic.bench.example"}}})
    harness.apply_fleet(settings, [syndic])
    with connect_admin(settings) as conn:
        ensure_api_role(conn, settings)
        for email, member, operator in (("admin@member.bench.example", spec.name, False),
                                        ("operator@syndic.bench.example", "bench_syndic",
                                         True)):
            accounts.upsert_account(conn, who, email=email, name=email, member=member,
                                    rights=["read", "export", "admin"], operator=operator)
            accounts.set_password(conn, who, email, password)
    devices = member_devices(settings, spec.name)
    rng = random.Random(11)
    base = f"/console/m/{spec.name}"
    pages: list[tuple[str, str, Any]] = [
        ("home", "admin", lambda: base),
        ("devices (first page)", "admin", lambda: f"{base}/devices"),
        # Beyond 400 matching devices the list's map is an image the browser fetches
        # beside the page: timed as a request of its own.
        ("devices, the first page's map (its own image)", "admin",
         lambda: f"{base}/devices/map.svg?q=&model=&class=&building=&state="),
        ("devices, silent ones", "admin", lambda: f"{base}/devices?state=silent"),
        ("devices, page 30", "admin", lambda: f"{base}/devices?page=30"),
        ("devices, a search", "admin", lambda: f"{base}/devices?q=water+1-12"),
        ("device page, water meter, 7 days", "admin",
         lambda: f"{base}/devices/{rng.choice(devices['water'])}?period=7d"),
        ("device page, CO2 sensor, 30 days", "admin",
         lambda: f"{base}/devices/{rng.choice(devices['air'])}?metric=air.co2&period=30d"),
        ("alerts inbox", "admin", lambda: f"{base}/alerts"),
        ("exports (form and history)", "admin", lambda: f"{base}/exports"),
        # The form's device search as console.js asks it: a broad one (every water meter
        # matches: only the first ones are returned) and a narrow one.
        ("exports, device search (broad)", "admin", lambda: f"{base}/exports/devices?q=water"),
        ("exports, device search (narrow)", "admin",
         lambda: f"{base}/exports/devices?q=air+1-{rng.randint(1, 500)}"),
        ("journal", "admin", lambda: f"{base}/journal"),
        ("operators' network page", "operator", lambda: "/console/operator"),
        ("my account", "admin", lambda: "/console/account"),
    ]
    app = create_app(settings.model_copy(update={"console_secure_cookie": False,
                                                 "api_login_attempts": 10_000}))
    results = []
    with TestClient(app) as admin, TestClient(app) as operator:
        # Both accounts need a second factor: their sessions are issued as the sign-in
        # would after it (a session token that passed it), straight into the cookie.
        with connect_admin(settings) as conn:
            for client, email in ((admin, "admin@member.bench.example"),
                                  (operator, "operator@syndic.bench.example")):
                session = accounts.create_token(
                    conn, who, email=email, kind=SESSION_KIND, mfa=True, method="password",
                    expires_at=datetime.now(UTC) + timedelta(hours=4))
                client.cookies.set(SESSION_COOKIE, session.secret, path="/console")
        for name, role, path in pages:
            client = admin if role == "admin" else operator
            client.get(path(), follow_redirects=False)  # warm-up
            times = []
            for _ in range(args.repeat):
                url = path()
                started = time.perf_counter()
                answer = client.get(url, follow_redirects=False)
                times.append((time.perf_counter() - started) * 1000)
                if answer.status_code != 200:
                    results.append({"query": f"console: {name}", "source": "console",
                                    "error": f"{url}: HTTP {answer.status_code}"})
                    break
            else:
                out = {"query": f"console: {name}", "source": "console", "rows": 1,
                       "bytes": len(answer.content),
                       "p50_ms": round(harness.percentile(times, 50) or 0, 1),
                       "p95_ms": round(harness.percentile(times, 95) or 0, 1),
                       "max_ms": round(max(times), 1), "runs": len(times),
                       "load_average_1m": round(os.getloadavg()[0], 2),
                       "target_ms": CONSOLE_TARGET_MS}
                out["met"] = out["p95_ms"] < CONSOLE_TARGET_MS
                print(f"  {out['p50_ms']:>8.1f} {out['p95_ms']:>8.1f} ms  "
                      f"{out['bytes']:>7} bytes  console: {name}", flush=True)
                results.append(out)
    return results


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
              "rollup_days": args.rollup_days, "mix": mix, "uplink_days": UPLINK_DAYS}
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
        queries = [] if args.console_only else run_queries(settings, specs, args, end)
        if not args.no_console:
            print(f"console pages ({args.repeat} runs each, server time in process): p50,"
                  " p95", flush=True)
            queries += console_pages(settings, specs, args)
        machine = harness.machine(settings)
    finally:
        bench.close()
    measured = [q for q in queries if "p95_ms" in q and q.get("source") != "console"]
    pages = [q for q in queries if "p95_ms" in q and q.get("source") == "console"]
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
                               "met": all(q["met"] for q in measured) and bool(measured)},
                    "console_p95_ms": {
                        "target": f"< {CONSOLE_TARGET_MS} per page",
                        "worst": max((q["p95_ms"] for q in pages), default=None),
                        "missed": [q["query"] for q in pages if not q["met"]],
                        "met": all(q["met"] for q in pages) and bool(pages)}},
    }
    result["summary"] = [
        {"figure": f"{q['query']} ({q['rows']} rows)", "value": q["p95_ms"],
         "unit": "ms p95", "target": "< 150", "met": q["met"]}
        for q in measured
    ] + [
        {"figure": q["query"], "value": q["p95_ms"], "unit": "ms p95",
         "target": f"< {CONSOLE_TARGET_MS}", "met": q["met"]}
        for q in pages
    ]
    path = harness.write_result(args.results, "dashboards", result)
    print(f"written: {path}")
    return result


if __name__ == "__main__":
    main()

"""Fixtures of the retention tests: a member `ret_e` that declares retention for raw
messages, water and air (not for waste), and a data set of known ages in its tables."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hypervision.db import connect_admin
from hypervision.settings import Settings
from tests.public.members import apply_member, remove_member, spec_from

WATER, AIR, WASTE = "e5e5e5e5e5e50001", "e5e5e5e5e5e50002", "e5e5e5e5e5e50003"
# Rows of a device no member declares (cannot happen through ingestion, but a device
# could be deleted by hand): measurements of unknown class are kept, raw rows follow `raw`.
STRAY = "e5e5e5e5e5e5ffff"
DAYS = {"raw": 30, "water-consumption": 365, "indoor-air": 60}
CLASSES = {WATER: "water-consumption", AIR: "indoor-air", WASTE: "waste-fill"}
NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)

RET_E = f"""
version: v1
kind: tenant
name: ret_e
identity: {{name: Commune Rétention (test), kind: commune}}
contacts:
  dpo: {{name: DPO Rétention, email: dpo@ret.example.org}}
retention: {{raw: {DAYS['raw']}, water-consumption: {DAYS['water-consumption']},
            indoor-air: {DAYS['indoor-air']}}}
devices:
  - {{dev_eui: "{WATER}", name: Water, model: milesight-em300-di, data_class: water-consumption}}
  - {{dev_eui: "{AIR}", name: Air, model: milesight-am103, data_class: indoor-air}}
  - {{dev_eui: "{WASTE}", name: Bin, model: milesight-em400-mud, data_class: waste-fill,
     variables: {{container_depth_mm: "1500"}}}}
"""

# Ages in days. Water and air share chunks at 800 days (all expired: dropped whole) and
# at 500 days with waste (kept forever: those chunks lose only their expired rows).
AGES = {
    WATER: [0.5, 10, 29.9, 30.1, 100, 200, 364.9, 365.1, 400, 500, 800, 801],
    AIR: [0.5, 10, 59.9, 60.1, 100, 500, 800, 801],
    WASTE: [0.5, 100, 500],
    STRAY: [0.5, 31, 900],
}
EVENT_AGES = [1, 29, 31, 100, 400]
DEAD_LETTER_AGES = [1, 29.5, 30.5, 200]


# The tables the data set fills, and their time column.
TABLES = {"measurements": "time", "uplinks": "time", "device_events": "time",
          "water_hourly": "bucket", "rollup_daily": "day"}


@dataclass
class Dataset:
    """The rows inserted, as (table, dev_eui, time or day)."""

    rows: set[tuple[str, str, Any]] = field(default_factory=set)
    dead_letters: set[dt.datetime] = field(default_factory=set)


@pytest.fixture(scope="session")
def ret_member(platform_db: Settings, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[Settings]:
    spec = spec_from(tmp_path_factory.mktemp("ret"), RET_E)
    with connect_admin(platform_db) as admin:
        apply_member(admin, platform_db, spec)
        yield platform_db
        remove_member(admin, spec)


def _at(age: float) -> dt.datetime:
    return NOW - dt.timedelta(days=age)


@pytest.fixture
def dataset(ret_member: Settings, admin: psycopg.Connection) -> Dataset:
    """Empty ret_e's tables and fill them with rows of known ages."""
    data = Dataset()
    with admin.transaction():
        for table in TABLES:
            admin.execute(sql.SQL("TRUNCATE tenant_ret_e.{}").format(sql.Identifier(table)))
        admin.execute("DELETE FROM hv.dead_letters WHERE member_slug IN ('ret_e', 'alpha')"
                      " AND origin = 'test:retention'")
        for dev_eui, ages in AGES.items():
            for n, age in enumerate(ages):
                time = _at(age)
                dedup = uuid.uuid4()
                admin.execute(
                    "INSERT INTO tenant_ret_e.uplinks (time, received_at, dev_eui,"
                    " deduplication_id, f_cnt, f_port, data, event)"
                    " VALUES (%s, %s, %s, %s, %s, 85, '\\x01', '{}')",
                    (time, time, dev_eui, dedup, n))
                admin.execute(
                    "INSERT INTO tenant_ret_e.measurements (time, dev_eui, metric, value, unit,"
                    " deduplication_id) VALUES (%s, %s, 'battery.level', %s, '%%', %s)",
                    (time, dev_eui, n, dedup))
                data.rows |= {("uplinks", dev_eui, time), ("measurements", dev_eui, time)}
        # Tables derived from measurements follow the same rule (see 0060_rollups_*).
        derived = {**AGES, WATER: [*AGES[WATER], 9000]}  # a year-long chunk of its own
        for dev_eui, ages in derived.items():
            for age in ages:
                time = _at(age)
                day = time.date()
                admin.execute(
                    "INSERT INTO tenant_ret_e.water_hourly (bucket, dev_eui, volume_l, estimated)"
                    " VALUES (%s, %s, 1.0, false)", (time, dev_eui))
                admin.execute(
                    "INSERT INTO tenant_ret_e.rollup_daily (day, dev_eui, metric, n, min, max,"
                    " sum, first, last, first_time, last_time)"
                    " VALUES (%s, %s, 'battery.level', 1, 1, 1, 1, 1, 1, %s, %s)"
                    " ON CONFLICT DO NOTHING", (day, dev_eui, time, time))
                data.rows |= {("water_hourly", dev_eui, time), ("rollup_daily", dev_eui, day)}
        for age in EVENT_AGES:
            time = _at(age)
            admin.execute(
                "INSERT INTO tenant_ret_e.device_events (time, dev_eui, kind, digest, event)"
                " VALUES (%s, %s, 'join', %s, '{}')",
                (time, WATER, hashlib.sha256(str(age).encode()).digest()))
            data.rows.add(("device_events", WATER, time))
        for member in ("ret_e", "alpha"):
            for age in DEAD_LETTER_AGES:
                payload = f"{member}:{age}".encode()
                admin.execute(
                    "INSERT INTO hv.dead_letters (received_at, origin, member_slug, reason,"
                    " payload, digest) VALUES (%s, 'test:retention', %s, 'decode_failed', %s,"
                    " %s)", (_at(age), member, payload, hashlib.sha256(payload).digest()))
            if member == "ret_e":
                data.dead_letters = {_at(a) for a in DEAD_LETTER_AGES}
    return data


def expired(table: str, dev_eui: str, time: dt.datetime | dt.date) -> bool:
    """The rule, written out independently of hypervision.retention."""
    if not isinstance(time, dt.datetime):  # a day counts from its midnight, UTC
        time = dt.datetime.combine(time, dt.time(), tzinfo=dt.UTC)
    raw = DAYS["raw"]
    class_days = DAYS.get(CLASSES.get(dev_eui, ""))
    if table in ("measurements", "water_hourly", "rollup_daily"):
        days = class_days
    elif table == "uplinks":
        days = min(raw, class_days) if class_days is not None else raw
    else:
        days = raw
    return days is not None and time < NOW - dt.timedelta(days=days)


def label(table: str, dev_eui: str) -> str:
    return "raw" if table == "device_events" else CLASSES.get(dev_eui, "unknown")


def remaining(admin: psycopg.Connection) -> set[tuple[str, str, Any]]:
    found = set()
    for table, column in TABLES.items():
        for dev_eui, time in admin.execute(sql.SQL("SELECT dev_eui, {} FROM tenant_ret_e.{}")
                                           .format(sql.Identifier(column),
                                                   sql.Identifier(table))):
            found.add((table, dev_eui, time))
    return found


def chunk_count(admin: psycopg.Connection, table: str) -> int:
    row = admin.execute(
        "SELECT count(*) FROM timescaledb_information.chunks"
        " WHERE hypertable_schema = 'tenant_ret_e' AND hypertable_name = %s", (table,)
    ).fetchone()
    return int(row[0]) if row else 0


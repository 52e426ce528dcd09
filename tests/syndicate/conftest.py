"""Fixtures of the syndicate tests: a small network (tests/syndicate/network: two
intercommunalities co-funding three gateways, four members sharing the costs) and its
members (tests/syndicate/tenants) applied next to the platform's test members, with a
year (2025) of usage written as the pipeline would: uplinks in the members' schemas
(active devices per day) and ingestion counters (uplinks per day)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hypervision.settings import Settings

HERE = Path(__file__).parent
NETWORK = HERE / "network"
TENANTS = HERE / "tenants"
MEMBERS = ("cc_aven", "cc_odet", "bourg", "plage")
# Devices heard every day of [first, last] (one uplink a day at noon UTC).
HEARD = {
    "cc_aven": [("5e1d0a0a00000001", dt.date(2025, 1, 1), dt.date(2025, 12, 31))],
    "cc_odet": [],
    "bourg": [("5e1d0c0c00000001", dt.date(2025, 1, 1), dt.date(2025, 12, 31)),
              ("5e1d0c0c00000002", dt.date(2025, 1, 1), dt.date(2025, 12, 31))],
    "plage": [("5e1d0d0d00000001", dt.date(2025, 1, 1), dt.date(2025, 12, 31)),
              ("5e1d0d0d00000002", dt.date(2025, 7, 1), dt.date(2025, 12, 31))],
}
# Outside the year: never counted in 2025's statements.
HEARD_OUTSIDE = [("bourg", "5e1d0c0c00000001", dt.date(2024, 12, 31)),
                 ("plage", "5e1d0d0d00000001", dt.date(2026, 1, 1))]
# Ingestion counters: (day, member, outcome, events).
COUNTERS = [
    (dt.date(2025, 3, 1), "bourg", "stored", 6000),
    (dt.date(2025, 9, 1), "bourg", "stored", 3900),
    (dt.date(2025, 9, 1), "bourg", "decode_failed", 100),
    (dt.date(2025, 9, 1), "bourg", "duplicate", 777),      # not an uplink received
    (dt.date(2024, 12, 31), "bourg", "stored", 5555),     # another year
    (dt.date(2025, 5, 1), "plage", "stored", 5000),
    (dt.date(2025, 6, 1), "cc_aven", "stored", 4000),
    (dt.date(2025, 12, 31), "cc_odet", "stored", 1000),
]


@pytest.fixture(scope="session")
def network_db(platform_db: Settings) -> Settings:
    """The syndicate tests' members applied, and their year of usage written once."""
    from hypervision.db import connect_admin
    from hypervision.tenancy import apply as tenancy
    from hypervision.tenancy.spec import load_dir
    from ingest.decode import Catalogue

    with connect_admin(platform_db) as conn:
        tenancy.apply(conn, load_dir(TENANTS), Catalogue.load(), platform_db,
                      log=lambda _: None)
        _write_usage(conn)
    return platform_db.model_copy(update={"network_dir": NETWORK})


def _uplinks(conn: psycopg.Connection[Any], member: str, dev_eui: str, first: dt.date,
             last: dt.date) -> None:
    conn.execute(
        sql.SQL(
            """
            INSERT INTO {} (time, received_at, dev_eui, deduplication_id, f_cnt, f_port,
                            data, event)
            SELECT d + interval '12 hours', d + interval '12 hours', %(dev)s,
                   gen_random_uuid(), row_number() OVER (), 1, '\\x00'::bytea, '{{}}'::json
            FROM generate_series(%(first)s::timestamptz, %(last)s::timestamptz,
                                 interval '1 day') AS d
            """
        ).format(sql.Identifier(f"tenant_{member}", "uplinks")),
        {"dev": dev_eui, "first": dt.datetime.combine(first, dt.time(), dt.UTC),
         "last": dt.datetime.combine(last, dt.time(), dt.UTC)},
    )


def _write_usage(conn: psycopg.Connection[Any]) -> None:
    for member in MEMBERS:
        conn.execute(sql.SQL("TRUNCATE {}").format(
            sql.Identifier(f"tenant_{member}", "uplinks")))
        for dev_eui, first, last in HEARD[member]:
            _uplinks(conn, member, dev_eui, first, last)
    for member, dev_eui, day in HEARD_OUTSIDE:
        _uplinks(conn, member, dev_eui, day, day)
    conn.execute("DELETE FROM hv.ingest_outcomes WHERE member_slug = ANY(%s)", (list(MEMBERS),))
    for day, member, outcome, events in COUNTERS:
        conn.execute(
            "INSERT INTO hv.ingest_outcomes (day, member_slug, event_type, outcome, events,"
            " bytes) VALUES (%s, %s, 'up', %s, %s, %s)",
            (day, member, outcome, events, events * 60))

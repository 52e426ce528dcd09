"""Usage metering per member and day, so the syndicate can share costs among members.

- uplinks, events and bytes come from the ingestion counters (hv.ingest_outcomes);
- active devices are counted from the member's raw uplinks;
- storage is the size of the member's tables (hypertables, continuous aggregates and
  plain tables), measured once a day by the usage job into hv.storage_usage and live for
  the current day.

Days are UTC days; an uplink counts on the day the network received it (ChirpStack's
`time`), however late it was processed. See platform/hypervision/api/README.md, "Usage metering".
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql

from hypervision import placement
from hypervision.export.formats import csv_safe

ConnectionFor = Callable[[str], AbstractContextManager[psycopg.Connection]]
MAX_DAYS = 400


@dataclass(frozen=True)
class UsageDay:
    day: date
    member: str
    uplinks: int
    events: int
    bytes: int
    active_devices: int
    storage_bytes: int | None


def today() -> date:
    return datetime.now(UTC).date()


def storage_bytes(conn: psycopg.Connection, schema: str) -> int:
    """Bytes used by one member schema: its hypertables with their chunks and indexes,
    the materialisations of its continuous aggregates, and its plain tables."""
    row = conn.execute(
        """
        WITH hyper AS (
            SELECT format('%%I.%%I', hypertable_schema, hypertable_name)::regclass AS rel
            FROM timescaledb_information.hypertables WHERE hypertable_schema = %(s)s
            UNION ALL
            SELECT format('%%I.%%I', materialization_hypertable_schema,
                          materialization_hypertable_name)::regclass
            FROM timescaledb_information.continuous_aggregates WHERE view_schema = %(s)s
        )
        SELECT coalesce((SELECT sum(hypertable_size(rel)) FROM hyper), 0)
             + coalesce((SELECT sum(pg_total_relation_size(c.oid))
                         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE n.nspname = %(s)s AND c.relkind IN ('r', 'm')
                           AND c.oid NOT IN (SELECT rel FROM hyper)), 0)
        """,
        {"s": schema},
    ).fetchone()
    return int(row[0]) if row else 0


def snapshot_storage(servers: placement.Connections, day: date | None = None) -> int:
    """Record every member's storage for `day` (default today), measured on the member's
    database server and recorded on the primary; returns members measured."""
    day = day or today()
    conn = servers.get(None)
    members = conn.execute("SELECT slug, schema_name, server FROM hv.members"
                           " ORDER BY slug").fetchall()
    for slug, schema, server in members:
        size = storage_bytes(servers.get(server), schema)
        conn.execute(
            "INSERT INTO hv.storage_usage (day, member_slug, bytes) VALUES (%s, %s, %s)"
            " ON CONFLICT (day, member_slug) DO UPDATE SET bytes = EXCLUDED.bytes,"
            " measured_at = now()",
            (day, slug, size),
        )
    return len(members)


def _active_devices(conn: psycopg.Connection, schema: str, start: date,
                    end: date) -> dict[date, int]:
    rows = conn.execute(
        sql.SQL(
            "SELECT (time AT TIME ZONE 'UTC')::date AS day, count(DISTINCT dev_eui)"
            " FROM {} WHERE time >= %s AND time < %s GROUP BY day"
        ).format(sql.Identifier(schema, "uplinks")),
        (_midnight(start), _midnight(end + timedelta(days=1))),
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def daily_usage(
    control: psycopg.Connection,
    member_conn: ConnectionFor,
    members: Sequence[tuple[str, str]],
    start: date,
    end: date,
) -> list[UsageDay]:
    """One row per member and day in [start, end] (inclusive), days without traffic
    included. `members` are (slug, schema); `member_conn(slug)` gives a connection that
    may read that member's schema (its reader role in the API)."""
    if end < start:
        raise ValueError("start must not be after end")
    if (end - start).days >= MAX_DAYS:
        raise ValueError(f"at most {MAX_DAYS} days at a time")
    slugs = [m[0] for m in members]
    counters = {
        (r[0], r[1]): (int(r[2]), int(r[3]), int(r[4]))
        for r in control.execute(
            """
            SELECT day, member_slug,
                   coalesce(sum(events) FILTER (WHERE event_type = 'up'
                                                AND outcome IN ('stored', 'decode_failed')), 0),
                   sum(events), sum(bytes)
            FROM hv.ingest_outcomes
            WHERE member_slug = ANY(%s) AND day BETWEEN %s AND %s
            GROUP BY day, member_slug
            """,
            (slugs, start, end),
        ).fetchall()
    }
    stored = {
        (r[0], r[1]): int(r[2])
        for r in control.execute(
            "SELECT day, member_slug, bytes FROM hv.storage_usage"
            " WHERE member_slug = ANY(%s) AND day BETWEEN %s AND %s",
            (slugs, start, end),
        ).fetchall()
    }
    now = today()
    result: list[UsageDay] = []
    for slug, schema in members:
        with member_conn(slug) as conn:
            active = _active_devices(conn, schema, start, end)
            live = storage_bytes(conn, schema) if start <= now <= end else None
        day = start
        while day <= end:
            uplinks, events, size = counters.get((day, slug), (0, 0, 0))
            storage = live if day == now else stored.get((day, slug))
            result.append(UsageDay(day, slug, uplinks, events, size, active.get(day, 0), storage))
            day += timedelta(days=1)
    return result


def to_csv(rows: Iterable[UsageDay]) -> str:
    """CSV with a header line, one row per member and day (for spreadsheets)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f.name for f in fields(UsageDay)])
    for row in rows:
        writer.writerow(["" if v is None else csv_safe(v) for v in asdict(row).values()])
    return out.getvalue()


@dataclass(frozen=True)
class UsageTotal:
    """A member's traffic over a period (a month, or any range), from the counters only:
    cheap enough for a page. Storage is the last nightly measurement in the period."""

    period: str  # "YYYY-MM", or "start..end"
    member: str
    uplinks: int
    events: int
    bytes: int
    storage_bytes: int | None


def totals(control: psycopg.Connection, slugs: Sequence[str], start: date, end: date,
           *, monthly: bool = False) -> list[UsageTotal]:
    """Per member (and per month with `monthly`) in [start, end], from hv.ingest_outcomes
    and hv.storage_usage: no member schema is read, so no live storage or active devices
    (`daily_usage` has those)."""
    period = (sql.SQL("to_char(day, 'YYYY-MM')") if monthly
              else sql.SQL("{}").format(sql.Literal(f"{start}..{end}")))
    rows = control.execute(
        sql.SQL(
            """
            WITH traffic AS (
                SELECT {period} AS period, member_slug,
                       coalesce(sum(events) FILTER (WHERE event_type = 'up'
                                AND outcome IN ('stored', 'decode_failed')), 0) AS uplinks,
                       sum(events) AS events, sum(bytes) AS bytes
                FROM hv.ingest_outcomes
                WHERE member_slug = ANY(%(m)s) AND day BETWEEN %(a)s AND %(b)s
                GROUP BY 1, 2),
            storage AS (
                SELECT DISTINCT ON (1, 2) {period} AS period, member_slug, bytes
                FROM hv.storage_usage
                WHERE member_slug = ANY(%(m)s) AND day BETWEEN %(a)s AND %(b)s
                ORDER BY 1, 2, day DESC)
            SELECT period, member_slug, coalesce(t.uplinks, 0), coalesce(t.events, 0),
                   coalesce(t.bytes, 0), s.bytes
            FROM traffic t FULL JOIN storage s USING (period, member_slug)
            ORDER BY period DESC, member_slug
            """
        ).format(period=period),
        {"m": list(slugs), "a": start, "b": end},
    ).fetchall()
    return [UsageTotal(r[0], r[1], int(r[2]), int(r[3]), int(r[4]),
                       None if r[5] is None else int(r[5])) for r in rows]

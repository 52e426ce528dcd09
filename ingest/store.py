"""Idempotent batched writes into the members' hypertables, and into the shared catalogue.

A batch, whatever members it spans, is written in one transaction:
1. COPY the whole batch into session-private staging tables (three COPYs, each row tagged
   with its member), created once per connection LIKE the templates hv.staging_*;
2. for each member, as that member's writer role (SET LOCAL ROLE), INSERT its uplinks
   ... ON CONFLICT DO NOTHING on (deduplicationId, time), skipping a frame already stored
   under another id with the same DevEUI, fCnt and bytes within the guard window (replays
   of devices without frame-counter checks); RETURNING tells which uplinks are new;
3. in the same statement, insert the measurements of the new uplinks only and update
   their devices' state; then insert device events (join, ack, txack, log, status)
   ON CONFLICT on their digest.
The staging tables empty themselves at commit: a redelivered batch changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg import sql

# Rows are tuples in these orders; the member tables have the same columns (and may have
# more, with defaults).
UPLINK_COLUMNS = (
    "time", "received_at", "dev_eui", "deduplication_id", "f_cnt", "f_port", "dr", "adr",
    "confirmed", "dev_addr", "data", "rssi", "snr", "gateway_count", "gateways", "frequency",
    "spreading_factor", "object", "codec", "codec_version", "decode_error", "decode_notes",
    "event",
)
MEASUREMENT_COLUMNS = ("time", "dev_eui", "metric", "value", "unit", "deduplication_id")
EVENT_COLUMNS = ("time", "dev_eui", "kind", "deduplication_id", "digest", "event")
STAGES = {
    "stage_uplinks": ("hv.staging_uplinks", UPLINK_COLUMNS),
    "stage_measurements": ("hv.staging_measurements", MEASUREMENT_COLUMNS),
    "stage_events": ("hv.staging_events", EVENT_COLUMNS),
}


@dataclass(slots=True)
class MemberBatch:
    """What one batch holds for one member; rows are tuples in the *_COLUMNS order."""

    slug: str
    schema: str
    writer_role: str
    uplinks: list[tuple[Any, ...]] = field(default_factory=list)
    measurements: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass(slots=True)
class MemberResult:
    stored_uplinks: set[uuid.UUID]
    stored_event_digests: set[bytes]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    received_at: datetime
    origin: str
    event_type: str | None
    dev_eui: str | None
    member_slug: str | None
    reason: str
    detail: str
    payload: bytes
    digest: bytes


def _columns(columns: Sequence[str], prefix: str | None = None) -> sql.Composable:
    if prefix is None:
        return sql.SQL(", ").join(map(sql.Identifier, columns))
    return sql.SQL(", ").join(sql.Identifier(prefix, c) for c in columns)


def prepare_staging(conn: psycopg.Connection) -> None:
    """Create this session's staging tables (once per connection). They are private to
    the session; the grant lets the members' writer roles read them after SET ROLE."""
    with conn.transaction():
        for stage, (template, _) in STAGES.items():
            conn.execute(sql.SQL(
                "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DELETE ROWS"
            ).format(sql.Identifier(stage), sql.SQL(template)))
            conn.execute(sql.SQL("GRANT SELECT ON {} TO PUBLIC").format(sql.Identifier(stage)))


def _copy(cur: psycopg.Cursor, stage: str, rows: Iterable[tuple[Any, ...]]) -> None:
    columns = ("member_slug", *STAGES[stage][1])
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(stage),
                                                          _columns(columns))
    with cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def stage_batch(conn: psycopg.Connection, members: Sequence[MemberBatch]) -> None:
    """COPY every member's rows into the staging tables. Inside the caller's transaction."""
    with conn.cursor() as cur:
        if any(m.uplinks for m in members):
            _copy(cur, "stage_uplinks", ((m.slug, *r) for m in members for r in m.uplinks))
        if any(m.measurements for m in members):
            _copy(cur, "stage_measurements",
                  ((m.slug, *r) for m in members for r in m.measurements))
        if any(m.events for m in members):
            _copy(cur, "stage_events", ((m.slug, *r) for m in members for r in m.events))


# One statement: the member's new uplinks (none already stored under another id within
# the guard window), then their measurements and the state of their devices, joined on
# what the uplinks insert returned. Format: s (the member's schema) and the column lists.
_UPLINKS_SQL = """
    WITH new AS (
        INSERT INTO {s}.uplinks ({cols})
        SELECT {st_cols} FROM stage_uplinks st
        WHERE st.member_slug = %(member)s AND NOT EXISTS (
            SELECT 1 FROM {s}.uplinks u
            WHERE u.dev_eui = st.dev_eui
              AND u.time BETWEEN st.time - make_interval(secs => %(w)s)
                             AND st.time + make_interval(secs => %(w)s)
              AND u.f_cnt = st.f_cnt AND u.data = st.data
              AND u.deduplication_id <> st.deduplication_id)
        ON CONFLICT DO NOTHING
        RETURNING deduplication_id, dev_eui, time, f_cnt, rssi, snr, dr,
                  decode_error, decode_notes
    ), measured AS (
        INSERT INTO {s}.measurements ({m_cols})
        SELECT {sm_cols} FROM stage_measurements m
        JOIN new USING (deduplication_id)
        WHERE m.member_slug = %(member)s
        ON CONFLICT DO NOTHING
    ), agg AS (
        SELECT dev_eui, count(*) AS n,
               count(*) FILTER (WHERE decode_error IS NOT NULL) AS errors,
               count(*) FILTER (WHERE decode_notes IS NOT NULL) AS warned,
               (array_agg(decode_error ORDER BY time DESC)
                   FILTER (WHERE decode_error IS NOT NULL))[1] AS last_error,
               max(time) FILTER (WHERE decode_error IS NOT NULL) AS error_at
        FROM new GROUP BY dev_eui
    ), state AS (
        INSERT INTO {s}.device_state AS d
            (dev_eui, last_seen, last_f_cnt, last_rssi, last_snr, last_dr,
             uplinks_seen, decode_errors, decode_warnings, last_decode_error,
             last_decode_error_at, updated_at)
        SELECT DISTINCT ON (l.dev_eui) l.dev_eui, l.time, l.f_cnt, l.rssi,
               l.snr, l.dr, a.n, a.errors, a.warned, a.last_error, a.error_at,
               now()
        FROM new l JOIN agg a USING (dev_eui)
        ORDER BY l.dev_eui, l.time DESC
        ON CONFLICT (dev_eui) DO UPDATE SET
            uplinks_seen = d.uplinks_seen + EXCLUDED.uplinks_seen,
            decode_errors = d.decode_errors + EXCLUDED.decode_errors,
            decode_warnings = d.decode_warnings + EXCLUDED.decode_warnings,
            last_decode_error = CASE
                WHEN EXCLUDED.last_decode_error_at IS NOT NULL
                AND (d.last_decode_error_at IS NULL
                     OR EXCLUDED.last_decode_error_at >= d.last_decode_error_at)
                THEN EXCLUDED.last_decode_error ELSE d.last_decode_error END,
            last_decode_error_at = GREATEST(d.last_decode_error_at,
                                            EXCLUDED.last_decode_error_at),
            updated_at = now(),
            last_seen = GREATEST(d.last_seen, EXCLUDED.last_seen),
            last_f_cnt = CASE WHEN d.last_seen IS NULL
                OR EXCLUDED.last_seen >= d.last_seen
                THEN EXCLUDED.last_f_cnt ELSE d.last_f_cnt END,
            last_rssi = CASE WHEN d.last_seen IS NULL
                OR EXCLUDED.last_seen >= d.last_seen
                THEN EXCLUDED.last_rssi ELSE d.last_rssi END,
            last_snr = CASE WHEN d.last_seen IS NULL
                OR EXCLUDED.last_seen >= d.last_seen
                THEN EXCLUDED.last_snr ELSE d.last_snr END,
            last_dr = CASE WHEN d.last_seen IS NULL
                OR EXCLUDED.last_seen >= d.last_seen
                THEN EXCLUDED.last_dr ELSE d.last_dr END
    )
    SELECT deduplication_id FROM new
"""

# One statement: the member's new device events, then the state of their devices (the
# latest event, and the latest status event's battery and margin).
_EVENTS_SQL = """
    WITH new AS (
        INSERT INTO {s}.device_events ({cols})
        SELECT {e_cols} FROM stage_events e WHERE e.member_slug = %(member)s
        ON CONFLICT DO NOTHING RETURNING *
    ), latest AS (
        SELECT DISTINCT ON (dev_eui) dev_eui, kind, time, event FROM new
        ORDER BY dev_eui, time DESC
    ), status AS (
        SELECT DISTINCT ON (dev_eui) dev_eui, time, event FROM new
        WHERE kind = 'status' ORDER BY dev_eui, time DESC
    ), touched AS (
        INSERT INTO {s}.device_state AS d
            (dev_eui, last_event, last_event_at, battery_level,
             external_power, margin, status_at, updated_at)
        SELECT l.dev_eui, l.kind, l.time,
               CASE WHEN (st.event->>'batteryLevelUnavailable')::boolean
                    THEN NULL ELSE (st.event->>'batteryLevel')::real END,
               (st.event->>'externalPowerSource')::boolean,
               (st.event->>'margin')::integer, st.time, now()
        FROM latest l LEFT JOIN status st USING (dev_eui)
        ON CONFLICT (dev_eui) DO UPDATE SET
            updated_at = now(),
            last_event = CASE WHEN d.last_event_at IS NULL
                OR EXCLUDED.last_event_at >= d.last_event_at
                THEN EXCLUDED.last_event ELSE d.last_event END,
            last_event_at = GREATEST(d.last_event_at, EXCLUDED.last_event_at),
            battery_level = CASE WHEN EXCLUDED.status_at IS NOT NULL AND
                (d.status_at IS NULL OR EXCLUDED.status_at >= d.status_at)
                THEN EXCLUDED.battery_level ELSE d.battery_level END,
            external_power = CASE WHEN EXCLUDED.status_at IS NOT NULL AND
                (d.status_at IS NULL OR EXCLUDED.status_at >= d.status_at)
                THEN EXCLUDED.external_power ELSE d.external_power END,
            margin = CASE WHEN EXCLUDED.status_at IS NOT NULL AND
                (d.status_at IS NULL OR EXCLUDED.status_at >= d.status_at)
                THEN EXCLUDED.margin ELSE d.margin END,
            status_at = GREATEST(d.status_at, EXCLUDED.status_at)
    )
    SELECT digest FROM new
"""


def write_member(conn: psycopg.Connection, batch: MemberBatch, guard_window_s: int) -> MemberResult:
    """Move one member's staged rows into its tables, as its writer role. Must run inside
    the caller's transaction, after stage_batch()."""
    s = sql.Identifier(batch.schema)
    params = {"member": batch.slug, "w": guard_window_s}
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(batch.writer_role)))
        _lock_devices(cur, s, batch)
        stored = _insert_uplinks(cur, s, params) if batch.uplinks else set()
        digests = _insert_events(cur, s, params) if batch.events else set()
        cur.execute("RESET ROLE")
    return MemberResult(stored, digests)


def _lock_devices(cur: psycopg.Cursor[Any], s: sql.Identifier, batch: MemberBatch) -> None:
    """Two workers' batches may hold the same devices, one as uplinks and the other as
    status events, which update device_state in two statements: lock the batch's device
    rows first, in one order, so that they wait for each other instead of deadlocking (a
    deadlock costs a retry of the whole batch)."""
    devices = sorted({row[2] for row in batch.uplinks} | {row[1] for row in batch.events})
    if devices:
        cur.execute(
            sql.SQL("SELECT FROM {s}.device_state WHERE dev_eui = ANY(%(devices)s)"
                    " ORDER BY dev_eui FOR UPDATE").format(s=s),
            {"devices": devices},
        )


def _insert_uplinks(cur: psycopg.Cursor[Any], s: sql.Identifier,
                    params: dict[str, Any]) -> set[uuid.UUID]:
    """The staged uplinks, measurements and device state; returns the new uplinks' ids."""
    cur.execute(
        sql.SQL(_UPLINKS_SQL).format(
            s=s, cols=_columns(UPLINK_COLUMNS), st_cols=_columns(UPLINK_COLUMNS, "st"),
            m_cols=_columns(MEASUREMENT_COLUMNS), sm_cols=_columns(MEASUREMENT_COLUMNS, "m")),
        params,
    )
    return {row[0] for row in cur.fetchall()}


def _insert_events(cur: psycopg.Cursor[Any], s: sql.Identifier,
                   params: dict[str, Any]) -> set[bytes]:
    """The staged device events and device state; returns the new events' digests."""
    cur.execute(
        sql.SQL(_EVENTS_SQL).format(
            s=s, cols=_columns(EVENT_COLUMNS), e_cols=_columns(EVENT_COLUMNS, "e")),
        params,
    )
    return {bytes(row[0]) for row in cur.fetchall()}


@contextmanager
def acting_as(conn: psycopg.Connection, role: str) -> Iterator[None]:
    """Run the block as `role` (a member's writer), inside the caller's transaction."""
    conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
    try:
        yield
    finally:
        conn.execute("RESET ROLE")


def write_dead_letters(conn: psycopg.Connection, letters: Sequence[DeadLetter]) -> None:
    """Keep what could not be processed, once per distinct message."""
    if not letters:
        return
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO hv.dead_letters (received_at, origin, event_type, dev_eui, member_slug,
                                         reason, detail, payload, digest)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (digest) DO NOTHING
            """,
            [
                (d.received_at, d.origin, d.event_type, d.dev_eui, d.member_slug, d.reason,
                 d.detail, d.payload, d.digest)
                for d in letters
            ],
        )


def count_outcomes(
    conn: psycopg.Connection, counts: dict[tuple[date, str, str, str], tuple[int, int]]
) -> None:
    """Add (events, bytes) per (day, member, event type, outcome). Sorted keys keep two
    workers from locking the same counter rows in opposite orders."""
    if not counts:
        return
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO hv.ingest_outcomes AS o
                (day, member_slug, event_type, outcome, events, bytes)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (day, member_slug, event_type, outcome) DO UPDATE
            SET events = o.events + EXCLUDED.events, bytes = o.bytes + EXCLUDED.bytes
            """,
            [(*key, *counts[key]) for key in sorted(counts)],
        )

"""Idempotent batched writes into a member's hypertables, and into the shared catalogue.

For each member in a batch, as that member's writer role (SET LOCAL ROLE):
1. COPY the batch into temporary staging tables (one round trip per table);
2. INSERT the uplinks ... ON CONFLICT DO NOTHING on (deduplicationId, time), skipping a
   frame already stored under another id with the same DevEUI, fCnt and bytes within the
   guard window (replays of devices without frame-counter checks); RETURNING tells which
   uplinks are new;
3. insert the measurements of the new uplinks only, then update device state;
4. insert device events (join, ack, txack, log, status) ON CONFLICT on their digest.
Everything of one batch is one transaction: a redelivered batch changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import psycopg
from psycopg import sql

UPLINK_COLUMNS = (
    "time", "received_at", "dev_eui", "deduplication_id", "f_cnt", "f_port", "dr", "adr",
    "confirmed", "dev_addr", "data", "rssi", "snr", "gateway_count", "rx_info", "tx_info",
    "object", "codec", "codec_version", "decode_error", "decode_notes", "event",
)
MEASUREMENT_COLUMNS = ("time", "dev_eui", "metric", "value", "unit", "deduplication_id")
EVENT_COLUMNS = ("time", "dev_eui", "kind", "deduplication_id", "digest", "event")


@dataclass(slots=True)
class MemberBatch:
    """What one batch holds for one member; rows are tuples in the *_COLUMNS order."""

    schema: str
    writer_role: str
    uplinks: list[tuple] = field(default_factory=list)
    measurements: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)


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


def _copy(cur: psycopg.Cursor, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _stage(cur: psycopg.Cursor, schema: str, table: str, stage: str) -> None:
    cur.execute(
        sql.SQL("CREATE TEMP TABLE {} (LIKE {}.{}) ON COMMIT DROP").format(
            sql.Identifier(stage), sql.Identifier(schema), sql.Identifier(table)
        )
    )


def write_member(conn: psycopg.Connection, batch: MemberBatch, guard_window_s: int) -> MemberResult:
    """Write one member's part of a batch. Must run inside the caller's transaction."""
    s = sql.Identifier(batch.schema)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(batch.writer_role)))
        stored: set[uuid.UUID] = set()
        if batch.uplinks:
            _stage(cur, batch.schema, "uplinks", "stage_uplinks")
            _copy(cur, "stage_uplinks", UPLINK_COLUMNS, batch.uplinks)
            cur.execute(
                sql.SQL(
                    """
                    INSERT INTO {s}.uplinks
                    SELECT st.* FROM stage_uplinks st
                    WHERE NOT EXISTS (
                        SELECT 1 FROM {s}.uplinks u
                        WHERE u.dev_eui = st.dev_eui AND u.f_cnt = st.f_cnt AND u.data = st.data
                          AND u.time BETWEEN st.time - make_interval(secs => %(w)s)
                                         AND st.time + make_interval(secs => %(w)s)
                          AND u.deduplication_id <> st.deduplication_id)
                    ON CONFLICT DO NOTHING
                    RETURNING deduplication_id
                    """
                ).format(s=s),
                {"w": guard_window_s},
            )
            stored = {row[0] for row in cur.fetchall()}
        if stored and batch.measurements:
            _stage(cur, batch.schema, "measurements", "stage_measurements")
            _copy(cur, "stage_measurements", MEASUREMENT_COLUMNS, batch.measurements)
            cur.execute(
                sql.SQL(
                    """
                    INSERT INTO {s}.measurements
                    SELECT m.* FROM stage_measurements m
                    WHERE m.deduplication_id = ANY(%(ids)s)
                    ON CONFLICT DO NOTHING
                    """
                ).format(s=s),
                {"ids": list(stored)},
            )
        if stored:
            cur.execute(
                sql.SQL(
                    """
                    INSERT INTO {s}.device_state AS d
                        (dev_eui, last_seen, last_f_cnt, last_rssi, last_snr, last_dr,
                         uplinks_seen, updated_at)
                    SELECT DISTINCT ON (dev_eui) dev_eui, time, f_cnt, rssi, snr, dr,
                           count(*) OVER (PARTITION BY dev_eui), now()
                    FROM stage_uplinks WHERE deduplication_id = ANY(%(ids)s)
                    ORDER BY dev_eui, time DESC
                    ON CONFLICT (dev_eui) DO UPDATE SET
                        uplinks_seen = d.uplinks_seen + EXCLUDED.uplinks_seen,
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
                    """
                ).format(s=s),
                {"ids": list(stored)},
            )
        if batch.uplinks:
            cur.execute("DROP TABLE stage_uplinks")
            if stored and batch.measurements:
                cur.execute("DROP TABLE stage_measurements")

        digests: set[bytes] = set()
        if batch.events:
            _stage(cur, batch.schema, "device_events", "stage_events")
            _copy(cur, "stage_events", EVENT_COLUMNS, batch.events)
            cur.execute(
                sql.SQL(
                    """
                    WITH new AS (
                        INSERT INTO {s}.device_events SELECT * FROM stage_events
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
                ).format(s=s)
            )
            digests = {bytes(row[0]) for row in cur.fetchall()}
            cur.execute("DROP TABLE stage_events")
        cur.execute("RESET ROLE")
    return MemberResult(stored, digests)


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

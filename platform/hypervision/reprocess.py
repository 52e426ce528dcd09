"""Decode a member's stored raw uplinks again, after a codec or mapping change.

1. A run is recorded in hv.reprocess_runs with its filters (device, model, time range).
2. Uplinks are read page by page in (time, deduplicationId) order — keyset pagination, so
   the run's position is two values, saved after each page: an interrupted run resumes
   where it stopped (`--resume RUN_ID`).
3. Each page is decoded in one batch with the current catalogue, then, in one transaction
   as the member's owner role, the page's measurements are replaced (deleted, then
   inserted) and the uplinks' codec, version, error and notes updated. Replacing rather
   than adding makes a run idempotent: running it twice leaves the same rows.
4. The start and the end of a run are written to the audit trail.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from hypervision import audit
from hypervision.roles import member_role
from ingest.decode import Catalogue, Decoded, UplinkToDecode

Progress = Callable[[int, int], None]  # (done, total)


class ReprocessError(ValueError):
    """Bad filters, unknown member or run."""


@dataclass(frozen=True)
class Filters:
    dev_eui: str | None = None
    model: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {"dev_eui": self.dev_eui, "model": self.model,
                "start": self.start.isoformat() if self.start else None,
                "end": self.end.isoformat() if self.end else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Filters:
        return cls(data.get("dev_eui"), data.get("model"),
                   datetime.fromisoformat(data["start"]) if data.get("start") else None,
                   datetime.fromisoformat(data["end"]) if data.get("end") else None)


@dataclass
class Run:
    id: int
    member: str
    filters: Filters
    total: int
    done: int
    status: str


def _devices(conn: psycopg.Connection, member: str, filters: Filters) -> dict[str, tuple]:
    rows = conn.execute(
        """
        SELECT dev_eui, model_id, variables FROM hv.devices
        WHERE member_slug = %s AND (%s::text IS NULL OR dev_eui = %s)
          AND (%s::text IS NULL OR model_id = %s)
        """,
        (member, filters.dev_eui, filters.dev_eui, filters.model, filters.model),
    ).fetchall()
    return {r[0]: (r[1], {str(k): str(v) for k, v in (r[2] or {}).items()}) for r in rows}


def _where(filters: Filters) -> sql.Composable:
    return sql.SQL(
        "u.dev_eui = ANY(%(devices)s)"
        " AND (%(start)s::timestamptz IS NULL OR u.time >= %(start)s)"
        " AND (%(end)s::timestamptz IS NULL OR u.time < %(end)s)"
    )


def start(conn: psycopg.Connection, member: str, filters: Filters, actor: str) -> Run:
    """Record a new run and count what it will go through."""
    schema = conn.execute("SELECT schema_name FROM hv.members WHERE slug = %s",
                          (member,)).fetchone()
    if schema is None:
        raise ReprocessError(f"unknown member {member!r}")
    devices = _devices(conn, member, filters)
    if not devices:
        raise ReprocessError(f"member {member} has no device matching {filters.as_json()}")
    counted = conn.execute(
        sql.SQL("SELECT count(*) FROM {}.uplinks u WHERE ").format(sql.Identifier(schema[0]))
        + _where(filters),
        {"devices": list(devices), "start": filters.start, "end": filters.end},
    ).fetchone()
    assert counted is not None  # count(*) returns one row
    total = counted[0]
    with conn.transaction():
        inserted = conn.execute(
            "INSERT INTO hv.reprocess_runs (member_slug, filters, actor, total)"
            " VALUES (%s, %s, %s, %s) RETURNING id",
            (member, Jsonb(filters.as_json()), actor, total),
        ).fetchone()
        assert inserted is not None  # INSERT … RETURNING returns its row
        run_id = inserted[0]
        audit.record(conn, actor=actor, member=member, action="reprocess.start",
                     target=f"run:{run_id}", params=filters.as_json(), rows=total)
    return Run(run_id, member, filters, total, 0, "running")


def load_run(conn: psycopg.Connection, run_id: int) -> Run:
    row = conn.execute(
        "SELECT id, member_slug, filters, total, done, status FROM hv.reprocess_runs"
        " WHERE id = %s", (run_id,),
    ).fetchone()
    if row is None:
        raise ReprocessError(f"no reprocessing run {run_id}")
    return Run(row[0], row[1], Filters.from_json(row[2]), row[3], row[4], row[5])


def _replace(conn: psycopg.Connection, schema: str, owner: str,
             page: Sequence[tuple], decoded: Sequence[Decoded]) -> None:
    s = sql.Identifier(schema)
    ids = [row[1] for row in page]
    readings: dict[tuple[str, str, datetime], tuple] = {}
    for (time, dedup, dev_eui, *_), result in zip(page, decoded, strict=True):
        for r in result.readings:
            at = r.time or time
            readings[(dev_eui, r.metric, at)] = (at, dev_eui, r.metric, r.value, r.unit, dedup)
    columns: list[Sequence[Any]] = (list(zip(*readings.values(), strict=True)) if readings
                                    else [[]] * 6)
    conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner)))
    conn.execute(sql.SQL("DELETE FROM {}.measurements WHERE deduplication_id = ANY(%s)")
                 .format(s), (ids,))
    conn.execute(
        sql.SQL(
            """
            INSERT INTO {}.measurements (time, dev_eui, metric, value, unit, deduplication_id)
            SELECT * FROM unnest(%s::timestamptz[], %s::text[], %s::text[],
                                 %s::float8[], %s::text[], %s::uuid[])
            ON CONFLICT (dev_eui, metric, time) DO UPDATE SET value = EXCLUDED.value,
                unit = EXCLUDED.unit, deduplication_id = EXCLUDED.deduplication_id
            """
        ).format(s),
        [list(c) for c in columns],
    )
    notes = [
        Jsonb({"warnings": d.warnings, "disagreement": d.disagreement})
        if d.warnings or d.disagreement else None
        for d in decoded
    ]
    conn.execute(
        sql.SQL(
            """
            UPDATE {}.uplinks u SET codec = v.codec, codec_version = v.version,
                decode_error = v.error, decode_notes = v.notes
            FROM unnest(%s::uuid[], %s::timestamptz[], %s::text[], %s::text[], %s::text[],
                        %s::jsonb[]) AS v(id, time, codec, version, error, notes)
            WHERE u.deduplication_id = v.id AND u.time = v.time
            """
        ).format(s),
        (ids, [row[0] for row in page], [d.codec for d in decoded],
         [d.codec_version for d in decoded], [d.error for d in decoded], notes),
    )
    conn.execute("RESET ROLE")


def run(conn: psycopg.Connection, job: Run, catalogue: Catalogue, actor: str,
        page_size: int = 1000, progress: Progress | None = None,
        max_pages: int | None = None) -> Run:
    """Go through the run's uplinks from where it stopped. `conn` is a superuser
    connection in autocommit mode. `max_pages` stops early (the run stays resumable)."""
    if job.status == "done":
        return job
    found = conn.execute("SELECT schema_name FROM hv.members WHERE slug = %s",
                         (job.member,)).fetchone()
    if found is None:
        raise ReprocessError(f"unknown member {job.member!r}")
    schema = found[0]
    owner = member_role(job.member, "owner")
    devices = _devices(conn, job.member, job.filters)
    position = conn.execute("SELECT last_time, last_id FROM hv.reprocess_runs WHERE id = %s",
                            (job.id,)).fetchone()
    pages = 0
    query = (
        sql.SQL("SELECT u.time, u.deduplication_id, u.dev_eui, u.f_port, u.data, u.object"
                " FROM {}.uplinks u WHERE ").format(sql.Identifier(schema))
        + _where(job.filters)
        + sql.SQL(" AND (%(last_time)s::timestamptz IS NULL"
                  " OR (u.time, u.deduplication_id) > (%(last_time)s, %(last_id)s::uuid))"
                  " ORDER BY u.time, u.deduplication_id LIMIT %(limit)s")
    )
    if position is None:
        raise ReprocessError(f"no reprocessing run {job.id}")
    last_time, last_id = position
    # The loop ends with `break` when no uplink is left (then the run is done), or by its
    # condition when max_pages is reached (then `else` returns a run still resumable).
    while max_pages is None or pages < max_pages:
        page = conn.execute(query, {
            "devices": list(devices), "start": job.filters.start, "end": job.filters.end,
            "last_time": last_time, "last_id": last_id, "limit": page_size,
        }).fetchall()
        if not page:
            break
        decoded = catalogue.decode_batch([
            UplinkToDecode(model_id=devices[dev][0], f_port=f_port, data=bytes(data),
                           object=obj, recv_time=time, variables=devices[dev][1])
            for time, _, dev, f_port, data, obj in page
        ])
        last_time, last_id = page[-1][0], page[-1][1]
        with conn.transaction():
            _replace(conn, schema, owner, page, decoded)
            conn.execute(
                "UPDATE hv.reprocess_runs SET last_time = %s, last_id = %s, done = done + %s"
                " WHERE id = %s", (last_time, last_id, len(page), job.id),
            )
        job.done += len(page)
        pages += 1
        if progress is not None:
            progress(job.done, job.total)
    else:
        return job  # stopped early on purpose: still running, resumable
    with conn.transaction():
        conn.execute("UPDATE hv.reprocess_runs SET status = 'done', finished_at = now()"
                     " WHERE id = %s", (job.id,))
        audit.record(conn, actor=actor, member=job.member, action="reprocess",
                     target=f"run:{job.id}", params=job.filters.as_json(), rows=job.done)
    job.status = "done"
    return job


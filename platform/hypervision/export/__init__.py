"""Exports of a member's data: CSV, Parquet and JSON Lines, streamed in constant memory,
incremental from a cursor, optionally pseudonymised. See export/README.md.

The API (`hypervision.api`) and the CLI (`hypervision export`) both call `open_export`
with a connection as the member's READER role, so the database itself keeps an export
inside its member's schema:

    with connect_as(settings, f"{slug}_reader") as conn:
        stream = open_export(conn, f"tenant_{slug}", "measurements", "csv",
                             ExportFilter(start=..., end=None, cursor=previous_cursor))
        for chunk in stream.chunks:     # bytes, a few hundred KiB at most (Parquet: one
            out.write(chunk)            # row group)
        save(stream.next_cursor)        # known before the first chunk
        rows = stream.rows()            # once chunks is exhausted

How it streams: one REPEATABLE READ, READ ONLY transaction; the snapshot it reads through
becomes `next_cursor`. An export that is not pseudonymised is one `COPY (SELECT …) TO
STDOUT` whose output is the file's text, read through psycopg's Copy object and joined
into chunks of CHUNK_BYTES (export/copying.py; Parquet: pyarrow reads COPY's CSV). A
pseudonymised one reads rows through a server-side cursor in batches of FETCH_ROWS and
encodes them in Python (export/formats.py). If the caller stops before the end, it calls
`stream.close()` (or uses the stream as a context manager) to end the transaction; a
COPY under way is then cancelled by psycopg, and the connection is ready for the next.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from hypervision import dump
from hypervision.export import copying, formats, query
from hypervision.export import cursor as cursors
from hypervision.pseudonym import Pseudonymiser
from ingest.decode.metrics import METRICS

__all__ = [
    "FORMATS",
    "KINDS",
    "ExportError",
    "ExportFilter",
    "ExportStream",
    "device_names",
    "open_export",
]

Kind = Literal["measurements", "uplinks"]
Format = Literal["csv", "parquet", "jsonl"]
KINDS: tuple[str, ...] = ("measurements", "uplinks")
FORMATS: tuple[str, ...] = ("csv", "parquet", "jsonl")
EXTENSIONS = {"csv": ".csv", "parquet": ".parquet", "jsonl": ".jsonl"}
FETCH_ROWS = 10_000
_SCHEMA = re.compile(r"^tenant_[a-z][a-z0-9_]{1,39}$")
_DEV_EUI = re.compile(r"^[0-9a-f]{16}$")
# Server-side cursor names, unique within the process (two exports may share a connection).
_CURSOR_IDS = itertools.count(1)


class ExportError(ValueError):
    """The export cannot run as asked: a bad filter or cursor. The message says why and
    is safe to show to the caller."""


@dataclass(frozen=True)
class ExportFilter:
    """What to export. Times are a half-open range [start, end); naive times are UTC.
    `devices` are DevEUIs, `metrics` canonical metric names (measurements only); `cursor`
    is the `next_cursor` of an earlier export, for only what was stored since."""

    start: datetime | None = None
    end: datetime | None = None
    devices: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    cursor: str | None = None


@dataclass
class ExportStream:
    """An export under way. `rows()` counts the rows encoded so far: the total once
    `chunks` is exhausted. `total` is the number of rows to come, when asked for."""

    chunks: Iterator[bytes]
    media_type: str
    next_cursor: str
    rows: Callable[[], int]
    total: int | None = None
    _close: Callable[[], None] = field(default=lambda: None, repr=False)

    def close(self) -> None:
        """End the export's transaction early (idempotent)."""
        self._close()

    def __enter__(self) -> ExportStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _utc(value: datetime | None, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ExportError(f"{what} must be a date and time")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _devices(values: tuple[str, ...]) -> tuple[str, ...]:
    result = []
    for value in values:
        eui = str(value).strip().lower().replace(":", "").replace("-", "")
        if not _DEV_EUI.match(eui):
            raise ExportError(f"device {value!r} is not a DevEUI (16 hexadecimal digits)")
        result.append(eui)
    return tuple(dict.fromkeys(result))


def _metrics(values: tuple[str, ...], kind: str) -> tuple[str, ...]:
    if values and kind != "measurements":
        raise ExportError("a metrics filter applies to measurements only")
    unknown = sorted(set(values) - set(METRICS))
    if unknown:
        raise ExportError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    return tuple(dict.fromkeys(values))


def device_names(conn: psycopg.Connection, schema: str) -> dict[str, str]:
    """Each device's name as ChirpStack last sent it (`deviceInfo.deviceName` of its latest
    uplink): what a member's reader role can see. Callers that hold the member's
    declaration pass its names to `open_export` instead."""
    rows = conn.execute(
        sql.SQL(
            "SELECT s.dev_eui, (SELECT u.event -> 'deviceInfo' ->> 'deviceName'"
            " FROM {uplinks} u WHERE u.dev_eui = s.dev_eui ORDER BY u.time DESC LIMIT 1)"
            " FROM {state} s"
        ).format(uplinks=sql.Identifier(schema, "uplinks"),
                 state=sql.Identifier(schema, "device_state"))
    ).fetchall()
    return {eui: name for eui, name in rows if name}


def _valid(given: cursors.Cursor, instance: dump.Instance,
           snapshot: cursors.Snapshot) -> cursors.Snapshot:
    """The cursor's snapshot, if its positions mean something in this copy of the schema;
    ExportError saying why and what to do otherwise."""
    again = ("run a full export (or one with a start just before your last export) to get"
             " a new cursor")
    moved = instance.arrived == "move"
    if (given.instance is None and moved) or given.instance not in (None, instance.id):
        when = f"{instance.since:%Y-%m-%d %H:%M} UTC"
        reason = (f"the member's data was moved to this database server on {when}, and"
                  " cursors issued before refer to the server it left" if moved else
                  f"it was issued on another copy of the member's data (this one dates"
                  f" from {when})")
        raise ExportError(f"bad cursor: {reason}; {again}")
    if given.snapshot.xmax > snapshot.xmax:
        raise ExportError(f"bad cursor: it is ahead of this database (issued by another"
                          f" instance?); {again}")
    return given.snapshot


def _begin(conn: psycopg.Connection, stack: ExitStack) -> None:
    """Enter a REPEATABLE READ transaction: the snapshot that becomes the next cursor
    must be the very one the rows are read through."""
    status = conn.info.transaction_status
    if status == TransactionStatus.IDLE:
        stack.enter_context(conn.transaction())
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        # Times then load as UTC datetimes, which format without a conversion.
        conn.execute("SET LOCAL TimeZone = 'UTC'")
        # What the server's text output depends on (export/copying.py): ISO dates,
        # floats in their shortest exact form; no JIT compiling for expressions that are
        # function calls anyway.
        conn.execute("SELECT set_config('DateStyle', 'ISO', true),"
                     " set_config('extra_float_digits', '1', true),"
                     " set_config('jit', 'off', true)")
        return
    if status == TransactionStatus.INTRANS:
        row = conn.execute("SHOW transaction_isolation").fetchone()
        if row and row[0] in ("repeatable read", "serializable"):
            stack.enter_context(conn.transaction())
            return
    raise RuntimeError(
        "open_export needs a connection outside any transaction, or inside a REPEATABLE"
        " READ one: its cursor must be the snapshot the rows are read through"
    )


def open_export(
    conn: psycopg.Connection,
    schema: str,
    kind: Kind,
    fmt: Format,
    flt: ExportFilter,
    pseudonymiser: Pseudonymiser | None = None,
    *,
    names: Mapping[str, str] | None = None,
    with_total: bool = False,
    server_side: bool = True,
) -> ExportStream:
    """Start an export; raises ExportError for a bad filter or cursor (before any byte).

    `names` maps DevEUIs to device names (default: `device_names`); `with_total` counts
    the rows first (one more scan, for progress bars). `server_side=False` encodes every
    export in Python, as pseudonymised ones are (the tests compare both).
    """
    if not _SCHEMA.match(schema):
        raise ValueError(f"not a member schema: {schema!r}")
    if kind not in KINDS:
        raise ExportError(f"unknown export kind {kind!r}; expected one of {', '.join(KINDS)}")
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    start, end = _utc(flt.start, "start"), _utc(flt.end, "end")
    if start is not None and end is not None and start >= end:
        raise ExportError("start must be before end")
    devices = _devices(tuple(flt.devices))
    metrics = _metrics(tuple(flt.metrics), kind)
    given = None
    if flt.cursor:
        try:
            given = cursors.decode(flt.cursor)
        except cursors.CursorError as exc:
            raise ExportError(f"bad cursor: {exc}") from None

    stack = ExitStack()
    try:
        # COPY's texts need the settings _begin makes in a transaction of its own.
        by_copy = server_side and conn.info.transaction_status == TransactionStatus.IDLE
        _begin(conn, stack)
        row = conn.execute("SELECT pg_current_snapshot()::text").fetchone()
        assert row is not None
        snapshot = cursors.Snapshot.parse(row[0])
        instance = dump.schema_instance(conn, schema)
        since = None if given is None else _valid(given, instance, snapshot)
        if names is None and (kind == "measurements" or fmt != "jsonl"):
            names = device_names(conn, schema)
        p = query.plan(schema, kind, fmt, start, end, devices, metrics, since, names or {},
                       pseudonymiser)
        total = None
        if with_total:
            count = conn.execute(p.count, p.params).fetchone()
            total = int(count[0]) if count else 0
        copy = p.copy if by_copy else None
        cur: psycopg.Cursor[Any] | psycopg.ServerCursor[Any]
        if copy is None:
            cur = conn.cursor(name=f"hv_export_{next(_CURSOR_IDS)}", binary=True)
            cur.execute(p.query, p.params)
        else:
            cur = conn.cursor()
    except BaseException:
        stack.__exit__(*sys.exc_info())
        raise

    counter = [0]
    closed = [False]

    def finish(exc: tuple[Any, Any, Any] = (None, None, None)) -> None:
        if closed[0]:
            return
        closed[0] = True
        try:
            if not cur.closed and conn.info.transaction_status == TransactionStatus.INTRANS:
                cur.close()
        finally:
            stack.__exit__(*exc)

    def encoded() -> Iterator[bytes]:
        enc = formats.encoder(fmt, p.columns, raw_lines=p.raw_lines)
        shape = p.shape
        while batch := cur.fetchmany(FETCH_ROWS):
            rows = [shape(r) for r in batch]
            counter[0] += len(rows)
            yield from enc.feed(rows)
        yield from enc.finish()

    def copied(statement: sql.Composed) -> Iterator[bytes]:
        # psycopg's Copy is in charge: its block holds the connection's lock while the
        # COPY runs and, left early (close() throws GeneratorExit in here), cancels the
        # COPY and reads what the server still sends.
        with cur.copy(statement, p.params) as copy:
            rows = iter(copy)
            if fmt == "parquet":
                def add(n: int) -> None:
                    counter[0] += n

                yield from copying.parquet_from_csv(
                    copying.joined(rows, formats.CHUNK_BYTES), p.columns, add)
            else:
                if p.raw_lines:
                    rows = copying.event_lines(rows)
                for chunk in copying.joined(rows, formats.CHUNK_BYTES):
                    counter[0] += chunk.count(b"\n")
                    yield chunk
                if fmt == "csv":
                    counter[0] -= 1  # the header line
        if cur.rowcount >= 0:
            counter[0] = cur.rowcount

    def chunks() -> Generator[bytes, None, None]:
        try:
            yield from (encoded() if copy is None else copied(copy))
        except BaseException:
            finish(sys.exc_info())
            raise
        finish()

    generator: Generator[bytes, None, None] = chunks()

    def close() -> None:
        # First the generator, which leaves a COPY block it is suspended in (the block
        # holds the connection's lock, which ending the transaction needs), then the
        # transaction if the generator never started.
        generator.close()
        finish()

    return ExportStream(
        chunks=generator,
        media_type=formats.MEDIA_TYPES[fmt],
        next_cursor=cursors.encode(snapshot, instance.id),
        rows=lambda: counter[0],
        total=total,
        _close=close,
    )

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
becomes `next_cursor`; the file's bytes come from one `COPY (SELECT …) TO STDOUT`
(export/query.py, export/formats.py), read in chunks (`_Copy`); pseudonymised raw events
alone come through a server-side cursor in batches of FETCH_ROWS. If the caller stops
before the end, it calls `stream.close()` (or uses the stream as a context manager): the
COPY is cancelled and the transaction ends.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from psycopg import generators, sql
from psycopg.abc import PQGen
from psycopg.pq import ExecStatus, TransactionStatus
from psycopg.waiting import Wait

from hypervision.export import cursor as cursors
from hypervision.export import formats, query
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
# work_mem of an export's transaction: fewer, longer runs when its sort spills to disk.
SORT_MEMORY = "64MB"
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
    """An export under way. `rows()` counts the rows sent so far (by their lines, for
    progress): the exact total once `chunks` is exhausted. `total` is the number of rows
    to come, when asked for."""

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


def _begin(conn: psycopg.Connection, stack: ExitStack) -> None:
    """Enter a REPEATABLE READ transaction: the snapshot that becomes the next cursor
    must be the very one the rows are read through. It is rolled back at the end (it
    wrote nothing): the settings below, and a pseudonymisation key, end with it, also
    inside a caller's transaction (then a savepoint)."""
    status = conn.info.transaction_status
    if status == TransactionStatus.IDLE:
        stack.enter_context(conn.transaction(force_rollback=True))
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    elif status == TransactionStatus.INTRANS and (
        (row := conn.execute("SHOW transaction_isolation").fetchone())
        and row[0] in ("repeatable read", "serializable")
    ):
        stack.enter_context(conn.transaction(force_rollback=True))
    else:
        raise RuntimeError(
            "open_export needs a connection outside any transaction, or inside a REPEATABLE"
            " READ one: its cursor must be the snapshot the rows are read through"
        )
    # What the server's text output depends on (formats.py): UTC times in ISO style,
    # floats in their shortest exact form. More memory for the sort; no JIT compilation
    # (seconds of compiling for expressions that are function calls anyway).
    conn.execute("SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO',"
                 " true), set_config('extra_float_digits', '1', true),"
                 " set_config('work_mem', %s, true), set_config('jit', 'off', true)",
                 (SORT_MEMORY,))


class _Copy:
    """A `COPY … TO STDOUT` read in chunks of at least `CHUNK_BYTES`.

    psycopg's Copy hands over one row per call, and PostgreSQL sends one message per
    row: at a few million rows a second, that call was most of an export's time. Here
    one call takes every message libpq already holds (`pq.PGconn.get_copy_data`, what
    psycopg's own generator does for one), and waits on the socket through
    `Connection.wait` like psycopg does. psycopg's Copy object still starts the COPY
    and, when the export stops early, cancels it and drains the rest.
    """

    def __init__(self, conn: psycopg.Connection, statement: sql.Composed,
                 params: dict[str, Any]) -> None:
        self.conn = conn
        # Cursor.copy() holds the connection's lock until its block is left (close).
        self.block = conn.cursor().copy(statement, params)
        self.block.__enter__()
        self.open = True
        self.done = False
        self.rows: int | None = None

    def _read(self) -> PQGen[bytes]:
        pgconn = self.conn.pgconn
        parts: list[bytes] = []
        size = 0
        while size < formats.CHUNK_BYTES:
            nbytes, data = pgconn.get_copy_data(1)
            if nbytes > 0:
                parts.append(data)
                size += nbytes
            elif nbytes == 0:
                while not (yield Wait.R):
                    continue
                pgconn.consume_input()
            else:
                results = yield from generators.fetch_many(pgconn)
                self.done = True
                for result in results:
                    if result.status != ExecStatus.COMMAND_OK:
                        raise psycopg.errors.error_from_result(
                            result, encoding=self.conn.info.encoding)
                    self.rows = result.command_tuples
                break
        return b"".join(parts)

    def chunks(self) -> Iterator[bytes]:
        while not self.done:
            if data := self.conn.wait(self._read()):
                yield data
        self.close(None)

    def close(self, exc: BaseException | None) -> None:
        """Leave the COPY block; a COPY still running is cancelled by psycopg, which
        reads the rest."""
        if not self.open:
            return
        self.open = False
        if self.done:
            self.block.__exit__(None, None, None)
        else:
            self.done = True
            stopped = exc or _Stopped()
            self.block.__exit__(type(stopped), stopped, None)


class _Stopped(Exception):
    """The export was closed before its end."""


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
) -> ExportStream:
    """Start an export; raises ExportError for a bad filter or cursor (before any byte).

    `names` maps DevEUIs to device names (default: `device_names`); `with_total` counts
    the rows first (one more scan, for progress bars).
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
    since = None
    if flt.cursor:
        try:
            since = cursors.decode(flt.cursor)
        except cursors.CursorError as exc:
            raise ExportError(f"bad cursor: {exc}") from None

    stack = ExitStack()
    copy: _Copy | None = None
    try:
        _begin(conn, stack)
        row = conn.execute("SELECT pg_current_snapshot()::text").fetchone()
        assert row is not None
        snapshot = cursors.Snapshot.parse(row[0])
        if since is not None and since.xmax > snapshot.xmax:
            raise ExportError("bad cursor: it is ahead of this database (issued by another"
                              " instance?); run a full export to get a new one")
        if names is None and (kind == "measurements" or fmt != "jsonl"):
            names = device_names(conn, schema)
        p = query.plan(schema, kind, fmt, start, end, devices, metrics, since, names or {},
                       pseudonymiser)
        total = None
        if with_total:
            count = conn.execute(p.count, p.params).fetchone()
            total = int(count[0]) if count else 0
        if pseudonymiser is not None:
            # Bound parameters, never the statement's text (pseudonym.py).
            keys = pseudonymiser.key_settings()
            conn.execute(sql.SQL("SELECT ") + sql.SQL(", ").join(
                sql.SQL("set_config({}, %s, true)").format(sql.Literal(name)) for name in keys
            ), list(keys.values()))
        if p.shape is None:
            copy = _Copy(conn, p.statement, p.params)
        else:
            cur = conn.cursor(name=f"hv_export_{next(_CURSOR_IDS)}")
            cur.execute(p.statement, p.params)
    except BaseException:
        stack.__exit__(*sys.exc_info())
        raise

    counter = [0]
    closed = [False]

    def close(exc: tuple[Any, Any, Any] = (None, None, None)) -> None:
        if closed[0]:
            return
        closed[0] = True
        try:
            if copy is not None:
                copy.close(exc[1])
        finally:
            stack.__exit__(*exc)

    def counted(chunks: Iterator[bytes]) -> Iterator[bytes]:
        """Rows so far, for progress: the lines (exact for JSON Lines; a CSV text with a
        line break counts twice); the COPY's own count once it ends."""
        for chunk in chunks:
            counter[0] += chunk.count(b"\n")
            yield chunk

    def produce() -> Iterator[bytes]:
        if p.shape is not None:
            shape = p.shape

            def rows() -> Iterator[Any]:
                while batch := cur.fetchmany(FETCH_ROWS):
                    counter[0] += len(batch)
                    yield from map(shape, batch)

            yield from formats.raw_lines(rows())
            return
        assert copy is not None
        if fmt == "parquet":
            def add(n: int) -> None:
                counter[0] += n

            yield from formats.parquet_from_csv(copy.chunks(), p.columns, add)
        elif fmt == "jsonl":
            for chunk in counted(copy.chunks()):
                if formats.NEVER_QUOTED in chunk:
                    raise RuntimeError("a JSON line was quoted by COPY")
                yield chunk
        else:
            header = True
            for chunk in counted(copy.chunks()):
                if header:
                    counter[0] -= 1
                    header = False
                yield chunk
        if copy.rows is not None:
            counter[0] = copy.rows

    def chunks() -> Iterator[bytes]:
        try:
            yield from produce()
        except BaseException:
            close(sys.exc_info())
            raise
        close()

    return ExportStream(
        chunks=chunks(),
        media_type=formats.MEDIA_TYPES[fmt],
        next_cursor=cursors.encode(snapshot),
        rows=lambda: counter[0],
        total=total,
        _close=close,
    )

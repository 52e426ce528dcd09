"""Output formats: how each column is written in CSV, JSON Lines and Parquet.

PostgreSQL writes the bytes. An export is one `COPY (SELECT …) TO STDOUT`: for CSV the
SELECT gives each column as the text it must have and COPY's CSV writer quotes it; for
JSON Lines the SELECT builds each line (to_json() escapes the strings); for Parquet the
SELECT gives each column in PostgreSQL's own text form, and pyarrow parses the CSV into
Arrow record batches, one Parquet row group at a time (`ParquetWriter`). Python only
moves chunks of bytes: it never handles a row, which is what made the exports slow
(bench/README.md, "Exports").

The text of each column is the one the earlier Python encoders wrote, so files are the
same byte for byte (tests/export/test_formats.py):

- times: ISO 8601 UTC with microseconds and `Z` (`2025-01-31T08:00:00.000000Z`) in CSV
  and JSON, native UTC timestamps (µs) in Parquet;
- floats: Python's `repr` (`1000.0`, `0.1`, `1e-05`, `1e+16`); in CSV `nan`, `inf` and
  `-inf`, in JSON `NaN`, `Infinity` and `-Infinity` (as Python's json module writes them);
- booleans `true`/`false`; NULL is an empty CSV field (an empty text too, as before) and
  `null` in JSON;
- CSV: RFC 4180, a header line, `\\n` line ends, a field quoted when it holds a comma, a
  quote, a line feed or a carriage return (Python's csv module left a lone carriage
  return unquoted);
- JSON: one object per line, keys in column order, no spaces, UTF-8 (non-ASCII not
  escaped), the control characters escaped as Python's json module does.
"""

from __future__ import annotations

import itertools
import json as _json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import sql

ColumnKind = Literal["time", "text", "int", "float", "bool"]
CHUNK_BYTES = 256 * 1024
ROW_GROUP_ROWS = 128 * 1024
# Bytes of CSV pyarrow parses at a time into one record batch (about 16,000 rows).
PARQUET_BLOCK_BYTES = 1024 * 1024

MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/jsonl",
    "parquet": "application/vnd.apache.parquet",
}
ARROW_TYPES: dict[str, pa.DataType] = {
    "time": pa.timestamp("us", tz="UTC"),
    "text": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
}

# COPY options per format. JSON Lines go through COPY's CSV writer with a delimiter and a
# quote character that a JSON text never holds unescaped (control characters), and no
# line break either: so nothing is ever quoted, and each line leaves exactly as built.
# COPY's text format would double every backslash of the JSON escapes.
NEVER_QUOTED = b"\x02"
COPY_OPTIONS = {
    "csv": sql.SQL("FORMAT csv, HEADER"),
    "jsonl": sql.SQL("FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02'"),
    "parquet": sql.SQL("FORMAT csv"),
}
_ISO = sql.Literal('YYYY-MM-DD"T"HH24:MI:SS.US"Z"')


@dataclass(frozen=True)
class Column:
    name: str
    kind: ColumnKind


def iso(value: datetime) -> str:
    """ISO 8601 in UTC with microseconds and `Z`: one fixed width, sortable as text."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")[:-6] + "Z"


# SQL expressions -----------------------------------------------------------------------

def iso_sql(value: sql.Composable) -> sql.Composed:
    """`iso` in SQL; the export's transaction sets TimeZone to UTC."""
    return sql.SQL("to_char({}, {})").format(value, _ISO)


def float_sql(value: sql.Composable, json: bool = False) -> sql.Composed:
    """Python's repr() of a float8, in SQL.

    PostgreSQL's float8 output and Python's repr both give the shortest text that reads
    back as the same double (extra_float_digits = 1, set by the export's transaction);
    they differ in four ways, handled here: Python adds `.0` to an integral value, it
    keeps plain notation up to 1e16 where PostgreSQL switches to an exponent at 1e15,
    it takes a shorter text that is exactly halfway between two doubles (from 1e16 on),
    and it names the special values differently (`nan`, `inf` in CSV; json writes `NaN`,
    `Infinity` as PostgreSQL does).
    """
    specials = (
        sql.SQL("") if json else sql.SQL(
            " WHEN {v} = 'NaN'::float8 THEN 'nan' WHEN {v} = 'Infinity'::float8 THEN 'inf'"
            " WHEN {v} = '-Infinity'::float8 THEN '-inf'").format(v=value))
    return sql.SQL(
        "CASE WHEN abs({v}) < '1e15'::float8 THEN"
        " CASE WHEN {v} = trunc({v}) THEN {v}::text || '.0' ELSE {v}::text END"
        " WHEN abs({v}) < '1e16'::float8 THEN"
        " CASE WHEN {v} = trunc({v}) THEN {v}::text::numeric::text || '.0'"
        " ELSE {v}::text::numeric::text END"
        " WHEN abs({v}) < 'Infinity'::float8 THEN {large}"
        "{specials} ELSE {v}::text END"
    ).format(v=value, specials=specials, large=_large_float_sql(value))


def _large_float_sql(value: sql.Composable) -> sql.Composed:
    """From 1e16 on (doubles are then integers at least 2 apart), a decimal with 16
    digits can lie exactly halfway between two doubles; Python's repr takes it when the
    tie rounds to the value (to even), PostgreSQL writes 17 digits instead: try the
    16-digit rounding of PostgreSQL's text, keep it when it reads back as the value
    (below 1e308, where the rounding cannot overflow)."""
    mantissa = sql.SQL("split_part({}::text, 'e', 1)").format(value)
    exponent = sql.SQL("split_part({}::text, 'e', 2)").format(value)
    rounded = sql.SQL("round({}::numeric, 15)").format(mantissa)
    return sql.SQL(
        "CASE WHEN length(split_part({m}, '.', 2)) = 16 AND abs({v}) < '1e308'::float8"
        " AND ({r}::text || 'e' || {x})::float8 = {v}"
        " THEN rtrim(rtrim({r}::text, '0'), '.') || 'e' || {x} ELSE {v}::text END"
    ).format(m=mantissa, r=rounded, x=exponent, v=value)


def csv_value(column: Column, value: sql.Composable) -> sql.Composable:
    """A column as the text the CSV file holds (COPY adds the quoting)."""
    if column.kind == "time":
        return iso_sql(value)
    if column.kind == "float":
        return float_sql(value)
    if column.kind == "bool":
        return sql.SQL("{}::text").format(value)
    if column.kind == "text":
        # An empty text is an empty field, like NULL (COPY would write "").
        return sql.SQL("nullif({}, '')").format(value)
    return value


def json_value(column: Column, value: sql.Composable) -> sql.Composable:
    """A column as a JSON value (text); `null` for NULL."""
    if column.kind == "time":
        text: sql.Composable = sql.SQL("'\"' || {} || '\"'").format(iso_sql(value))
    elif column.kind == "float":
        text = float_sql(value, json=True)
    elif column.kind == "text":
        text = sql.SQL("to_json({})::text").format(value)
    else:  # int, bool: their text is their JSON
        text = sql.SQL("{}::text").format(value)
    return sql.SQL("coalesce({}, 'null')").format(text)


class JsonText(sql.Composed):
    """A column given to `select_list` as its JSON text already (a JSONL export's
    pre-rendered names), used as is."""


def json_safe(text: str) -> bool:
    """True when a text is its own JSON string between quotes (nothing to escape)."""
    return _json.dumps(text, ensure_ascii=False) == f'"{text}"'


def json_string_sql(value: sql.Composable, safe: sql.Composable) -> JsonText:
    """A text column as a JSON string. to_json() is the costliest step of a JSON line
    (about 1 µs a call), so the texts known to need no escaping (`safe`, a text[]: the
    member's DevEUIs, metric names, units) are only put between quotes."""
    return JsonText([sql.SQL(
        "coalesce(CASE WHEN {v} = ANY({safe}) THEN '\"' || {v} || '\"'"
        " ELSE to_json({v})::text END, 'null')"
    ).format(v=value, safe=safe)])


def json_line(columns: Sequence[Column], values: Sequence[sql.Composable]) -> sql.Composed:
    """One JSON object per row: keys in column order, compact, as text."""
    parts: list[sql.Composable] = []
    for i, (column, value) in enumerate(zip(columns, values, strict=True)):
        key = ("{" if i == 0 else ",") + f'"{column.name}":'
        rendered = value if isinstance(value, JsonText) else json_value(column, value)
        parts += [sql.Literal(key), rendered]
    parts.append(sql.Literal("}"))
    return sql.SQL(" || ").join(parts)


def parquet_value(column: Column, value: sql.Composable) -> sql.Composable:
    """A column in PostgreSQL's text form, which pyarrow's CSV reader parses to its type
    (timestamptz as `2025-01-31 08:00:00.25+00`, booleans as t/f)."""
    return value


def select_list(fmt: str, columns: Sequence[Column],
                values: Sequence[sql.Composable]) -> sql.Composed:
    """The SELECT list of an export in this format."""
    if fmt == "jsonl":
        return json_line(columns, values)
    if any(isinstance(v, JsonText) for v in values):
        raise ValueError("JsonText is for JSON Lines only")
    render: Callable[[Column, sql.Composable], sql.Composable] = (
        csv_value if fmt == "csv" else parquet_value)
    return sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(render(c, v), sql.Identifier(c.name))
        for c, v in zip(columns, values, strict=True))


# Parquet from COPY's CSV ---------------------------------------------------------------

class _ChunkFile:
    """A read-only file over an iterator of byte chunks, for pyarrow's CSV reader."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.buffer = b""
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        parts = [self.buffer] if self.buffer else []
        have = len(self.buffer)
        while size < 0 or have < size:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        if 0 <= size < len(data):
            data, self.buffer = data[:size], data[size:]
        else:
            self.buffer = b""
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


class _Sink:
    """A write-only file for pyarrow that hands its bytes over as soon as they are written."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        data = bytes(data)
        self.parts.append(data)
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def drain(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def _memory_pool() -> pa.MemoryPool:
    """jemalloc, returning freed pages at once: the API runs an export's steps on
    whichever threadpool thread is free, and the default allocator's per-thread caches
    kept tens of MiB more resident than the row group ever needed."""
    try:
        pool = pa.jemalloc_memory_pool()
        pa.jemalloc_set_decay_ms(0)
    except NotImplementedError:  # a pyarrow built without jemalloc
        return pa.default_memory_pool()
    return pool


MEMORY_POOL = _memory_pool()


def arrow_schema(columns: Sequence[Column]) -> pa.Schema:
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.kind]) for c in columns])


def parquet_from_csv(csv_chunks: Iterator[bytes], columns: Sequence[Column],
                     rows: Callable[[int], None],
                     row_group_rows: int = ROW_GROUP_ROWS) -> Iterator[bytes]:
    """Parquet (zstd) from the CSV that COPY writes for `parquet_value` columns: one row
    group every `row_group_rows` rows, handed over as soon as it is written. `rows` is
    told the rows of each record batch."""
    schema = arrow_schema(columns)
    sink = _Sink()
    writer = pq.ParquetWriter(sink, schema, compression="zstd", memory_pool=MEMORY_POOL)
    first = next(csv_chunks, None)
    if first is None:  # no rows: pyarrow refuses an empty CSV
        writer.close()
        yield sink.drain()
        return
    reader = pacsv.open_csv(
        _ChunkFile(itertools.chain((first,), csv_chunks)),
        read_options=pacsv.ReadOptions(column_names=[c.name for c in columns],
                                       block_size=PARQUET_BLOCK_BYTES, use_threads=False),
        # COPY quotes a text holding a line break.
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={c.name: ARROW_TYPES[c.kind] for c in columns},
            # COPY writes NULL as an empty field and an empty text as "": nothing else
            # (a device called "NA", say) may read as null.
            null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False,
            true_values=["t"], false_values=["f"]),
        memory_pool=MEMORY_POOL,
    )
    pending: list[pa.RecordBatch] = []
    pending_rows = 0

    def flush(count: int) -> bytes:
        nonlocal pending, pending_rows
        table = pa.Table.from_batches(pending, schema=schema)
        writer.write_table(table.slice(0, count), row_group_size=max(count, 1))
        rest = table.slice(count)
        pending = rest.to_batches() if rest.num_rows else []
        pending_rows = rest.num_rows
        return sink.drain()

    for batch in reader:
        if batch.schema != schema:
            batch = pa.RecordBatch.from_arrays(batch.columns, schema=schema)
        pending.append(batch)
        pending_rows += batch.num_rows
        rows(batch.num_rows)
        while pending_rows >= row_group_rows:
            if data := flush(row_group_rows):
                yield data
    if pending_rows and (data := flush(pending_rows)):
        yield data
    writer.close()
    if data := sink.drain():
        yield data


def raw_lines(rows: Iterator[Sequence[Any]]) -> Iterator[bytes]:
    """Rows that are already one JSON document each, as JSON Lines chunks of about
    CHUNK_BYTES (the pseudonymised uplink events, rebuilt in Python)."""
    parts: list[str] = []
    size = 0
    for (line,) in rows:
        parts.append(line)
        size += len(line) + 1
        if size >= CHUNK_BYTES:
            parts.append("")
            yield "\n".join(parts).encode("utf-8")
            parts, size = [], 0
    if parts:
        parts.append("")
        yield "\n".join(parts).encode("utf-8")

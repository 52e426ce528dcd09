"""Exports that PostgreSQL writes: one `COPY (SELECT …) TO STDOUT` per export.

For an export that is not pseudonymised, the rows never pass through Python one value at
a time: the SELECT gives each column as the text the file holds (times, floats, names,
spreadsheet-safe cells) and COPY's CSV writer quotes it; a JSON line is built by the
SELECT (to_json() escapes the strings); Parquet is read by pyarrow's CSV reader from
COPY's CSV, one row group at a time. Python joins COPY's rows into chunks.

The texts are the ones the Python encoders (formats.py) write, so files are the same:
tests/export/test_copying.py compares both on the same rows.

- times: ISO 8601 UTC with microseconds and `Z` in CSV and JSON (the transaction's
  TimeZone is UTC); native UTC timestamps (µs) in Parquet;
- floats: Python's `repr` (`1000.0`, `0.1`, `1e-05`, `1e+16`); in CSV `nan`, `inf`,
  `-inf`, in JSON `NaN`, `Infinity`, `-Infinity` (as Python's json module writes them);
- booleans `true`/`false`; NULL and an empty text are an empty CSV field, `null` in JSON;
- CSV: a header line, `\\n` line ends, a text starting with `= + - @ TAB CR` prefixed with
  `'` (formats.csv_safe). One difference: COPY quotes a field holding a carriage return
  anywhere, where Python's csv module (line terminator `\\n`) left it unquoted; both are
  valid CSV and read back as the same text.
- JSON: keys in column order, no spaces, UTF-8, control characters escaped as Python's
  json module does (`\\n`, `\\u001f`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import sql

from hypervision.export.formats import (
    ARROW_TYPES,
    FORMULA_STARTS,
    ROW_GROUP_ROWS,
    Column,
    _Sink,
)

# Bytes of CSV pyarrow parses at a time into one record batch.
PARQUET_BLOCK_BYTES = 1024 * 1024
# JSON Lines go through COPY's CSV writer with a delimiter and a quote character that a
# JSON text never holds unescaped (control characters): a line is quoted only when it
# holds a line break (a stored event written over several lines).
JSONL_QUOTE = b"\x02"
COPY_OPTIONS = {
    "csv": sql.SQL("FORMAT csv, HEADER"),
    "jsonl": sql.SQL("FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02'"),
    "parquet": sql.SQL("FORMAT csv"),
}
_ISO = sql.Literal('YYYY-MM-DD"T"HH24:MI:SS.US"Z"')


def iso_sql(value: sql.Composable) -> sql.Composed:
    """formats.iso in SQL (the export's transaction sets TimeZone to UTC)."""
    return sql.SQL("to_char({}, {})").format(value, _ISO)


def float_sql(value: sql.Composable, json: bool = False) -> sql.Composed:
    """Python's repr() of a float8, in SQL.

    PostgreSQL's float8 output and Python's repr both give the shortest text that reads
    back as the same double (extra_float_digits = 1, set by the export's transaction);
    they differ in four ways, handled here: Python adds `.0` to an integral value, it
    keeps plain notation up to 1e16 where PostgreSQL switches to an exponent at 1e15,
    it takes a shorter text that is exactly halfway between two doubles (from 1e16 on),
    and it names the special values differently in CSV (`nan`, `inf`).
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
    """From 1e16 on, a decimal with 16 digits can lie exactly halfway between two doubles;
    Python's repr takes it when the tie rounds to the value, PostgreSQL writes 17 digits:
    try the 16-digit rounding of PostgreSQL's text, keep it when it reads back as the
    value (below 1e308, where the rounding cannot overflow)."""
    mantissa = sql.SQL("split_part({}::text, 'e', 1)").format(value)
    exponent = sql.SQL("split_part({}::text, 'e', 2)").format(value)
    rounded = sql.SQL("round({}::numeric, 15)").format(mantissa)
    return sql.SQL(
        "CASE WHEN length(split_part({m}, '.', 2)) = 16 AND abs({v}) < '1e308'::float8"
        " AND ({r}::text || 'e' || {x})::float8 = {v}"
        " THEN rtrim(rtrim({r}::text, '0'), '.') || 'e' || {x} ELSE {v}::text END"
    ).format(m=mantissa, r=rounded, x=exponent, v=value)


_FORMULA = sql.SQL(", ").join(sql.Literal(c) for c in FORMULA_STARTS)


def csv_value(column: Column, value: sql.Composable) -> sql.Composable:
    """A column as the text the CSV file holds (COPY adds the quoting)."""
    if column.kind == "time":
        return iso_sql(value)
    if column.kind == "float":
        return float_sql(value)
    if column.kind == "bool":
        return sql.SQL("{}::text").format(value)
    if column.kind == "text":
        # formats.csv_safe; an empty text is an empty field, like NULL (COPY writes "").
        return sql.SQL("CASE WHEN left({v}, 1) IN ({f}) THEN '''' || {v}"
                       " ELSE nullif({v}, '') END").format(v=value, f=_FORMULA)
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


def select_list(fmt: str, columns: Sequence[Column],
                values: Sequence[sql.Composable]) -> sql.Composed:
    """The SELECT list of an export in this format: one JSON object for JSON Lines, the
    columns' CSV texts for CSV, PostgreSQL's own text forms for Parquet (pyarrow parses
    timestamptz as `2025-01-31 08:00:00.25+00` and booleans as t/f)."""
    if fmt == "jsonl":
        parts: list[sql.Composable] = []
        for i, (column, value) in enumerate(zip(columns, values, strict=True)):
            parts += [sql.Literal(("{" if i == 0 else ",") + f'"{column.name}":'),
                      json_value(column, value)]
        parts.append(sql.Literal("}"))
        return sql.SQL(" || ").join(parts)
    return sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(csv_value(c, v) if fmt == "csv" else v,
                                   sql.Identifier(c.name))
        for c, v in zip(columns, values, strict=True))


def copy_statement(select: sql.Composable, fmt: str) -> sql.Composed:
    return sql.SQL("COPY ({}) TO STDOUT ({})").format(select, COPY_OPTIONS[fmt])


def names_sql(names: Mapping[str, str], params: dict[str, Any]) -> sql.Composable:
    """A device's name from the mapping the caller gave, looked up per row in a jsonb
    object (no join: the query's plan stays the one of the rows alone)."""
    if not names:
        return sql.SQL("NULL::text")
    params["names"] = json.dumps(dict(names))
    return sql.SQL("(%(names)s::jsonb ->> dev_eui)")


# Reading COPY's rows -------------------------------------------------------------------

def joined(rows: Iterator[Any], chunk_bytes: int) -> Iterator[bytes]:
    """COPY's rows (one per protocol message) joined into chunks of about chunk_bytes."""
    parts: list[Any] = []
    size = 0
    append = parts.append
    for row in rows:
        append(row)
        size += len(row)
        if size >= chunk_bytes:
            yield b"".join(parts)
            parts.clear()
            size = 0
    if parts:
        yield b"".join(parts)


def event_lines(rows: Iterator[Any]) -> Iterator[Any]:
    """Raw events as COPY writes them for JSON Lines: an event stored over several lines
    comes quoted (JSONL_QUOTE) and is re-written on one line, as formats did."""
    for row in rows:
        if row[:1] == JSONL_QUOTE:
            text = bytes(row).decode("utf-8").rstrip("\n")[1:-1].replace("\x02\x02", "\x02")
            row = (json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))
                   + "\n").encode("utf-8")
        yield row


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


def parquet_from_csv(csv_chunks: Iterator[bytes], columns: Sequence[Column],
                     rows: Callable[[int], None],
                     row_group_rows: int = ROW_GROUP_ROWS) -> Iterator[bytes]:
    """Parquet (zstd) from the CSV that COPY writes: a row group every `row_group_rows`
    rows, handed over as soon as written. `rows` is told each record batch's rows."""
    schema = pa.schema([pa.field(c.name, ARROW_TYPES[c.kind]) for c in columns])
    sink = _Sink()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    first = next(csv_chunks, None)
    if first is not None:  # pyarrow refuses an empty CSV
        reader = pacsv.open_csv(
            _ChunkFile(itertools.chain((first,), csv_chunks)),
            read_options=pacsv.ReadOptions(column_names=[c.name for c in columns],
                                           block_size=PARQUET_BLOCK_BYTES,
                                           use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={c.name: ARROW_TYPES[c.kind] for c in columns},
                # COPY writes NULL as an empty field and an empty text as "": nothing
                # else (a device called "NA", say) may read as null.
                null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False,
                true_values=["t"], false_values=["f"]),
        )
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        for batch in reader:
            pending.append(batch)
            pending_rows += batch.num_rows
            rows(batch.num_rows)
            if pending_rows >= row_group_rows:
                writer.write_table(pa.Table.from_batches(pending, schema=schema),
                                   row_group_size=pending_rows)
                pending, pending_rows = [], 0
                if data := sink.drain():
                    yield data
        if pending:
            writer.write_table(pa.Table.from_batches(pending, schema=schema),
                               row_group_size=pending_rows)
    writer.close()
    if data := sink.drain():
        yield data

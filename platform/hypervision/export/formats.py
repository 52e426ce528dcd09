"""Row encoders: CSV, JSON Lines and Parquet, each turning batches of rows into byte chunks.

An encoder never holds more than one chunk of text (CHUNK_BYTES) or, for Parquet, one row
group (ROW_GROUP_ROWS rows as Arrow arrays): exports stream in constant memory whatever
their size. Timestamps are ISO 8601 UTC in CSV and JSON (`2025-01-31T08:00:00.000000Z`),
and native UTC timestamps (microseconds) in Parquet.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

ColumnKind = Literal["time", "text", "int", "float", "bool"]
CHUNK_BYTES = 256 * 1024
ROW_GROUP_ROWS = 128 * 1024

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


@dataclass(frozen=True)
class Column:
    name: str
    kind: ColumnKind


def iso(value: datetime) -> str:
    """ISO 8601 in UTC with microseconds and `Z`: one fixed width, sortable as text."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")[:-6] + "Z"


def _iso_repeating() -> Any:
    """`iso` remembering its last value: rows in time order repeat a time (every metric
    of an uplink, every device of a synchronised fleet), and formatting is the costly part."""
    last: list[Any] = [None, None]

    def fmt(value: datetime | None) -> str | None:
        if value is None:
            return None
        if value != last[0]:
            last[0], last[1] = value, iso(value)
        return last[1]

    return fmt


# A spreadsheet reads a cell starting with one of these as a formula (CSV injection):
# such a cell is written with a leading apostrophe, which spreadsheets show as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """A text cell made inert for spreadsheets; numbers and other values unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv_formatter(kind: ColumnKind) -> Any:
    if kind == "text":
        return csv_safe
    if kind == "time":
        return _iso_repeating()
    if kind == "bool":
        return lambda v: None if v is None else ("true" if v else "false")
    return None


class Encoder:
    """Feed batches of rows (tuples in column order); collect the bytes it yields."""

    def feed(self, rows: Sequence[Sequence[Any]]) -> Iterator[bytes]:
        raise NotImplementedError

    def finish(self) -> Iterator[bytes]:
        raise NotImplementedError


class _TextEncoder(Encoder):
    def __init__(self) -> None:
        self.buffer = io.StringIO()

    def _drain(self, force: bool = False) -> Iterator[bytes]:
        if self.buffer.tell() >= CHUNK_BYTES or (force and self.buffer.tell()):
            yield self.buffer.getvalue().encode("utf-8")
            self.buffer.seek(0)
            self.buffer.truncate()

    def finish(self) -> Iterator[bytes]:
        yield from self._drain(force=True)


class CsvEncoder(_TextEncoder):
    """RFC 4180 CSV with a header line; empty field for NULL, `true`/`false` for booleans,
    text cells that a spreadsheet would run as a formula prefixed with `'` (csv_safe)."""

    def __init__(self, columns: Sequence[Column]) -> None:
        super().__init__()
        self.writer = csv.writer(self.buffer, lineterminator="\n")
        self.writer.writerow([c.name for c in columns])
        self.formats = [(i, f) for i, c in enumerate(columns)
                        if (f := _csv_formatter(c.kind)) is not None]

    def feed(self, rows: Sequence[Sequence[Any]]) -> Iterator[bytes]:
        if self.formats:
            formats = self.formats
            out = []
            for row in rows:
                values = list(row)
                for i, f in formats:
                    values[i] = f(values[i])
                out.append(values)
            self.writer.writerows(out)
        else:
            self.writer.writerows(rows)
        yield from self._drain()


class JsonLinesEncoder(_TextEncoder):
    """One JSON object per line, keys in column order."""

    def __init__(self, columns: Sequence[Column]) -> None:
        super().__init__()
        self.names = [c.name for c in columns]
        self.times = [(i, _iso_repeating()) for i, c in enumerate(columns) if c.kind == "time"]
        self.dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def feed(self, rows: Sequence[Sequence[Any]]) -> Iterator[bytes]:
        names, times, write, dumps = self.names, self.times, self.buffer.write, self.dumps
        for row in rows:
            values = list(row)
            for i, fmt in times:
                values[i] = fmt(values[i])
            write(dumps(dict(zip(names, values, strict=True))))
            write("\n")
        yield from self._drain()


class RawLinesEncoder(_TextEncoder):
    """Rows that are already one JSON document each (ChirpStack events as stored)."""

    def feed(self, rows: Sequence[Sequence[Any]]) -> Iterator[bytes]:
        write = self.buffer.write
        for (line,) in rows:
            write(line)
            write("\n")
        yield from self._drain()


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


class ParquetEncoder(Encoder):
    """Parquet (zstd), one row group per ROW_GROUP_ROWS rows, written as soon as full."""

    def __init__(self, columns: Sequence[Column], row_group_rows: int = ROW_GROUP_ROWS) -> None:
        self.schema = pa.schema([pa.field(c.name, ARROW_TYPES[c.kind]) for c in columns])
        self.sink = _Sink()
        self.writer = pq.ParquetWriter(self.sink, self.schema, compression="zstd")
        self.row_group_rows = row_group_rows
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0

    def feed(self, rows: Sequence[Sequence[Any]]) -> Iterator[bytes]:
        if not rows:
            return
        columns = list(zip(*rows, strict=True))
        arrays = [pa.array(values, type=field.type)
                  for values, field in zip(columns, self.schema, strict=True)]
        self.pending.append(pa.RecordBatch.from_arrays(arrays, schema=self.schema))
        self.pending_rows += len(rows)
        if self.pending_rows >= self.row_group_rows:
            yield from self._flush()

    def _flush(self) -> Iterator[bytes]:
        if self.pending:
            table = pa.Table.from_batches(self.pending, schema=self.schema)
            self.writer.write_table(table, row_group_size=max(self.pending_rows, 1))
            self.pending = []
            self.pending_rows = 0
        data = self.sink.drain()
        if data:
            yield data

    def finish(self) -> Iterator[bytes]:
        yield from self._flush()
        self.writer.close()
        data = self.sink.drain()
        if data:
            yield data


def encoder(fmt: str, columns: Sequence[Column], raw_lines: bool = False) -> Encoder:
    if fmt == "csv":
        return CsvEncoder(columns)
    if fmt == "jsonl":
        return RawLinesEncoder() if raw_lines else JsonLinesEncoder(columns)
    if fmt == "parquet":
        return ParquetEncoder(columns)
    raise ValueError(f"unknown format {fmt!r}")

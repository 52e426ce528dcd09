"""Exports written by PostgreSQL (COPY) hold exactly what the Python encoders wrote: the
same rows are exported both ways (`server_side=False` is the Python path) and compared,
on values chosen to differ between the two text forms (integral and huge floats, NaN,
formula cells, quotes, line breaks, non-ASCII, empty texts). Several exports run back to
back on one connection, one of them stopped early."""

from __future__ import annotations

import io
import json
import math
from datetime import timedelta
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from hypervision.export import ExportFilter, open_export
from hypervision.tenancy.spec import TenantSpec
from tests.export.conftest import Ingest, topic, uplink_event
from tests.export.test_export import T0, Reader, put_measurements

pytestmark = pytest.mark.services

VALUES = [1000.0, 0.1, -0.0, 0.0, 1e-05, 123.456, 1e15, 1234567890123456.8, 1e16, 1e22,
          2.5e17, 9007199254740993.0, 5e-324, 1.7976931348623157e308, -1.5, 1 / 3,
          math.nan, math.inf, -math.inf]
UNITS = ["L", "", "=SUM(A1)", "-5", "+1", "@x", "\tt", 'say "hi"', "a,b", "two\nlines",
         "°C", "ctl\x1fchar", "back\\slash", "ppm"]
NAMES = ["Compteur, \"Lilas\"", "=HYPERLINK(\"x\")"]


def export(conn: psycopg.Connection, spec: TenantSpec, kind: str, fmt: str,
           server_side: bool, names: dict[str, str] | None = None) -> tuple[bytes, int]:
    stream = open_export(conn, spec.schema, kind, fmt, ExportFilter(),  # type: ignore[arg-type]
                         names=names, server_side=server_side)
    data = b"".join(stream.chunks)
    return data, stream.rows()


def parquet_rows(data: bytes) -> tuple[Any, str]:
    table = pq.read_table(io.BytesIO(data))
    return table.schema, repr(table.to_pylist())  # repr: NaN equals NaN


def same(kind: str, fmt: str, old: bytes, new: bytes) -> None:
    if fmt == "parquet":
        assert parquet_rows(new) == parquet_rows(old), (kind, fmt)
    else:
        assert new == old, (kind, fmt)


def test_copy_exports_are_identical_to_the_python_encoders(
    admin: psycopg.Connection, member: TenantSpec, reader: Reader, ingest: Ingest
) -> None:
    rows = [(T0 + timedelta(minutes=i), i % 2, f"metric.{i % 3}", v, UNITS[i % len(UNITS)])
            for i, v in enumerate(VALUES * 2)]
    put_measurements(admin, member, rows)
    for i in range(6):
        ingest((topic(member, i % 2), uplink_event(member, i % 2, T0 + timedelta(hours=i),
                                                     f_cnt=i)))
    uplinks = sql.Identifier(member.schema, "uplinks")
    # Texts the Python encoders escape or prefix, and an event stored over several lines.
    admin.execute(sql.SQL(
        "UPDATE {} SET decode_error = %s, codec = %s, gateways = '{{}}'"
        " WHERE time = %s").format(uplinks),
        ('bad "frame", twice\nsee log', "=cmd|' /C calc'!A0", T0))
    admin.execute(sql.SQL(
        "UPDATE {} SET event = replace(event::text, ',', E',\\n  ')::json, snr = NULL,"
        " dev_addr = '' WHERE time = %s").format(uplinks), (T0 + timedelta(hours=1),))
    names = {d.dev_eui: n for d, n in zip(member.devices, NAMES, strict=True)}
    conn = reader(member)

    for kind in ("measurements", "uplinks"):
        for fmt in ("csv", "jsonl", "parquet"):
            for given in (None, names):
                old, old_rows = export(conn, member, kind, fmt, False, given)
                new, new_rows = export(conn, member, kind, fmt, True, given)
                same(kind, fmt, old, new)
                assert new_rows == old_rows >= (len(rows) if kind == "measurements" else 6)
    # The cases above were there to compare (not a file of empty cells).
    csv_text = export(conn, member, "measurements", "csv", True, names)[0].decode()
    assert "'=SUM(A1)" in csv_text and "1234567890123456.8" in csv_text
    assert ",nan," in csv_text and "'=HYPERLINK" in csv_text
    lines = export(conn, member, "uplinks", "jsonl", True)[0].splitlines()
    assert len(lines) == 6 and all(json.loads(line) for line in lines)


def test_exports_run_back_to_back_on_one_connection_one_stopped_early(
    admin: psycopg.Connection, member: TenantSpec, reader: Reader
) -> None:
    put_measurements(admin, member, [(T0 + timedelta(minutes=i), i % 2, "water.index",
                                      float(i), "L") for i in range(40_000)])
    conn = reader(member)
    first, _ = export(conn, member, "measurements", "csv", True)
    for fmt in ("csv", "jsonl", "parquet", "csv"):
        stream = open_export(conn, member.schema, "measurements", fmt,  # type: ignore[arg-type]
                             ExportFilter())
        assert next(stream.chunks)
        stream.close()  # a COPY under way: psycopg cancels it, the connection stays usable
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        data, count = export(conn, member, "measurements", fmt, True)
        assert count == 40_000
        if fmt == "csv":
            assert data == first
    assert export(conn, member, "uplinks", "jsonl", True) == (b"", 0)

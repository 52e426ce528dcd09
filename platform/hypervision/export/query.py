"""What each export kind reads: its SQL, its output columns and how a row is shaped.

- `measurements`: time, dev_eui, device_name, metric, value, unit; ordered by time,
  device and metric.
- `uplinks` as JSON Lines: each uplink's event exactly as ChirpStack sent it (the stored
  `event` text), one per line; ordered by time.
- `uplinks` as CSV or Parquet: the flat columns of UPLINK_COLUMNS; ordered by time.

An export that is not pseudonymised also gets `Plan.copy`, the same rows as one
`COPY (SELECT …) TO STDOUT` whose output is already the file's text (export/copying.py);
a pseudonymised one is shaped row by row in Python (`Plan.shape`, the Pseudonymiser).

Filters become WHERE clauses composed with psycopg.sql, values always as parameters.
The time range is half-open: start <= time < end.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql

from hypervision.export import copying
from hypervision.export.cursor import Snapshot
from hypervision.export.formats import Column, iso
from hypervision.pseudonym import Pseudonymiser

MEASUREMENT_COLUMNS = (
    Column("time", "time"), Column("dev_eui", "text"), Column("device_name", "text"),
    Column("metric", "text"), Column("value", "float"), Column("unit", "text"),
)
UPLINK_COLUMNS = (
    Column("time", "time"), Column("received_at", "time"), Column("dev_eui", "text"),
    Column("device_name", "text"), Column("deduplication_id", "text"),
    Column("f_cnt", "int"), Column("f_port", "int"), Column("dr", "int"),
    Column("adr", "bool"), Column("confirmed", "bool"), Column("dev_addr", "text"),
    Column("data_hex", "text"), Column("rssi", "int"), Column("snr", "float"),
    Column("gateway_count", "int"), Column("gateways", "text"), Column("frequency", "int"),
    Column("spreading_factor", "int"), Column("codec", "text"), Column("decode_error", "text"),
)
EVENT_COLUMNS = (Column("event", "text"),)

Row = tuple[Any, ...]
Shaper = Callable[[Row], Row]


@dataclass(frozen=True)
class Plan:
    """The query of one export and how to turn each fetched row into an output row."""

    query: sql.Composed
    count: sql.Composed
    params: dict[str, Any]
    columns: Sequence[Column]
    shape: Shaper
    raw_lines: bool = False
    copy: sql.Composed | None = None


def _where(
    kind: str,
    start: datetime | None,
    end: datetime | None,
    devices: Sequence[str],
    metrics: Sequence[str],
    since: Snapshot | None,
) -> tuple[sql.Composable, dict[str, Any]]:
    clauses: list[sql.Composable] = []
    params: dict[str, Any] = {}
    if start is not None:
        clauses.append(sql.SQL("time >= %(start)s"))
        params["start"] = start
    if end is not None:
        clauses.append(sql.SQL("time < %(end)s"))
        params["end"] = end
    if devices:
        clauses.append(sql.SQL("dev_eui = ANY(%(devices)s)"))
        params["devices"] = list(devices)
    if metrics and kind == "measurements":
        clauses.append(sql.SQL("metric = ANY(%(metrics)s)"))
        params["metrics"] = list(metrics)
    if since is not None:
        # Rows whose writing transaction the cursor's snapshot did not see (cursor.py).
        params["xmax"] = since.xmax
        if since.in_progress:
            clauses.append(sql.SQL(
                "(ingested_xid >= %(xmax)s OR ingested_xid = ANY(%(xip)s))"))
            params["xip"] = list(since.in_progress)
        else:
            clauses.append(sql.SQL("ingested_xid >= %(xmax)s"))
    if not clauses:
        return sql.SQL(""), params
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses), params


def plan(
    schema: str,
    kind: str,
    fmt: str,
    start: datetime | None,
    end: datetime | None,
    devices: Sequence[str],
    metrics: Sequence[str],
    since: Snapshot | None,
    names: Mapping[str, str],
    p: Pseudonymiser | None,
) -> Plan:
    where, params = _where(kind, start, end, devices, metrics, since)
    table = sql.Identifier(schema, kind)
    count = sql.SQL("SELECT count(*) FROM {}{}").format(table, where)
    copy_params = dict(params)
    if kind == "measurements":
        query = sql.SQL(
            "SELECT time, dev_eui, metric, value, unit FROM {}{} ORDER BY time, dev_eui, metric"
        ).format(table, where)
        copy = None
        if p is None:
            values: list[sql.Composable] = [
                sql.SQL(c) for c in ("time", "dev_eui", "metric", "value", "unit")]
            values.insert(2, copying.names_sql(names, copy_params))
            copy = _copy(values, MEASUREMENT_COLUMNS, table, where, ("time", "dev_eui",
                                                                      "metric"), fmt)
        return _plan(query, count, params, copy_params, MEASUREMENT_COLUMNS,
                     _measurement_shaper(names, p), copy)
    if fmt == "jsonl":
        query = sql.SQL(
            "SELECT event::text FROM {}{} ORDER BY time, deduplication_id"
        ).format(table, where)
        copy = None if p is not None else copying.copy_statement(sql.SQL(
            "SELECT event::text FROM {} AS t{} ORDER BY t.time, t.deduplication_id"
        ).format(table, where), fmt)
        return _plan(query, count, params, copy_params, EVENT_COLUMNS, _event_shaper(p), copy,
                     raw_lines=True)
    # Text conversions happen in the server, which does them faster than Python.
    query = sql.SQL(
        "SELECT time, received_at, dev_eui, deduplication_id::text, f_cnt, f_port, dr, adr,"
        " confirmed, dev_addr, encode(data, 'hex'), rssi, snr::numeric::float8,"
        " gateway_count, nullif(array_to_string(gateways, ';'), ''), frequency,"
        " spreading_factor, codec, decode_error FROM {}{} ORDER BY time, deduplication_id"
    ).format(table, where)
    copy = None
    if p is None:
        values = [sql.SQL(e) for e in (
            "time", "received_at", "dev_eui", "deduplication_id::text", "f_cnt", "f_port",
            "dr", "adr", "confirmed", "dev_addr", "encode(data, 'hex')", "rssi",
            "snr::numeric::float8", "gateway_count",
            "nullif(array_to_string(gateways, ';'), '')", "frequency", "spreading_factor",
            "codec", "decode_error")]
        values.insert(3, copying.names_sql(names, copy_params))
        copy = _copy(values, UPLINK_COLUMNS, table, where, ("time", "deduplication_id"), fmt)
    return _plan(query, count, params, copy_params, UPLINK_COLUMNS, _uplink_shaper(names, p),
                 copy)


def _copy(values: Sequence[sql.Composable], columns: Sequence[Column],
          table: sql.Identifier, where: sql.Composable, order: Sequence[str],
          fmt: str) -> sql.Composed:
    """The COPY statement of an export: its ORDER BY names the table's columns (`t.`), not
    the output columns of the same names (texts)."""
    return copying.copy_statement(sql.SQL("SELECT {} FROM {} AS t{} ORDER BY {}").format(
        copying.select_list(fmt, columns, values), table, where,
        sql.SQL(", ").join(sql.Identifier("t", k) for k in order)), fmt)


def _plan(query: sql.Composed, count: sql.Composed, params: dict[str, Any],
          copy_params: dict[str, Any], columns: Sequence[Column], shape: Shaper,
          copy: sql.Composed | None, raw_lines: bool = False) -> Plan:
    """COPY cannot take bound parameters: psycopg binds them client-side into the
    statement's text (values quoted by psycopg, never string-built)."""
    return Plan(query, count, params if copy is None else copy_params, columns, shape,
                raw_lines, copy)


def _measurement_shaper(names: Mapping[str, str], p: Pseudonymiser | None) -> Shaper:
    if p is None:
        get = names.get
        return lambda r: (r[0], r[1], get(r[1]), r[2], r[3], r[4])
    return lambda r: (p.time(r[0]), p.dev_eui(r[1]), p.device_name(r[1]), r[2], r[3], r[4])


def _uplink_shaper(names: Mapping[str, str], p: Pseudonymiser | None) -> Shaper:
    if p is None:
        get = names.get
        return lambda r: (*r[:3], get(r[2]), *r[3:])

    def pseudonymised(r: Row) -> Row:
        (time, received_at, dev_eui, dedup, f_cnt, f_port, dr, adr, confirmed, dev_addr,
         data_hex, rssi, snr, gateway_count, gateways, frequency, sf, codec, error) = r
        gone = p.dropped(dev_eui)
        radio = "radio" not in gone
        return (
            p.time(time), p.time(received_at), p.dev_eui(dev_eui), p.device_name(dev_eui),
            p.deduplication_id(dedup), f_cnt, f_port, dr if radio else None, adr, confirmed,
            p.dev_addr(dev_addr) if dev_addr else None,
            None if "data" in gone else data_hex,
            rssi if radio else None, snr if radio else None,
            gateway_count if radio else None,
            ";".join(p.gateway_id(g) for g in gateways.split(";")) if gateways and radio
            else None,
            frequency if radio else None, sf if radio else None, codec, error,
        )

    return pseudonymised


def _event_shaper(p: Pseudonymiser | None) -> Shaper:
    if p is None:
        def raw(r: Row) -> Row:
            # Events are stored as received; ChirpStack sends one line, but a line break
            # inside one would split a JSON Lines record, so such an event is re-written.
            text: str = r[0]
            if "\n" in text or "\r" in text:
                text = json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))
            return (text,)

        return raw

    def pseudonymised(r: Row) -> Row:
        event = p.uplink_event(json.loads(r[0]), format_time=iso)
        return (json.dumps(event, ensure_ascii=False, separators=(",", ":")),)

    return pseudonymised

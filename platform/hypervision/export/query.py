"""What each export kind reads: its SQL and its output columns.

- `measurements`: time, dev_eui, device_name, metric, value, unit; ordered by time,
  device and metric.
- `uplinks` as JSON Lines: each uplink's event exactly as ChirpStack sent it (the stored
  `event` text), one per line; ordered by time.
- `uplinks` as CSV or Parquet: the flat columns of UPLINK_COLUMNS; ordered by time.

Each export is one statement, `COPY (SELECT …) TO STDOUT`, whose SELECT gives the output
columns already shaped (names, pseudonyms, coarsened times, dropped fields) and written
in the format's text (formats.py): the rows never pass through Python. The only
exception is a pseudonymised export of raw uplink events, whose JSON is rebuilt from an
allow-list by `Pseudonymiser.uplink_event` (`Plan.shape`).

Shape of the statement: an inner SELECT reads the rows, computes what the output needs
more than once (a device's pseudonym is both its DevEUI and its name) and sorts them; the
outer SELECT writes each column. Filters become WHERE clauses composed with psycopg.sql,
values always as parameters (COPY cannot take bound parameters: psycopg quotes them into
the statement; the pseudonymisation key never goes there, see pseudonym.py). The time
range is half-open: start <= time < end.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql

from hypervision import pseudonym as ps
from hypervision.export.cursor import Snapshot
from hypervision.export.formats import (
    COPY_OPTIONS,
    Column,
    JsonText,
    iso,
    json_safe,
    json_string_sql,
    select_list,
)
from hypervision.pseudonym import Pseudonymiser
from ingest.decode.metrics import METRICS

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
# Rows in byte order of their texts, whatever the database's collation: the same order
# on every server.
MEASUREMENT_ORDER = ("time", "dev_eui", "metric")
UPLINK_ORDER = ("time", "deduplication_id")

Row = tuple[Any, ...]
Shaper = Callable[[Row], Row]
_T = sql.Identifier("t")
_S = sql.Identifier("s")


@dataclass(frozen=True)
class Plan:
    """The statement of one export. `shape` is None for a COPY statement whose output is
    the file's bytes (CSV, JSON Lines, or the CSV that becomes Parquet); otherwise the
    statement is a SELECT whose rows `shape` turns into JSON lines."""

    statement: sql.Composed
    count: sql.Composed
    params: dict[str, Any]
    columns: Sequence[Column]
    shape: Shaper | None = None


def _col(name: str, table: sql.Identifier = _T) -> sql.Composed:
    return sql.SQL("{}.{}").format(table, sql.Identifier(name))


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
        clauses.append(sql.SQL("t.time >= %(start)s"))
        params["start"] = start
    if end is not None:
        clauses.append(sql.SQL("t.time < %(end)s"))
        params["end"] = end
    if devices:
        clauses.append(sql.SQL("t.dev_eui = ANY(%(devices)s::text[])"))
        params["devices"] = list(devices)
    if metrics and kind == "measurements":
        clauses.append(sql.SQL("t.metric = ANY(%(metrics)s::text[])"))
        params["metrics"] = list(metrics)
    if since is not None:
        # Rows whose writing transaction the cursor's snapshot did not see (cursor.py).
        params["xmax"] = since.xmax
        if since.in_progress:
            clauses.append(sql.SQL(
                "(t.ingested_xid >= %(xmax)s::bigint"
                " OR t.ingested_xid = ANY(%(xip)s::bigint[]))"))
            params["xip"] = list(since.in_progress)
        else:
            clauses.append(sql.SQL("t.ingested_xid >= %(xmax)s::bigint"))
    if not clauses:
        return sql.SQL(""), params
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses), params


def _order(keys: Sequence[str], table: sql.Identifier) -> sql.Composed:
    def key(name: str) -> sql.Composable:
        if name in ("dev_eui", "metric"):
            return sql.SQL('{} COLLATE "C"').format(_col(name, table))
        return _col(name, table)

    return sql.SQL(", ").join(key(k) for k in keys)


def _names_join(names: Mapping[str, str], params: dict[str, Any],
                fmt: str) -> tuple[sql.Composable, sql.Composable]:
    """A device's name from the mapping the caller gave: a join on a small table. For
    JSON Lines the names are JSON already (json.dumps escapes as to_json does)."""
    if not names:
        return sql.SQL(""), sql.SQL("NULL::text")
    params["name_keys"] = list(names)
    params["name_values"] = [
        json.dumps(v, ensure_ascii=False) if fmt == "jsonl" and v is not None else v
        for v in names.values()]
    return (sql.SQL(" LEFT JOIN unnest(%(name_keys)s::text[], %(name_values)s::text[])"
                    " AS n(dev_eui, name) ON n.dev_eui = t.dev_eui"),
            sql.SQL("n.name"))


def _json_safe(params: dict[str, Any], names: Mapping[str, str]) -> sql.Composable:
    """The texts a JSON line may write between quotes without escaping: the member's
    DevEUIs and the catalogue's metric names and units (formats.json_string_sql)."""
    known = {*names, *METRICS, *(m.unit for m in METRICS.values())}
    params["json_safe"] = sorted(t for t in known if json_safe(t))
    return sql.SQL("%(json_safe)s::text[]")


def _statement(inner: Sequence[tuple[str, sql.Composable]], source: sql.Composable,
               where: sql.Composable, order: Sequence[str], fmt: str,
               columns: Sequence[Column], outer: Sequence[sql.Composable]) -> sql.Composed:
    """COPY (SELECT outer FROM (SELECT inner FROM source WHERE … ORDER BY …) s) TO STDOUT.

    The inner query's ORDER BY keeps the planner from merging the two levels, so what
    it computes (pseudonyms) is computed once per row; the outer ORDER BY repeats the
    inner one, which the planner sees is already satisfied (no second sort)."""
    select = sql.SQL(
        "SELECT {outer} FROM (SELECT {inner} FROM {source}{where} ORDER BY {inner_order})"
        " AS s ORDER BY {outer_order}"
    ).format(
        outer=select_list(fmt, columns, outer),
        inner=sql.SQL(", ").join(sql.SQL("{} AS {}").format(e, sql.Identifier(n))
                                 for n, e in inner),
        source=source, where=where, inner_order=_order(order, _T),
        outer_order=_order(order, _S),
    )
    return sql.SQL("COPY ({}) TO STDOUT ({})").format(select, COPY_OPTIONS[fmt])


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
    table = sql.SQL("{} AS t").format(sql.Identifier(schema, kind))
    count = sql.SQL("SELECT count(*) FROM {}{}").format(table, where)
    if kind == "uplinks" and fmt == "jsonl":
        return _event_plan(table, where, count, params, p)
    if p is not None:
        table = sql.SQL("{}, {}").format(table, ps.sql_key_source())
    if kind == "measurements":
        return _measurement_plan(table, where, count, params, fmt, names, p)
    return _uplink_plan(table, where, count, params, fmt, names, p)


def _s(name: str) -> sql.Composed:
    return _col(name, _S)


def _measurement_plan(table: sql.Composable, where: sql.Composable, count: sql.Composed,
                      params: dict[str, Any], fmt: str, names: Mapping[str, str],
                      p: Pseudonymiser | None) -> Plan:
    inner: list[tuple[str, sql.Composable]] = [
        (c, _col(c)) for c in ("time", "dev_eui", "metric", "value", "unit")]
    if p is None:
        join, name = _names_join(names, params, fmt)
        table = sql.SQL("{}{}").format(table, join)
        inner.append(("name", name))
        outer = [_s("time"), _s("dev_eui"), _s("name"), _s("metric"), _s("value"), _s("unit")]
        if fmt == "jsonl":
            safe = _json_safe(params, names)
            outer[1] = json_string_sql(_s("dev_eui"), safe)
            outer[2] = JsonText([sql.SQL("coalesce(s.name, 'null')")])
    else:
        inner.append(("pseudonym", ps.sql_pseudonym("dev_eui", sql.SQL("lower(t.dev_eui)"),
                                                    16)))
        outer = [ps.sql_coarsen(p.coarsen, _s("time")), _s("pseudonym"),
                 sql.SQL("'device-' || s.pseudonym"), _s("metric"), _s("value"), _s("unit")]
        if fmt == "jsonl":
            safe = _json_safe(params, {})
            # Hexadecimal digits: nothing to escape.
            outer[1] = JsonText([sql.SQL("'\"' || s.pseudonym || '\"'")])
            outer[2] = JsonText([sql.SQL("'\"device-' || s.pseudonym || '\"'")])
    if fmt == "jsonl":
        outer[3] = json_string_sql(_s("metric"), safe)
        outer[5] = json_string_sql(_s("unit"), safe)
    statement = _statement(inner, table, where, MEASUREMENT_ORDER, fmt, MEASUREMENT_COLUMNS,
                           outer)
    return Plan(statement, count, params, MEASUREMENT_COLUMNS)


# The flat columns of an uplink, as the inner query gives them. Text conversions happen
# in the server, which does them faster than Python.
_UPLINK_VALUES: tuple[tuple[str, str], ...] = (
    ("time", "t.time"), ("received_at", "t.received_at"), ("dev_eui", "t.dev_eui"),
    ("deduplication_id", "t.deduplication_id"), ("f_cnt", "t.f_cnt"), ("f_port", "t.f_port"),
    ("dr", "t.dr"), ("adr", "t.adr"), ("confirmed", "t.confirmed"), ("dev_addr", "t.dev_addr"),
    ("data_hex", "encode(t.data, 'hex')"), ("rssi", "t.rssi"),
    ("snr", "t.snr::numeric::float8"), ("gateway_count", "t.gateway_count"),
    ("gateways", "nullif(array_to_string(t.gateways, ';'), '')"),
    ("frequency", "t.frequency"), ("spreading_factor", "t.spreading_factor"),
    ("codec", "t.codec"), ("decode_error", "t.decode_error"),
)
_RADIO = ("dr", "rssi", "snr", "gateway_count", "gateways", "frequency", "spreading_factor")


def _dropped(p: Pseudonymiser, field: str, params: dict[str, Any]) -> sql.Composable:
    """True for the rows of devices whose `field` the recipient does not get."""
    devices = p.devices_dropping(field)
    if devices is None:
        return sql.SQL("true")
    if not devices:
        return sql.SQL("false")
    params[f"drop_{field}"] = devices
    return sql.SQL("lower(t.dev_eui) = ANY({}::text[])").format(
        sql.Placeholder(f"drop_{field}"))


def _uplink_plan(table: sql.Composable, where: sql.Composable, count: sql.Composed,
                 params: dict[str, Any], fmt: str, names: Mapping[str, str],
                 p: Pseudonymiser | None) -> Plan:
    inner: list[tuple[str, sql.Composable]] = [(n, sql.SQL(e)) for n, e in _UPLINK_VALUES]
    if p is None:
        join, name = _names_join(names, params, fmt)
        table = sql.SQL("{}{}").format(table, join)
        inner.append(("name", name))
        outer: list[sql.Composable] = [_s(n) for n, _ in _UPLINK_VALUES]
        outer.insert(3, _s("name"))
        outer[4] = sql.SQL("s.deduplication_id::text")
        statement = _statement(inner, table, where, UPLINK_ORDER, fmt, UPLINK_COLUMNS, outer)
        return Plan(statement, count, params, UPLINK_COLUMNS)

    # Pseudonymised: what Pseudonymiser does to a row, column by column.
    gateway = ps.sql_pseudonym("gateway_id", sql.SQL("lower(g.id)"), 16)
    inner += [
        ("pseudonym", ps.sql_pseudonym("dev_eui", sql.SQL("lower(t.dev_eui)"), 16)),
        ("dedup_hmac", ps.sql_hmac("deduplication_id",
                                   sql.SQL("lower(t.deduplication_id::text)"))),
        ("addr_pseudonym", sql.SQL("CASE WHEN t.dev_addr <> '' THEN {} END").format(
            ps.sql_pseudonym("dev_addr", sql.SQL("lower(t.dev_addr)"), 8))),
        # The gateways' text split on ';', each id replaced, joined again.
        ("gateway_pseudonyms", sql.SQL(
            "(SELECT string_agg({}, ';' ORDER BY g.n) FROM unnest(string_to_array("
            "nullif(array_to_string(t.gateways, ';'), ''), ';')) WITH ORDINALITY AS g(id, n))"
        ).format(gateway)),
        ("radio_dropped", _dropped(p, "radio", params)),
        ("data_dropped", _dropped(p, "data", params)),
    ]

    def unless(dropped: str, name: str) -> sql.Composable:
        return sql.SQL("CASE WHEN NOT s.{} THEN {} END").format(sql.Identifier(dropped),
                                                                _s(name))

    outer = [
        ps.sql_coarsen(p.coarsen, _s("time")), ps.sql_coarsen(p.coarsen, _s("received_at")),
        _s("pseudonym"), sql.SQL("'device-' || s.pseudonym"),
        ps.sql_deduplication_id(_s("dedup_hmac")), _s("f_cnt"), _s("f_port"),
        unless("radio_dropped", "dr"), _s("adr"), _s("confirmed"), _s("addr_pseudonym"),
        unless("data_dropped", "data_hex"), unless("radio_dropped", "rssi"),
        unless("radio_dropped", "snr"), unless("radio_dropped", "gateway_count"),
        unless("radio_dropped", "gateway_pseudonyms"), unless("radio_dropped", "frequency"),
        unless("radio_dropped", "spreading_factor"), _s("codec"), _s("decode_error"),
    ]
    statement = _statement(inner, table, where, UPLINK_ORDER, fmt, UPLINK_COLUMNS, outer)
    return Plan(statement, count, params, UPLINK_COLUMNS)


def _event_plan(table: sql.Composable, where: sql.Composable, count: sql.Composed,
                params: dict[str, Any], p: Pseudonymiser | None) -> Plan:
    order = _order(UPLINK_ORDER, _T)
    if p is None:
        # Events are stored as received. ChirpStack sends one line; a line break in a
        # stored event can only be whitespace between JSON tokens (the json type refuses
        # one inside a string), so it becomes a space: the same JSON, on one line.
        select = sql.SQL(
            "SELECT CASE WHEN strpos(t.event::text, E'\\n') > 0"
            " OR strpos(t.event::text, E'\\r') > 0"
            " THEN translate(t.event::text, E'\\r\\n', '  ') ELSE t.event::text END"
            " FROM {}{} ORDER BY {}"
        ).format(table, where, order)
        statement = sql.SQL("COPY ({}) TO STDOUT ({})").format(select, COPY_OPTIONS["jsonl"])
        return Plan(statement, count, params, EVENT_COLUMNS)

    def pseudonymised(r: Row) -> Row:
        event = p.uplink_event(json.loads(r[0]), format_time=iso)
        return (json.dumps(event, ensure_ascii=False, separators=(",", ":")),)

    select = sql.SQL("SELECT t.event::text FROM {}{} ORDER BY {}").format(table, where, order)
    return Plan(select, count, params, EVENT_COLUMNS, shape=pseudonymised)

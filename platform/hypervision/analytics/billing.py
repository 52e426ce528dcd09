"""The billing run: for every water meter of a member, its index at the billing date, the
consumption over the billing period and what a billing clerk must check (see
analytics/README.md, "Billing").

1. The billing date D is local midnight at the start of D in the member's time zone; the
   period runs from its start (`--from`, else the date of the member's previous completed
   billing export, else the meter's first reading) to D.
2. The index at D is the reading taken at D, else a linear interpolation between the
   readings around D (water.interpolate: a rollover between them is followed, a meter
   swap gives the old meter's last reading). It is `estimated` when no reading lies
   within CLOSE of D, or across a meter swap; `gap_days` is the time between the
   readings it was computed from (since the last reading when none follows).
3. The consumption is the sum of the meter's hourly volumes over the period (water_hourly:
   rollovers and swaps counted, reverse flows negative), so that it matches the
   dashboards' figures; the index at the period's start is computed as in step 2.
4. Flags: `rollover`, `meter-swap`, `reverse-flow`, `gap` (index events between
   readings that overlap the period, so that a rollover just after D, which the index at
   D was interpolated across, is flagged), `no-data` (no reading at or before D, or none
   in the period).
The run reads the member's schema with whatever connection it is given (the API's reader
role, the CLI's administrator) and yields lines meter by meter, in batches, so that a
member with tens of thousands of meters streams without holding them all.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from hypervision.analytics import water
from hypervision.analytics.config import MemberAnalytics
from hypervision.analytics.members import Device, devices

CLOSE = dt.timedelta(days=1)
BATCH = 1000
EXPORT_ACTION = "export.csv"
EXPORT_TARGET = "billing"
# The CSV's columns, in order (documented in platform/README.md, "Billing run").
COLUMNS = ("meter_id", "dev_eui", "name", "address", "index_date", "index_m3", "estimated",
           "gap_days", "method", "period_start", "index_start_m3", "consumption_m3", "flags")
FLAGS = {"rollover": "rollover", "replacement": "meter-swap", "backflow": "reverse-flow",
         "gap": "gap"}


@dataclass(frozen=True)
class Line:
    """One meter's billing line."""

    meter_id: str
    dev_eui: str
    name: str
    address: str | None
    at: dt.datetime
    index_l: float | None
    estimated: bool
    gap_days: float | None
    method: str
    period_start: dt.datetime | None
    index_start_l: float | None
    consumption_l: float | None
    flags: tuple[str, ...]


def billing_instant(day: dt.date, timezone: str) -> dt.datetime:
    """Step 1: local midnight at the start of `day`, in UTC."""
    return dt.datetime.combine(day, dt.time(0), ZoneInfo(timezone)).astimezone(dt.UTC)


def previous_billing(control: psycopg.Connection, slug: str, before: dt.date) -> dt.date | None:
    """The billing date of the member's last completed billing export before `before`
    (hv.audit_log, which the control connection reads)."""
    row = control.execute(
        """
        SELECT max((params ->> 'date')::date) FROM hv.audit_log
        WHERE member_slug = %s AND action = %s AND target = %s
          AND params ->> 'completed' = 'true' AND (params ->> 'date')::date < %s
        """,
        (slug, EXPORT_ACTION, EXPORT_TARGET, before),
    ).fetchone()
    return row[0] if row else None


def _readings(conn: psycopg.Connection, schema: str, euis: list[str],
              at: Sequence[dt.datetime]) -> dict[str, tuple[tuple | None, tuple | None]]:
    """Per meter, the readings at or before and at or after its instant."""
    rows = conn.execute(
        sql.SQL(
            """
            SELECT r.dev_eui, b.time, b.value, a.time, a.value
            FROM unnest(%(euis)s::text[], %(at)s::timestamptz[]) AS r(dev_eui, at)
            LEFT JOIN LATERAL (
                SELECT m.time, m.value FROM {s}.measurements m
                WHERE m.dev_eui = r.dev_eui AND m.metric = %(metric)s AND m.time <= r.at
                ORDER BY m.time DESC LIMIT 1) b ON true
            LEFT JOIN LATERAL (
                SELECT m.time, m.value FROM {s}.measurements m
                WHERE m.dev_eui = r.dev_eui AND m.metric = %(metric)s AND m.time >= r.at
                ORDER BY m.time LIMIT 1) a ON true
            """
        ).format(s=sql.Identifier(schema)),
        {"euis": euis, "at": list(at), "metric": water.INDEX},
    ).fetchall()
    return {r[0]: ((r[1], r[2]) if r[1] is not None else None,
                   (r[3], r[4]) if r[3] is not None else None) for r in rows}


def _first_readings(conn: psycopg.Connection, schema: str,
                    euis: list[str]) -> dict[str, dt.datetime]:
    rows = conn.execute(
        sql.SQL(
            """
            SELECT r.dev_eui, (SELECT m.time FROM {s}.measurements m
                               WHERE m.dev_eui = r.dev_eui AND m.metric = %(metric)s
                               ORDER BY m.time LIMIT 1)
            FROM unnest(%(euis)s::text[]) AS r(dev_eui)
            """
        ).format(s=sql.Identifier(schema)),
        {"euis": euis, "metric": water.INDEX},
    ).fetchall()
    return {r[0]: r[1] for r in rows if r[1] is not None}


def _period(conn: psycopg.Connection, schema: str, euis: list[str],
            starts: Sequence[dt.datetime], end: dt.datetime
            ) -> tuple[dict[str, float], dict[str, set[str]], set[str]]:
    """Per meter over [start, end): litres consumed, kinds of index events, and whether a
    reading fell in the period."""
    s = sql.Identifier(schema)
    params = {"euis": euis, "starts": list(starts), "end": end, "metric": water.INDEX}
    volumes: dict[str, float] = dict(conn.execute(
        sql.SQL(
            """
            SELECT r.dev_eui, sum(h.volume_l)
            FROM unnest(%(euis)s::text[], %(starts)s::timestamptz[]) AS r(dev_eui, start)
            JOIN {s}.water_hourly h ON h.dev_eui = r.dev_eui
                 AND h.bucket >= date_trunc('hour', r.start) AND h.bucket < %(end)s
            GROUP BY r.dev_eui
            """
        ).format(s=s), params).fetchall())
    kinds: dict[str, set[str]] = {}
    for dev_eui, kind in conn.execute(
        sql.SQL(
            """
            SELECT DISTINCT r.dev_eui, e.kind
            FROM unnest(%(euis)s::text[], %(starts)s::timestamptz[]) AS r(dev_eui, start)
            JOIN {s}.water_events e ON e.dev_eui = r.dev_eui
                 AND e.time > r.start AND e.previous_time < %(end)s
            """
        ).format(s=s), params).fetchall():
        kinds.setdefault(dev_eui, set()).add(kind)
    read = {r[0] for r in conn.execute(
        sql.SQL(
            """
            SELECT r.dev_eui
            FROM unnest(%(euis)s::text[], %(starts)s::timestamptz[]) AS r(dev_eui, start)
            WHERE EXISTS (SELECT 1 FROM {s}.measurements m WHERE m.dev_eui = r.dev_eui
                          AND m.metric = %(metric)s AND m.time >= r.start
                          AND m.time <= %(end)s)
            """
        ).format(s=s), params).fetchall()}
    return volumes, kinds, read


def _gap_days(found: water.IndexAt) -> float | None:
    if found.method == "measured":
        return 0.0
    if found.before is not None and found.after is not None:
        return (found.after[0] - found.before[0]) / dt.timedelta(days=1)
    if found.before is not None:
        return (found.at - found.before[0]) / dt.timedelta(days=1)
    return None


def _close(found: water.IndexAt) -> bool:
    """A reading within CLOSE of the instant."""
    return any(r is not None and abs(r[0] - found.at) <= CLOSE
               for r in (found.before, found.after))


def meter_id(device: Device) -> str:
    """The member's own id of the meter (variable `meter_id`), else its name."""
    return device.variables.get("meter_id") or device.name


def _batch(conn: psycopg.Connection, schema: str, meters: list[Device],
           addresses: dict[str, str | None], config: MemberAnalytics, at: dt.datetime,
           start: dt.datetime | None) -> Iterator[Line]:
    euis = [d.dev_eui for d in meters]
    firsts = {} if start is not None else _first_readings(conn, schema, euis)
    starts = {e: start if start is not None else firsts.get(e, at) for e in euis}
    at_end = _readings(conn, schema, euis, [at] * len(euis))
    at_start = _readings(conn, schema, euis, [starts[e] for e in euis])
    volumes, kinds, read = _period(conn, schema, euis, [starts[e] for e in euis], at)
    for device in meters:
        e = device.dev_eui
        meter = water.Meter.of(device, config.water)
        found = water.interpolate(meter, e, at, *at_end[e])
        begin = water.interpolate(meter, e, starts[e], *at_start[e])
        flags = [FLAGS[k] for k in ("rollover", "replacement", "backflow", "gap")
                 if k in kinds.get(e, ())]
        if found.index_l is None or e not in read:
            flags.append("no-data")
        yield Line(
            meter_id=meter_id(device), dev_eui=e, name=device.name, address=addresses.get(e),
            at=at, index_l=found.index_l,
            estimated=found.index_l is not None and (
                found.method == "replaced-between" or not _close(found)),
            gap_days=_gap_days(found), method=found.method,
            period_start=starts[e] if e in firsts or start is not None else None,
            index_start_l=begin.index_l,
            consumption_l=volumes.get(e, 0.0) if e in read or e in volumes else None,
            flags=tuple(flags),
        )


def run(conn: psycopg.Connection, schema: str, config: MemberAnalytics, at: dt.datetime,
        start: dt.datetime | None = None, dev_euis: Iterable[str] | None = None
        ) -> Iterator[Line]:
    """Billing lines of the member's active water meters (those of `dev_euis` only, when
    given), in meter id order, `BATCH` meters at a time."""
    if start is not None and start >= at:
        raise ValueError("the period must start before the billing date")
    known = devices(conn, schema, category="water")
    wanted = None if dev_euis is None else set(dev_euis)
    rows = conn.execute(
        sql.SQL("SELECT dev_eui, address FROM {}.analytics_devices"
                " WHERE category = 'water' AND active").format(sql.Identifier(schema))
    ).fetchall()
    addresses = {r[0]: r[1] for r in rows}
    meters = sorted((known[e] for e in addresses if e in known
                     and (wanted is None or e in wanted)),
                    key=lambda d: (meter_id(d), d.dev_eui))
    for i in range(0, len(meters), BATCH):
        yield from _batch(conn, schema, meters[i:i + BATCH], addresses, config, at, start)


def _number(value: float | None, digits: int, comma: bool) -> str:
    if value is None:
        return ""
    text = f"{value:.{digits}f}"
    return text.replace(".", ",") if comma else text


def csv_chunks(lines: Iterable[Line], timezone: str, decimal_comma: bool = False,
               every: int = 500) -> Iterator[str]:
    """The CSV (`;`-separated, header first, one line per meter), `every` lines a chunk.
    Indexes and volumes in m³ with three decimals (litres), times in local time."""
    zone = ZoneInfo(timezone)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for n, line in enumerate(lines, start=1):
        writer.writerow([
            line.meter_id, line.dev_eui, line.name, line.address or "",
            line.at.astimezone(zone).strftime("%Y-%m-%dT%H:%M"),
            _number(None if line.index_l is None else line.index_l / 1000, 3, decimal_comma),
            "1" if line.estimated else "0",
            _number(line.gap_days, 1, decimal_comma), line.method,
            "" if line.period_start is None
            else line.period_start.astimezone(zone).strftime("%Y-%m-%dT%H:%M"),
            _number(None if line.index_start_l is None else line.index_start_l / 1000, 3,
                    decimal_comma),
            _number(None if line.consumption_l is None else line.consumption_l / 1000, 3,
                    decimal_comma),
            ",".join(line.flags),
        ])
        if n % every == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()

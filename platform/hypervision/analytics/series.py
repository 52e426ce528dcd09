"""Reading series and hour arithmetic shared by the analytics modules.

`around` fetches, for many devices in one query, the readings of a metric inside a time
range plus a few on each side: the neighbours decide what the first and last readings of
the range mean (a consumption, a collection, how long a CO2 value holds).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import LiteralString

import psycopg
from psycopg import sql

HOUR = dt.timedelta(hours=1)
Range = tuple[dt.datetime, dt.datetime]


def floor_hour(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(t: dt.datetime) -> dt.datetime:
    f = floor_hour(t)
    return f if f == t else f + HOUR


def hours(start: dt.datetime, end: dt.datetime) -> Iterator[dt.datetime]:
    """The UTC hour buckets overlapping [start, end) (none when the range is empty)."""
    if start >= end:
        return
    h = floor_hour(start)
    while h < end:
        yield h
        h += HOUR


def hour_parts(a: float, b: float, lo: float, hi: float) -> Iterator[tuple[int, float]]:
    """(UTC hour start, seconds) of [a, b) within [lo, hi), hour by hour; all in epoch
    seconds. The arithmetic of the analytics loops, where datetimes would cost too much."""
    a, b = max(a, lo), min(b, hi)
    h = int(a // 3600) * 3600
    while h < b:
        yield h, min(b, h + 3600.0) - max(a, float(h))
        h += 3600


def from_epoch(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def around(
    conn: psycopg.Connection,
    schema: str,
    metric: str,
    ranges: Mapping[str, Range],
    before: int = 1,
    after: int = 1,
) -> dict[str, list[tuple[dt.datetime, float]]]:
    """Per device, the readings of `metric` in [lo, hi), the `before` readings preceding
    lo and the `after` readings from hi on, in time order."""
    if not ranges:
        return {}
    euis = list(ranges)
    rows = conn.execute(
        sql.SQL(
            """
            SELECT r.dev_eui, x.time, x.value
            FROM unnest(%(euis)s::text[], %(lo)s::timestamptz[], %(hi)s::timestamptz[])
                 AS r(dev_eui, lo, hi)
            CROSS JOIN LATERAL (
                (SELECT m.time, m.value FROM {s}.measurements m
                 WHERE m.dev_eui = r.dev_eui AND m.metric = %(metric)s AND m.time < r.lo
                 ORDER BY m.time DESC LIMIT %(before)s)
                UNION ALL
                (SELECT m.time, m.value FROM {s}.measurements m
                 WHERE m.dev_eui = r.dev_eui AND m.metric = %(metric)s
                   AND m.time >= r.lo AND m.time < r.hi)
                UNION ALL
                (SELECT m.time, m.value FROM {s}.measurements m
                 WHERE m.dev_eui = r.dev_eui AND m.metric = %(metric)s AND m.time >= r.hi
                 ORDER BY m.time LIMIT %(after)s)
            ) x
            ORDER BY r.dev_eui, x.time
            """
        ).format(s=sql.Identifier(schema)),
        {
            "euis": euis,
            "lo": [ranges[e][0] for e in euis],
            "hi": [ranges[e][1] for e in euis],
            "metric": metric,
            "before": before,
            "after": after,
        },
        binary=True,  # timestamps load faster in binary
    ).fetchall()
    out: dict[str, list[tuple[dt.datetime, float]]] = {e: [] for e in euis}
    for dev_eui, time, value in rows:
        out[dev_eui].append((time, value))
    return out


def copy_rows(
    conn: psycopg.Connection, schema: str, table: str, columns: tuple[str, ...], rows: list[tuple]
) -> None:
    """COPY rows into one of the member's tables."""
    if not rows:
        return
    statement = sql.SQL("COPY {}.{} ({}) FROM STDIN").format(
        sql.Identifier(schema), sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
    )
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def range_params(ranges: Mapping[str, Range]) -> dict[str, list]:
    """Per-device ranges as the three arrays the statements below unnest."""
    euis = list(ranges)
    return {"euis": euis, "lo": [ranges[e][0] for e in euis],
            "hi": [ranges[e][1] for e in euis]}


RANGES = sql.SQL(
    "unnest(%(euis)s::text[], %(lo)s::timestamptz[], %(hi)s::timestamptz[]) AS r(dev_eui, lo, hi)")
_BOUNDS = {"[)": (">=", "<"), "(]": (">", "<=")}


def delete_in_ranges(
    conn: psycopg.Connection, schema: str, table: str, column: str,
    ranges: Mapping[str, Range], bounds: str = "[)",
) -> None:
    """Delete each device's rows of `table` whose `column` falls in its range: [lo, hi)
    or (lo, hi]."""
    low, high = _BOUNDS[bounds]
    conn.execute(
        sql.SQL(
            "DELETE FROM {s}.{t} w USING {ranges}"
            " WHERE w.dev_eui = r.dev_eui AND w.{c} {low} r.lo AND w.{c} {high} r.hi"
        ).format(s=sql.Identifier(schema), t=sql.Identifier(table), ranges=RANGES,
                 c=sql.Identifier(column), low=sql.SQL(low), high=sql.SQL(high)),
        range_params(ranges),
    )


def local_days(
    conn: psycopg.Connection, schema: str, source: str, target: str, columns: LiteralString,
    aggregates: LiteralString, ranges: Mapping[str, Range], timezone: str,
) -> None:
    """Recompute the daily table `target` from the hourly table `source` for the member's
    local days overlapping each device's range: delete those days, insert them again.
    `columns` and `aggregates` are the caller's constant SQL."""
    days = sql.SQL(
        "SELECT dev_eui, (lo AT TIME ZONE %(tz)s)::date AS d0,"
        " ((hi - interval '1 microsecond') AT TIME ZONE %(tz)s)::date AS d1 FROM {ranges}"
    ).format(ranges=RANGES)
    params = {**range_params(ranges), "tz": timezone}
    s = sql.Identifier(schema)
    conn.execute(
        sql.SQL("DELETE FROM {s}.{t} w USING ({days}) x"
                " WHERE w.dev_eui = x.dev_eui AND w.day BETWEEN x.d0 AND x.d1").format(
            s=s, t=sql.Identifier(target), days=days),
        params,
    )
    conn.execute(
        sql.SQL(
            """
            INSERT INTO {s}.{t} (day, dev_eui, {columns})
            SELECT (h.bucket AT TIME ZONE %(tz)s)::date, h.dev_eui, {aggregates}
            FROM ({days}) x JOIN {s}.{source} h ON h.dev_eui = x.dev_eui
                 AND h.bucket >= (x.d0::timestamp AT TIME ZONE %(tz)s)
                 AND h.bucket < ((x.d1 + 1)::timestamp AT TIME ZONE %(tz)s)
            GROUP BY 1, 2
            """
        ).format(s=s, t=sql.Identifier(target), source=sql.Identifier(source), days=days,
                 columns=sql.SQL(columns), aggregates=sql.SQL(aggregates)),
        params,
    )


"""Aggregates fit for open publication: k-suppressed, per area and day.

A household's water consumption is personal data; the sum over a street of three houses
is nearly as telling. Every published figure is therefore an aggregate over a group of
devices, and a group with fewer than k devices contributing that day (k = HV_OPENDATA_K,
5 by default) is suppressed: its row says so, with neither value nor device count.

1. `device_days` computes one value per device and local day from a member's
   measurements: the water consumed (sum of the increases of the meter index between
   consecutive readings; a decrease, i.e. a meter swap or rollover, counts for nothing),
   or the mean fill level of a container.
2. `aggregate` groups those by area (`area_of`: the device's `area` once tenancy/spec.py
   declares it, the member's name until then) and suppresses small groups.

No total across groups is published: with one group suppressed, a total would give it
away by subtraction. Days are calendar days in Europe/Paris, the members' time zone.
See platform/hypervision/public/README.md.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql

DAY_ZONE = "Europe/Paris"
Kind = Literal["water", "fill"]
# What each aggregate reads, and how device values combine within a group.
KINDS: dict[Kind, dict[str, str]] = {
    "water": {"metric": "water.index", "data_class": "water-consumption", "unit": "L",
              "combine": "sum"},
    "fill": {"metric": "fill.level", "data_class": "waste-fill", "unit": "%",
             "combine": "mean"},
}


@dataclass(frozen=True)
class DeviceDay:
    dev_eui: str
    day: dt.date
    value: float


@dataclass(frozen=True)
class Aggregate:
    """One published row. When suppressed, `value` and `devices` are None."""

    day: dt.date
    area: str
    value: float | None
    devices: int | None
    suppressed: bool

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "day": self.day.isoformat()}


_WATER = """
SELECT dev_eui, (time AT TIME ZONE %(zone)s)::date AS day, sum(delta)
FROM (
    SELECT dev_eui, time, value - lag(value) OVER (PARTITION BY dev_eui ORDER BY time) AS delta
    FROM {schema}.measurements
    WHERE metric = %(metric)s AND dev_eui = ANY(%(devices)s)
      AND time >= %(start)s - interval '2 days' AND time < %(end)s
) readings
WHERE delta >= 0 AND time >= %(start)s
GROUP BY 1, 2
"""
_FILL = """
SELECT dev_eui, (time AT TIME ZONE %(zone)s)::date AS day, avg(value)
FROM {schema}.measurements
WHERE metric = %(metric)s AND dev_eui = ANY(%(devices)s)
  AND time >= %(start)s AND time < %(end)s
GROUP BY 1, 2
"""


def _local_midnight(day: dt.date) -> dt.datetime:
    from zoneinfo import ZoneInfo

    return dt.datetime.combine(day, dt.time(), tzinfo=ZoneInfo(DAY_ZONE))


def area_of(conn: psycopg.Connection, member: str, kind: Kind) -> dict[str, str]:
    """DevEUI -> area of the member's devices of the aggregate's data class."""
    rows = conn.execute(
        """
        SELECT d.dev_eui, coalesce(nullif(d.spec->>'area', ''), m.name)
        FROM hv.devices d JOIN hv.members m ON m.slug = d.member_slug
        WHERE d.member_slug = %s AND d.spec->>'data_class' = %s
        """,
        (member, KINDS[kind]["data_class"]),
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def device_days(conn: psycopg.Connection, schema: str, kind: Kind, devices: Iterable[str],
                first: dt.date, last: dt.date) -> list[DeviceDay]:
    """One value per device and local day, from `first` to `last` included."""
    query = sql.SQL(_WATER if kind == "water" else _FILL).format(schema=sql.Identifier(schema))
    rows = conn.execute(query, {
        "zone": DAY_ZONE, "metric": KINDS[kind]["metric"], "devices": list(devices),
        "start": _local_midnight(first), "end": _local_midnight(last + dt.timedelta(days=1)),
    }).fetchall()
    return [DeviceDay(r[0], r[1], float(r[2])) for r in rows]


def aggregate(values: Iterable[DeviceDay], areas: Mapping[str, str], k: int,
              combine: str = "sum") -> list[Aggregate]:
    """Group device-days by (day, area); suppress groups of fewer than k devices.

    Devices without an area are left out entirely (they belong to no published group).
    """
    if k < 2:
        raise ValueError("k must be at least 2: a group of one device is that device")
    groups: dict[tuple[dt.date, str], list[float]] = defaultdict(list)
    for v in values:
        area = areas.get(v.dev_eui)
        if area is not None:
            groups[(v.day, area)].append(v.value)
    result = []
    for (day, area), found in sorted(groups.items()):
        if len(found) < k:
            result.append(Aggregate(day, area, None, None, True))
            continue
        total = sum(found)
        value = total if combine == "sum" else total / len(found)
        result.append(Aggregate(day, area, round(value, 3), len(found), False))
    return result


def member_aggregates(conn: psycopg.Connection, member: str, kind: Kind, first: dt.date,
                      last: dt.date, k: int) -> list[Aggregate]:
    """The published aggregates of one member (superuser connection: reads hv.devices
    and the member's measurements)."""
    row = conn.execute("SELECT schema_name FROM hv.members WHERE slug = %s",
                       (member,)).fetchone()
    if row is None:
        raise LookupError(f"no member {member!r}")
    areas = area_of(conn, member, kind)
    values = device_days(conn, row[0], kind, areas, first, last)
    return aggregate(values, areas, k, KINDS[kind]["combine"])

"""Indoor air per room and hour: CO2, temperature, humidity, time above the CO2 thresholds
during occupied hours, and France's ICONE confinement index (see analytics/README.md,
"Indoor air").

Per sensor and UTC hour, the refresh job writes air_hourly:
1. the occupied seconds of the hour, from the building's calendar (analytics settings
   `air.buildings`, default Monday-Friday 08:00-17:00 Europe/Paris); only hours holding a
   reading, or part of one's hold, have a row: occupied time the sensor missed is not
   counted, so shares of time above thresholds are shares of the time observed;
2. the occupied seconds during which CO2 was above `air.low_ppm` and above `air.high_ppm`
   (strictly), each reading holding until the next one but at most two usual intervals
   of its model (a silent sensor does not keep a room "above" for days);
3. the ICONE counts of the readings taken while occupied: n0 below 1000 ppm, n1 from
   1000 to 1700 ppm, n2 above 1700 ppm;
4. the hour's CO2, temperature and humidity (count, sum, CO2 maximum) from its hourly
   rollups, so that a room's hours are read from air_hourly alone (`derive`).
A room (location.building and location.room of the tenant file; the device name when no
room is given) sums the counts of its sensors and takes the worst sensor's durations.
ICONE over any period is then computed from summed counts: with N = n0 + n1 + n2,
f1 = n1 / N and f2 = n2 / N, ICONE = round((2.5 / log10 2) * log10(1 + f1 + 3 f2)),
halves rounded up (exactly 2.5, when f1 + 3 f2 = 1, gives 3), from 0 (no confinement)
to 5 (extreme).
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from hypervision.analytics import series
from hypervision.analytics.config import AirSettings
from hypervision.analytics.members import Device
from hypervision.analytics.series import Range, ceil_hour, floor_hour

CO2 = "air.co2"
TEMPERATURE = "air.temperature"
HUMIDITY = "air.humidity"
ICONE_N1_FROM = 1000.0  # ppm, included in n1
ICONE_N2_ABOVE = 1700.0  # ppm, excluded from n1
ICONE_TOLERANCE = 1e-9
ICONE_LABELS = ("nul", "faible", "moyen", "élevé", "très élevé", "extrême")


def icone(n0: int, n1: int, n2: int) -> int | None:
    """The ICONE index from the counts of readings (None without readings)."""
    n = n0 + n1 + n2
    if n == 0:
        return None
    x = (2.5 / math.log10(2)) * math.log10(1 + n1 / n + 3 * n2 / n)
    # Halves go up. The only half the formula can reach is 2.5, when f1 + 3 f2 = 1 (all
    # readings between 1000 and 1700 ppm, say): the logarithms put it a hair either side
    # of 2.5, so a tolerance far below any real difference makes it 3, here and in
    # icone_index() alike.
    return math.floor(x + 0.5 + ICONE_TOLERANCE)


def band(ppm: float) -> int:
    """0, 1 or 2: the ICONE count a CO2 reading falls in."""
    if ppm < ICONE_N1_FROM:
        return 0
    return 1 if ppm <= ICONE_N2_ABOVE else 2


@dataclass
class Hour:
    """One sensor's hour (the columns of air_hourly)."""

    occupied_s: float = 0.0
    above_low_s: float = 0.0
    above_high_s: float = 0.0
    n0: int = 0
    n1: int = 0
    n2: int = 0


def hourly(
    readings: Sequence[tuple[dt.datetime, float]],
    occupied: Sequence[Range],
    hold: dt.timedelta,
    lo: dt.datetime,
    hi: dt.datetime,
    low_ppm: float,
    high_ppm: float,
) -> dict[dt.datetime, Hour]:
    """Steps 1-3 of the module docstring for the hours in [lo, hi) that hold a reading
    or part of one. In epoch seconds; `occupied` is in time order and without overlaps
    (Calendar.occupied), so bisection finds the spans a reading meets."""
    lo_s, hi_s, hold_s = lo.timestamp(), hi.timestamp(), hold.total_seconds()
    spans = [(a.timestamp(), b.timestamp()) for a, b in occupied]
    starts = [a for a, _ in spans]
    times = [t.timestamp() for t, _ in readings]
    out: dict[int, Hour] = {}
    for i, t in enumerate(times):
        ppm = readings[i][1]
        end = t + hold_s if i + 1 == len(times) else min(t + hold_s, times[i + 1])
        for h, _ in series.hour_parts(t, end, lo_s, hi_s):
            out.setdefault(h, Hour())
        first = max(0, bisect.bisect_right(starts, t) - 1)
        if lo_s <= t < hi_s and first < len(spans) and spans[first][0] <= t < spans[first][1]:
            row = out.setdefault(int(t // 3600) * 3600, Hour())
            counts = band(ppm)
            row.n0 += counts == 0
            row.n1 += counts == 1
            row.n2 += counts == 2
        if ppm <= low_ppm:
            continue
        for a, b in spans[first:]:
            if a >= end:
                break
            for h, seconds in series.hour_parts(max(a, t), min(b, end), lo_s, hi_s):
                out[h].above_low_s += seconds
                if ppm > high_ppm:
                    out[h].above_high_s += seconds
    for h, row in out.items():
        first = max(0, bisect.bisect_right(starts, h) - 1)
        for a, b in spans[first:]:
            if a >= h + 3600:
                break
            row.occupied_s += max(0.0, min(b, h + 3600.0) - max(a, float(h)))
    return {series.from_epoch(h): row for h, row in out.items()}


def recompute(
    conn: psycopg.Connection,
    schema: str,
    ranges: Mapping[str, Range],
    devices: Mapping[str, Device],
    settings: AirSettings,
    timezone: str = "Europe/Paris",
) -> int:
    """Rewrite air_hourly (and air_daily) of each sensor around the CO2 readings in its
    range; return the number of hours written. Runs in the caller's transaction.

    A reading at t changes the hours its hold and the previous reading's hold reach:
    hours from t - hold to t + hold. Readings one hold further on each side are fetched
    so that every rewritten hour is complete."""
    windows: dict[str, Range] = {}
    for dev_eui, (lo, hi) in ranges.items():
        if dev_eui in devices:
            hold = _hold(devices[dev_eui])
            windows[dev_eui] = (floor_hour(lo - hold), ceil_hour(hi + hold))
    found = series.around(
        conn, schema, CO2,
        {e: (a - _hold(devices[e]), b + _hold(devices[e])) for e, (a, b) in windows.items()},
    )
    rows: list[tuple] = []
    for dev_eui, readings in found.items():
        a, b = windows[dev_eui]
        device = devices[dev_eui]
        occupied = settings.calendar_of(device.building).occupied(a, b)
        for h, x in sorted(hourly(readings, occupied, _hold(device), a, b, settings.low_ppm,
                                  settings.high_ppm).items()):
            rows.append((h, dev_eui, round(x.occupied_s), round(x.above_low_s),
                         round(x.above_high_s), settings.low_ppm, settings.high_ppm,
                         x.n0, x.n1, x.n2))
    if not windows:
        return 0
    series.delete_in_ranges(conn, schema, "air_hourly", "bucket", windows)
    series.copy_rows(conn, schema, "air_hourly",
                     ("bucket", "dev_eui", "occupied_s", "above_low_s", "above_high_s",
                      "low_ppm", "high_ppm", "n0", "n1", "n2"), rows)
    derive(conn, schema, windows, timezone)
    return len(rows)


def derive(
    conn: psycopg.Connection, schema: str, ranges: Mapping[str, Range], timezone: str
) -> None:
    """Recompute what is computed from air_hourly for the hours of each sensor's range
    [lo, hi), in the caller's transaction: the CO2, temperature and humidity of each hour
    (count, sum, CO2 maximum, from rollup_hourly), so that rooms are read from air_hourly
    alone (air.room_hours), and the local days overlapping the range (air_daily)."""
    if not ranges:
        return
    conn.execute(
        sql.SQL(
            """
            UPDATE {s}.air_hourly a
            SET co2_n = x.co2_n, co2_sum = x.co2_sum, co2_max = x.co2_max,
                temperature_n = x.t_n, temperature_sum = x.t_sum,
                humidity_n = x.rh_n, humidity_sum = x.rh_sum
            FROM (
                SELECT h.dev_eui, h.bucket,
                       sum(h.n) FILTER (WHERE h.metric = %(co2)s) AS co2_n,
                       sum(h.sum) FILTER (WHERE h.metric = %(co2)s) AS co2_sum,
                       max(h.max) FILTER (WHERE h.metric = %(co2)s) AS co2_max,
                       sum(h.n) FILTER (WHERE h.metric = %(t)s) AS t_n,
                       sum(h.sum) FILTER (WHERE h.metric = %(t)s) AS t_sum,
                       sum(h.n) FILTER (WHERE h.metric = %(rh)s) AS rh_n,
                       sum(h.sum) FILTER (WHERE h.metric = %(rh)s) AS rh_sum
                FROM {ranges} JOIN {s}.rollup_hourly h ON h.dev_eui = r.dev_eui
                     AND h.metric = ANY(ARRAY[%(co2)s, %(t)s, %(rh)s])
                     AND h.bucket >= r.lo AND h.bucket < r.hi
                GROUP BY h.dev_eui, h.bucket) x
            WHERE a.dev_eui = x.dev_eui AND a.bucket = x.bucket
            """
        ).format(s=sql.Identifier(schema), ranges=series.RANGES),
        {**series.range_params(ranges), "co2": CO2, "t": TEMPERATURE, "rh": HUMIDITY},
    )
    series.local_days(conn, schema, "air_hourly", "air_daily",
                      "occupied_s, above_low_s, above_high_s, n0, n1, n2",
                      "sum(h.occupied_s), sum(h.above_low_s), sum(h.above_high_s), sum(h.n0),"
                      " sum(h.n1), sum(h.n2)", ranges, timezone)


def _hold(device: Device) -> dt.timedelta:
    return 2 * dt.timedelta(seconds=device.typical_interval_s)


# Reading the results -------------------------------------------------------------------

@dataclass(frozen=True)
class RoomHour:
    building: str
    room: str
    hour: dt.datetime
    co2_avg: float | None
    co2_max: float | None
    temperature_avg: float | None
    humidity_avg: float | None
    occupied_s: int
    above_low_s: int
    above_high_s: int


def room_hours(
    conn: psycopg.Connection, schema: str, start: dt.datetime, end: dt.datetime,
    building: str | None = None,
) -> list[RoomHour]:
    """CO2, temperature and humidity per room and hour in [start, end), with the
    occupied seconds and the seconds above the thresholds (worst sensor of the room)."""
    rows = conn.execute(
        sql.SQL(
            """
            WITH r AS (
                SELECT coalesce(d.building, '') AS building, coalesce(d.room, d.name) AS room,
                       h.bucket,
                       sum(h.sum) FILTER (WHERE h.metric = 'air.co2')
                         / nullif(sum(h.n) FILTER (WHERE h.metric = 'air.co2'), 0) AS co2,
                       max(h.max) FILTER (WHERE h.metric = 'air.co2') AS co2_max,
                       sum(h.sum) FILTER (WHERE h.metric = 'air.temperature')
                         / nullif(sum(h.n) FILTER (WHERE h.metric = 'air.temperature'), 0) AS t,
                       sum(h.sum) FILTER (WHERE h.metric = 'air.humidity')
                         / nullif(sum(h.n) FILTER (WHERE h.metric = 'air.humidity'), 0) AS rh
                FROM {s}.rollup_hourly h JOIN {s}.analytics_devices d USING (dev_eui)
                WHERE d.category = 'air' AND h.bucket >= %(start)s AND h.bucket < %(end)s
                  AND h.metric IN ('air.co2', 'air.temperature', 'air.humidity')
                  AND (%(building)s::text IS NULL OR d.building = %(building)s)
                GROUP BY 1, 2, 3),
            o AS (
                SELECT coalesce(d.building, '') AS building, coalesce(d.room, d.name) AS room,
                       a.bucket, max(a.occupied_s) AS occupied_s,
                       max(a.above_low_s) AS above_low_s, max(a.above_high_s) AS above_high_s
                FROM {s}.air_hourly a JOIN {s}.analytics_devices d USING (dev_eui)
                WHERE a.bucket >= %(start)s AND a.bucket < %(end)s
                  AND (%(building)s::text IS NULL OR d.building = %(building)s)
                GROUP BY 1, 2, 3)
            SELECT building, room, bucket, r.co2, r.co2_max, r.t, r.rh,
                   coalesce(o.occupied_s, 0), coalesce(o.above_low_s, 0),
                   coalesce(o.above_high_s, 0)
            FROM r FULL JOIN o USING (building, room, bucket)
            ORDER BY building, room, bucket
            """
        ).format(s=sql.Identifier(schema)),
        {"start": start, "end": end, "building": building},
    ).fetchall()
    return [RoomHour(*r) for r in rows]


@dataclass(frozen=True)
class RoomPeriod:
    """A room over a period: occupied time, time above thresholds, ICONE."""

    building: str
    room: str
    occupied_s: int
    above_low_s: int
    above_high_s: int
    n0: int
    n1: int
    n2: int
    icone: int | None

    @property
    def icone_label(self) -> str | None:
        return None if self.icone is None else ICONE_LABELS[self.icone]

    @property
    def above_low_share(self) -> float | None:
        return self.above_low_s / self.occupied_s if self.occupied_s else None

    @property
    def above_high_share(self) -> float | None:
        return self.above_high_s / self.occupied_s if self.occupied_s else None


def rooms(
    conn: psycopg.Connection, schema: str, start: dt.datetime, end: dt.datetime,
    building: str | None = None,
) -> list[RoomPeriod]:
    """Per room over [start, end): occupied seconds, seconds above the two thresholds
    (per hour, the worst sensor), ICONE counts of all its sensors and the ICONE index."""
    rows = conn.execute(
        sql.SQL(
            """
            WITH per_hour AS (
                SELECT coalesce(d.building, '') AS building, coalesce(d.room, d.name) AS room,
                       a.bucket, max(a.occupied_s) AS occupied_s,
                       max(a.above_low_s) AS above_low_s, max(a.above_high_s) AS above_high_s,
                       sum(a.n0) AS n0, sum(a.n1) AS n1, sum(a.n2) AS n2
                FROM {s}.air_hourly a JOIN {s}.analytics_devices d USING (dev_eui)
                WHERE a.bucket >= %(start)s AND a.bucket < %(end)s
                  AND (%(building)s::text IS NULL OR d.building = %(building)s)
                GROUP BY 1, 2, 3)
            SELECT building, room, sum(occupied_s), sum(above_low_s), sum(above_high_s),
                   sum(n0), sum(n1), sum(n2)
            FROM per_hour GROUP BY building, room ORDER BY building, room
            """
        ).format(s=sql.Identifier(schema)),
        {"start": start, "end": end, "building": building},
    ).fetchall()
    return [
        RoomPeriod(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[6]),
                   int(r[7]), icone(int(r[5]), int(r[6]), int(r[7])))
        for r in rows
    ]

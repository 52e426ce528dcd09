"""Water meters: consumption from the cumulative index, leaks, backflow, abnormal days and
the index at a date for billing (see analytics/README.md, "Water").

How a step between two consecutive readings (index v0 then v1) is read:
1. v1 >= v0: the meter turned by v1 - v0 litres;
2. v1 < v0, the meter declares its rollover (device variable `index_rollover_l`, R) and
   v0 >= 0.9 R while v1 <= 0.1 R: the counter wrapped; R - v0 + v1 litres;
3. v1 < v0 and v1 <= `replacement_max_l`: a new meter, starting from zero; v1 litres
   (what the old meter counted after its last reading is unknown, hence not counted);
4. otherwise the index went back: backflow, v1 - v0 (negative) litres, so that sums over
   any period still equal the index difference.
A step's volume is spread evenly over the time between the two readings; a step longer
than three usual intervals (at least two hours) is a gap, and the hours it covers are
`estimated`. The refresh job writes the result per hour (water_hourly), per local day
(water_daily, with the day's index, readings and history statistics) and month
(water_monthly), with rollovers, replacements, backflows and gaps in water_events, and the
night flows in water_nights (`derive`).
"""

from __future__ import annotations

import datetime as dt
import itertools
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from hypervision.analytics import series
from hypervision.analytics.config import WaterSettings
from hypervision.analytics.members import Device
from hypervision.analytics.series import HOUR, Range, floor_hour

INDEX = "water.index"
MIN_GAP = dt.timedelta(hours=2)
Bucket = Literal["hour", "day", "month"]


@dataclass(frozen=True)
class Meter:
    """How to read one meter's index steps."""

    rollover_l: float | None = None
    replacement_max_l: float = 100.0
    gap: dt.timedelta = MIN_GAP

    @classmethod
    def of(cls, device: Device, settings: WaterSettings) -> Meter:
        return cls(
            rollover_l=device.number("index_rollover_l"),
            replacement_max_l=settings.replacement_max_l,
            gap=max(MIN_GAP, 3 * dt.timedelta(seconds=device.typical_interval_s)),
        )


@dataclass(frozen=True, slots=True)
class Step:
    """What the meter did between two consecutive readings."""

    start: dt.datetime
    end: dt.datetime
    index_before: float
    index_after: float
    volume_l: float
    kind: str | None  # None, 'rollover', 'replacement' or 'backflow'
    gap: bool


def step(meter: Meter, t0: dt.datetime, v0: float, t1: dt.datetime, v1: float) -> Step:
    """Read one step (numbered cases in the module docstring)."""
    gap = t1 - t0 > meter.gap
    if v1 >= v0:
        return Step(t0, t1, v0, v1, v1 - v0, None, gap)
    r = meter.rollover_l
    if r and v0 >= 0.9 * r and v1 <= 0.1 * r:
        return Step(t0, t1, v0, v1, r - v0 + v1, "rollover", gap)
    if v1 <= meter.replacement_max_l:
        return Step(t0, t1, v0, v1, v1, "replacement", gap)
    return Step(t0, t1, v0, v1, v1 - v0, "backflow", gap)


def steps(meter: Meter, readings: Sequence[tuple[dt.datetime, float]]) -> list[Step]:
    return [step(meter, a[0], a[1], b[0], b[1]) for a, b in itertools.pairwise(readings)]


def spread(
    all_steps: Sequence[Step], lo: dt.datetime, hi: dt.datetime
) -> dict[dt.datetime, tuple[float, bool]]:
    """Volume and `estimated` per UTC hour in [lo, hi), each step spread evenly in time."""
    cells: dict[int, list] = {}
    lo_s, hi_s = lo.timestamp(), hi.timestamp()
    for s in all_steps:
        t0, t1 = s.start.timestamp(), s.end.timestamp()
        rate = s.volume_l / (t1 - t0)
        for h, seconds in series.hour_parts(t0, t1, lo_s, hi_s):
            cell = cells.get(h)
            if cell is None:
                cells[h] = [rate * seconds, s.gap]
            else:
                cell[0] += rate * seconds
                cell[1] = cell[1] or s.gap
    return {series.from_epoch(h): (v, e) for h, (v, e) in cells.items()}


def recompute(
    conn: psycopg.Connection,
    schema: str,
    ranges: Mapping[str, Range],
    devices: Mapping[str, Device],
    settings: WaterSettings,
    timezone: str,
) -> int:
    """Rewrite water_hourly, water_daily, water_monthly and water_events of each meter around the
    readings in its range; return the number of hours written. Runs in the caller's
    transaction.

    Readings in [lo, hi) change the steps from the last reading before lo to the first
    reading from hi on; two readings are fetched on each side so that the hours holding
    those two boundary readings are complete too.
    """
    found = series.around(conn, schema, INDEX, ranges, before=2, after=2)
    hourly: list[tuple] = []
    events: list[tuple] = []
    written: dict[str, Range] = {}
    anchors: dict[str, Range] = {}
    for dev_eui, readings in found.items():
        if not readings or dev_eui not in devices:
            continue
        lo, hi = ranges[dev_eui]
        before = [r for r in readings if r[0] < lo]
        after = [r for r in readings if r[0] >= hi]
        first = before[-1][0] if before else readings[0][0]
        last = after[0][0] if after else readings[-1][0]
        w_lo, w_hi = floor_hour(first), floor_hour(last) + HOUR
        written[dev_eui] = (w_lo, w_hi)
        anchors[dev_eui] = (first, last)
        meter = Meter.of(devices[dev_eui], settings)
        all_steps = steps(meter, readings)
        for h, (volume, estimated) in sorted(spread(all_steps, w_lo, w_hi).items()):
            hourly.append((h, dev_eui, volume, estimated))
        for s in all_steps:
            if first < s.end <= last:
                for kind in ([s.kind] if s.kind else []) + (["gap"] if s.gap else []):
                    events.append((s.end, dev_eui, kind, s.start, s.index_before,
                                   s.index_after, s.volume_l))
    if not written:
        return 0
    series.delete_in_ranges(conn, schema, "water_hourly", "bucket", written)
    # Events end at a reading: the steps ending in (first, last].
    series.delete_in_ranges(conn, schema, "water_events", "time", anchors, "(]")
    series.copy_rows(conn, schema, "water_hourly",
                     ("bucket", "dev_eui", "volume_l", "estimated"), hourly)
    series.copy_rows(conn, schema, "water_events",
                     ("time", "dev_eui", "kind", "previous_time", "index_before", "index_after",
                      "volume_l"), events)
    series.local_days(conn, schema, "water_hourly", "water_daily", "volume_l, estimated, hours",
                      "sum(h.volume_l), bool_or(h.estimated), count(*)", written, timezone)
    derive(conn, schema, written, settings, timezone)
    return len(hourly)


def derive(
    conn: psycopg.Connection, schema: str, ranges: Mapping[str, Range],
    settings: WaterSettings, timezone: str, nights: Mapping[str, Range] | None = None,
) -> None:
    """Recompute what is computed from water_hourly and water_daily around each meter's
    range [lo, hi), in the caller's transaction:
    1. the highest index and the number of readings of its local days (rollup_daily);
    2. the history statistics of those days and of the `abnormal_history_days` after
       them, whose history they are part of;
    3. the local months overlapping the range (water_monthly);
    4. the nights overlapping the range, or the range given in `nights` (water_nights).
    What the dashboards and views read, so that none of it is computed at each read."""
    if not ranges:
        return
    _day_readings(conn, schema, ranges, timezone)
    _history(conn, schema, ranges, settings, timezone)
    _months(conn, schema, ranges, timezone)
    _nights(conn, schema, ranges if nights is None else nights, settings, timezone)


def _days(extra_days: int = 0) -> sql.Composed:
    """Per meter, the first and last local day of its range (plus `extra_days`)."""
    return sql.SQL(
        "SELECT dev_eui, (lo AT TIME ZONE %(tz)s)::date AS d0,"
        " ((hi - interval '1 microsecond') AT TIME ZONE %(tz)s)::date + {extra} AS d1"
        " FROM {ranges}").format(extra=sql.Literal(extra_days), ranges=series.RANGES)


def _day_readings(
    conn: psycopg.Connection, schema: str, ranges: Mapping[str, Range], timezone: str
) -> None:
    """Step 1 of `derive`: index and readings of each day, from the daily rollups (the
    same local days as water_daily's); a day inside a gap has none."""
    s = sql.Identifier(schema)
    conn.execute(
        sql.SQL(
            """
            UPDATE {s}.water_daily w SET index_l = r.max, readings = r.n
            FROM ({days}) x JOIN {s}.rollup_daily r ON r.dev_eui = x.dev_eui
                 AND r.metric = %(metric)s AND r.day BETWEEN x.d0 AND x.d1
            WHERE w.dev_eui = r.dev_eui AND w.day = r.day
              AND (w.index_l, w.readings) IS DISTINCT FROM (r.max, r.n)
            """
        ).format(s=s, days=_days()),
        {**series.range_params(ranges), "tz": timezone, "metric": INDEX},
    )


def _history(
    conn: psycopg.Connection, schema: str, ranges: Mapping[str, Range],
    settings: WaterSettings, timezone: str,
) -> None:
    """Step 2 of `derive`: per day, the number, mean and (population) standard deviation
    of the meter's measured days among the `abnormal_history_days` before it, as
    `abnormal_days` computes them."""
    s = sql.Identifier(schema)
    h = settings.abnormal_history_days
    conn.execute(
        sql.SQL(
            """
            WITH x AS ({days}),
            s AS (
                SELECT w.dev_eui, w.day, x.d0,
                       count(*) FILTER (WHERE NOT w.estimated) OVER past AS n,
                       avg(w.volume_l) FILTER (WHERE NOT w.estimated) OVER past AS mean,
                       stddev_pop(w.volume_l) FILTER (WHERE NOT w.estimated) OVER past AS sd
                FROM x JOIN {s}.water_daily w ON w.dev_eui = x.dev_eui
                     AND w.day >= x.d0 - %(h)s AND w.day <= x.d1
                WINDOW past AS (PARTITION BY w.dev_eui ORDER BY w.day
                                RANGE BETWEEN %(span)s PRECEDING AND interval '1 day' PRECEDING))
            UPDATE {s}.water_daily w
            SET history_days = s.n, history_mean_l = s.mean, history_stdev_l = s.sd
            FROM s
            WHERE w.dev_eui = s.dev_eui AND w.day = s.day AND s.day >= s.d0
              AND (w.history_days, w.history_mean_l, w.history_stdev_l)
                  IS DISTINCT FROM (s.n, s.mean, s.sd)
            """
        ).format(s=s, days=_days(h)),
        {**series.range_params(ranges), "tz": timezone, "h": h, "span": dt.timedelta(days=h)},
    )


def _nights(
    conn: psycopg.Connection, schema: str, ranges: Mapping[str, Range],
    settings: WaterSettings, timezone: str,
) -> None:
    """Step 4 of `derive`: the nights ending from the first local day of each range to
    the day after its last (a night starting the evening before ends the next day), as
    `nights` computes them: delete them, insert them again from water_hourly."""
    if not ranges:
        return
    s = sql.Identifier(schema)
    params = {**series.range_params(ranges), "tz": timezone, "start": settings.night_start,
              "end": settings.night_end,
              "eve": 0 if settings.night_start < settings.night_end else 1}
    conn.execute(
        sql.SQL("DELETE FROM {s}.water_nights n USING ({days}) x"
                " WHERE n.dev_eui = x.dev_eui AND n.night BETWEEN x.d0 AND x.d1").format(
            s=s, days=_days(1)),
        params,
    )
    conn.execute(
        sql.SQL(
            """
            WITH windows AS (
                SELECT x.dev_eui, g.night, w.a, w.b,
                       ceil(extract(epoch FROM w.b - time_bucket('1 hour', w.a)) / 3600)::integer
                           AS expected
                FROM ({days}) x
                CROSS JOIN LATERAL (SELECT d::date AS night FROM generate_series(
                    x.d0::timestamp, x.d1::timestamp, interval '1 day') d) g
                CROSS JOIN LATERAL (
                    SELECT ((g.night - %(eve)s) + %(start)s::time) AT TIME ZONE %(tz)s AS a,
                           (g.night + %(end)s::time) AT TIME ZONE %(tz)s AS b) w)
            INSERT INTO {s}.water_nights
                (night, dev_eui, min_volume_l, hours, estimated_hours, expected_hours)
            SELECT n.night, n.dev_eui, h.min_volume_l, h.hours, h.estimated, n.expected
            FROM windows n
            -- One index probe per meter and night, whatever the number of windows.
            CROSS JOIN LATERAL (
                SELECT min(h.volume_l) AS min_volume_l, count(*) AS hours,
                       count(*) FILTER (WHERE h.estimated) AS estimated
                FROM {s}.water_hourly h
                WHERE h.dev_eui = n.dev_eui AND h.bucket >= n.a AND h.bucket < n.b) h
            WHERE h.hours > 0
            """
        ).format(s=s, days=_days(1)),
        params,
    )
    _runs(conn, schema, ranges, timezone)


def _runs(conn: psycopg.Connection, schema: str, ranges: Mapping[str, Range],
          timezone: str) -> None:
    """Step 4 of `derive`, continued: each night's run of continuous nights ending with it
    (`run_nights`; 0 when the flow fell to zero or the night is incomplete) and the sum of
    their smallest flows (`run_volume_l`), from the first night of each range to the
    meter's last, counting on from the stored run of the night before: what the leak
    dashboard reads (dash_water_leaks) instead of walking back through nights."""
    s = sql.Identifier(schema)
    conn.execute(
        sql.SQL(
            """
            WITH x AS ({days}),
            w AS (
                SELECT n.dev_eui, n.night, n.min_volume_l, x.d0
                FROM x JOIN {s}.water_nights n ON n.dev_eui = x.dev_eui
                     AND n.night >= x.d0 - 1
                WHERE n.min_volume_l > 0 AND n.estimated_hours = 0
                  AND n.hours >= n.expected_hours),
            islands AS (
                SELECT w.*, w.night - row_number() OVER (PARTITION BY w.dev_eui
                                                         ORDER BY w.night)::integer AS grp
                FROM w),
            runs AS (
                SELECT i.dev_eui, i.night,
                       min(i.night) OVER island AS start,
                       i.night - min(i.night) OVER island AS k,
                       sum(i.min_volume_l) OVER island_so_far AS volume,
                       first_value(i.min_volume_l) OVER island_so_far AS first_volume
                FROM islands i
                WINDOW island AS (PARTITION BY i.dev_eui, i.grp),
                       island_so_far AS (PARTITION BY i.dev_eui, i.grp ORDER BY i.night)),
            u AS (
                SELECT n.dev_eui, n.night,
                       coalesce(CASE WHEN r.start = x.d0 - 1 THEN p.run_nights + r.k
                                     ELSE r.k + 1 END, 0) AS run_nights,
                       coalesce(CASE WHEN r.start = x.d0 - 1
                                     THEN p.run_volume_l + r.volume - r.first_volume
                                     ELSE r.volume END, 0) AS run_volume_l
                FROM x JOIN {s}.water_nights n ON n.dev_eui = x.dev_eui AND n.night >= x.d0
                LEFT JOIN runs r ON r.dev_eui = n.dev_eui AND r.night = n.night
                LEFT JOIN {s}.water_nights p ON p.dev_eui = n.dev_eui AND p.night = x.d0 - 1)
            UPDATE {s}.water_nights n
            SET run_nights = u.run_nights, run_volume_l = u.run_volume_l
            FROM u
            WHERE n.dev_eui = u.dev_eui AND n.night = u.night
              AND (n.run_nights, n.run_volume_l) IS DISTINCT FROM (u.run_nights, u.run_volume_l)
            """
        ).format(s=s, days=_days()),
        {**series.range_params(ranges), "tz": timezone},
    )


def _months(
    conn: psycopg.Connection, schema: str, ranges: Mapping[str, Range], timezone: str
) -> None:
    """Recompute water_monthly for the local months overlapping each meter's range."""
    s = sql.Identifier(schema)
    months = sql.SQL(
        "SELECT dev_eui, date_trunc('month', lo AT TIME ZONE %(tz)s)::date AS m0,"
        " date_trunc('month', (hi - interval '1 microsecond') AT TIME ZONE %(tz)s)::date AS m1"
        " FROM {ranges}").format(ranges=series.RANGES)
    params = {**series.range_params(ranges), "tz": timezone}
    conn.execute(
        sql.SQL("DELETE FROM {s}.water_monthly w USING ({months}) x"
                " WHERE w.dev_eui = x.dev_eui AND w.month BETWEEN x.m0 AND x.m1").format(
            s=s, months=months),
        params,
    )
    conn.execute(
        sql.SQL(
            """
            INSERT INTO {s}.water_monthly (month, dev_eui, volume_l, estimated, days)
            SELECT date_trunc('month', d.day)::date, d.dev_eui, sum(d.volume_l),
                   bool_or(d.estimated), count(*)
            FROM ({months}) x JOIN {s}.water_daily d ON d.dev_eui = x.dev_eui
                 AND d.day >= x.m0 AND d.day < (x.m1 + interval '1 month')
            GROUP BY 1, 2
            """
        ).format(s=s, months=months),
        params,
    )


# Reading the results -------------------------------------------------------------------


@dataclass(frozen=True)
class Consumption:
    start: dt.datetime
    volume_l: float
    estimated: bool
    hours: int


def consumption(
    conn: psycopg.Connection,
    schema: str,
    dev_eui: str,
    start: dt.datetime,
    end: dt.datetime,
    bucket: Bucket = "hour",
    timezone: str = "Europe/Paris",
) -> list[Consumption]:
    """Litres consumed per hour, local day or local month in [start, end)."""
    if bucket not in ("hour", "day", "month"):
        raise ValueError(f"bucket must be hour, day or month, not {bucket!r}")
    rows = conn.execute(
        sql.SQL(
            """
            SELECT date_trunc(%(unit)s, bucket, %(tz)s) AS start, sum(volume_l),
                   bool_or(estimated), count(*)
            FROM {s}.water_hourly
            WHERE dev_eui = %(dev)s AND bucket >= %(start)s AND bucket < %(end)s
            GROUP BY 1 ORDER BY 1
            """
        ).format(s=sql.Identifier(schema)),
        {"unit": bucket, "tz": timezone, "dev": dev_eui, "start": start, "end": end},
    ).fetchall()
    return [Consumption(r[0], r[1], r[2], r[3]) for r in rows]


@dataclass(frozen=True)
class IndexAt:
    """A meter's index at a given time, for billing."""

    dev_eui: str
    at: dt.datetime
    index_l: float | None
    estimated: bool
    method: str  # measured, interpolated, last-reading, replaced-between, no-reading
    before: tuple[dt.datetime, float] | None
    after: tuple[dt.datetime, float] | None


def index_at(
    conn: psycopg.Connection, schema: str, dev_eui: str, at: dt.datetime, meter: Meter
) -> IndexAt:
    """The index at `at`: the reading taken at that instant when there is one, else a
    linear interpolation between the readings around it (estimated); after the last
    reading, the last reading (estimated); across a meter replacement, the old meter's
    last reading (estimated: the swap time is unknown)."""
    s = sql.Identifier(schema)
    before = conn.execute(
        sql.SQL("SELECT time, value FROM {s}.measurements WHERE dev_eui = %s AND metric = %s"
                " AND time <= %s ORDER BY time DESC LIMIT 1").format(s=s),
        (dev_eui, INDEX, at),
    ).fetchone()
    after = conn.execute(
        sql.SQL("SELECT time, value FROM {s}.measurements WHERE dev_eui = %s AND metric = %s"
                " AND time >= %s ORDER BY time LIMIT 1").format(s=s),
        (dev_eui, INDEX, at),
    ).fetchone()
    return interpolate(meter, dev_eui, at, (before[0], before[1]) if before else None,
                       (after[0], after[1]) if after else None)


def interpolate(meter: Meter, dev_eui: str, at: dt.datetime,
                b: tuple[dt.datetime, float] | None,
                a: tuple[dt.datetime, float] | None) -> IndexAt:
    """`index_at` from the readings at or before `at` (b) and at or after it (a)."""
    if b is not None and b[0] == at:
        return IndexAt(dev_eui, at, b[1], False, "measured", b, a)
    if b is None:
        return IndexAt(dev_eui, at, None, True, "no-reading", None, a)
    if a is None:
        return IndexAt(dev_eui, at, b[1], True, "last-reading", b, None)
    s_ = step(meter, b[0], b[1], a[0], a[1])
    if s_.kind == "replacement":
        return IndexAt(dev_eui, at, b[1], True, "replaced-between", b, a)
    fraction = (at - b[0]) / (a[0] - b[0])
    value = b[1] + s_.volume_l * fraction
    if s_.kind == "rollover" and meter.rollover_l and value >= meter.rollover_l:
        value -= meter.rollover_l
    return IndexAt(dev_eui, at, value, True, "interpolated", b, a)


@dataclass(frozen=True)
class Event:
    time: dt.datetime
    dev_eui: str
    kind: str
    previous_time: dt.datetime
    index_before: float
    index_after: float
    volume_l: float


def events(
    conn: psycopg.Connection, schema: str, start: dt.datetime, end: dt.datetime,
    kinds: Sequence[str] | None = None, dev_eui: str | None = None,
) -> list[Event]:
    """Rollovers, replacements, backflows and gaps in [start, end)."""
    rows = conn.execute(
        sql.SQL(
            """
            SELECT time, dev_eui, kind, previous_time, index_before, index_after, volume_l
            FROM {s}.water_events
            WHERE time >= %(start)s AND time < %(end)s
              AND (%(kinds)s::text[] IS NULL OR kind = ANY(%(kinds)s))
              AND (%(dev)s::text IS NULL OR dev_eui = %(dev)s)
            ORDER BY time, dev_eui
            """
        ).format(s=sql.Identifier(schema)),
        {"start": start, "end": end, "kinds": list(kinds) if kinds else None, "dev": dev_eui},
    ).fetchall()
    return [Event(*r) for r in rows]


@dataclass(frozen=True)
class Night:
    """A meter's night: its smallest hourly volume over the night window."""

    dev_eui: str
    night: dt.date  # the date the night ends on
    min_flow_l_h: float
    hours: int
    expected_hours: int
    estimated_hours: int

    @property
    def never_zero(self) -> bool:
        """Flow all night long, on measured hours only: a night with a missing or
        estimated hour proves nothing."""
        return (self.hours == self.expected_hours and self.estimated_hours == 0
                and self.min_flow_l_h > 0)


def night_window(night: dt.date, settings: WaterSettings, zone: ZoneInfo) -> Range:
    """The night ending on `night` (from the evening before when the window spans
    midnight), in UTC."""
    start_day = night if settings.night_start < settings.night_end else night - dt.timedelta(1)
    a = dt.datetime.combine(start_day, settings.night_start, zone).astimezone(dt.UTC)
    b = dt.datetime.combine(night, settings.night_end, zone).astimezone(dt.UTC)
    return a, b


def nights(
    conn: psycopg.Connection, schema: str, first: dt.date, last: dt.date,
    settings: WaterSettings, timezone: str, dev_eui: str | None = None,
) -> list[Night]:
    """Night flows per meter, for nights ending from `first` to `last` included."""
    zone = ZoneInfo(timezone)
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    windows = [night_window(d, settings, zone) for d in days]
    rows = conn.execute(
        sql.SQL(
            """
            SELECT h.dev_eui, n.night, min(h.volume_l), count(*),
                   count(*) FILTER (WHERE h.estimated), n.expected
            FROM unnest(%(nights)s::date[], %(a)s::timestamptz[], %(b)s::timestamptz[],
                        %(expected)s::integer[]) AS n(night, a, b, expected)
            JOIN {s}.water_hourly h ON h.bucket >= n.a AND h.bucket < n.b
            WHERE %(dev)s::text IS NULL OR h.dev_eui = %(dev)s
            GROUP BY h.dev_eui, n.night, n.expected
            ORDER BY h.dev_eui, n.night
            """
        ).format(s=sql.Identifier(schema)),
        {
            "nights": days,
            "a": [w[0] for w in windows],
            "b": [w[1] for w in windows],
            "expected": [len(list(series.hours(w[0], w[1]))) for w in windows],
            "dev": dev_eui,
        },
    ).fetchall()
    return [Night(r[0], r[1], r[2], r[3], r[5], r[4]) for r in rows]


@dataclass(frozen=True)
class Leak:
    dev_eui: str
    nights: int
    first_night: dt.date
    last_night: dt.date
    min_flow_l_h: float


def leaks(
    conn: psycopg.Connection, schema: str, last_night: dt.date, settings: WaterSettings,
    timezone: str, nights_required: int | None = None, dev_eui: str | None = None,
) -> list[Leak]:
    """Meters whose flow never fell to zero on each of the last N nights up to
    `last_night` (N = `nights_required`, default the member's `water.leak_nights`)."""
    n = nights_required or settings.leak_nights
    first = last_night - dt.timedelta(days=n - 1)
    per_meter: dict[str, list[Night]] = {}
    for night in nights(conn, schema, first, last_night, settings, timezone, dev_eui):
        per_meter.setdefault(night.dev_eui, []).append(night)
    out = []
    for meter, found in per_meter.items():
        if len(found) == n and all(x.never_zero for x in found):
            out.append(Leak(meter, n, first, last_night, min(x.min_flow_l_h for x in found)))
    return out


@dataclass(frozen=True)
class DayCheck:
    """A day's consumption against the same meter's previous days."""

    dev_eui: str
    day: dt.date
    volume_l: float
    history_days: int
    mean_l: float | None
    stdev_l: float | None
    abnormal: bool


def abnormal_days(
    conn: psycopg.Connection, schema: str, first: dt.date, last: dt.date,
    settings: WaterSettings, dev_eui: str | None = None, only_abnormal: bool = True,
) -> list[DayCheck]:
    """Days from `first` to `last` whose consumption exceeds the mean of the meter's
    previous `abnormal_history_days` days by more than `abnormal_sigmas` standard
    deviations (population), the deviation being at least 10 % of the mean and 1 litre,
    so that a perfectly regular meter is not flagged for a few litres; only with at
    least `abnormal_min_days` days of history. Estimated days are not judged."""
    h = settings.abnormal_history_days
    rows = conn.execute(
        sql.SQL(
            """
            SELECT dev_eui, day, volume_l, estimated FROM {s}.water_daily
            WHERE day >= %(from)s AND day <= %(to)s
              AND (%(dev)s::text IS NULL OR dev_eui = %(dev)s)
            ORDER BY dev_eui, day
            """
        ).format(s=sql.Identifier(schema)),
        {"from": first - dt.timedelta(days=h), "to": last, "dev": dev_eui},
    ).fetchall()
    history: dict[str, list[tuple[dt.date, float, bool]]] = {}
    for r in rows:
        history.setdefault(r[0], []).append((r[1], r[2], r[3]))
    out = []
    for meter, days in history.items():
        for i, (day, volume, estimated) in enumerate(days):
            if day < first or estimated:
                continue
            past = [v for d, v, e in days[:i] if (day - d).days <= h and not e]
            if len(past) < settings.abnormal_min_days:
                if not only_abnormal:
                    out.append(DayCheck(meter, day, volume, len(past), None, None, False))
                continue
            mean = statistics.fmean(past)
            stdev = statistics.pstdev(past)
            floor = max(stdev, 0.1 * mean, 1.0)
            abnormal = volume > mean + settings.abnormal_sigmas * floor
            if abnormal or not only_abnormal:
                out.append(DayCheck(meter, day, volume, len(past), mean, stdev, abnormal))
    return out

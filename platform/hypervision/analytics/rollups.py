"""Hourly and daily rollups per device and metric, kept up to date incrementally, and the
derived analytics tables refreshed with them (see analytics/README.md, "Rollups").

The Apache edition of TimescaleDB has no continuous aggregates, so the platform keeps its
own. Every measurement carries `ingested_xid`, the id of the transaction that wrote it
(tenant migration 0020), and the refresh keeps as its cursor the database snapshot it
last read through, as incremental exports do (hypervision.export.cursor). A refresh of one
member, under a per-member advisory lock, in one transaction:
1. copy the member's devices and settings into its schema (members.sync);
2. take the current snapshot: the next cursor;
3. list the (device, metric, hour) keys of the measurements the previous cursor did not
   see (transaction id at or above its xmax, or in its in-progress list), whatever the
   readings' own times: late readings and re-sent histories land in their own hours, and
   a long transaction's rows are picked up by the first refresh after it commits;
4. recompute those hours from the measurements (rollup_hourly), then the member's local
   days holding them from the hours (rollup_daily);
5. recompute the derived tables of the devices concerned: water (consumption, events,
   each day's index, readings and history statistics, months, nights), indoor air
   (occupancy, thresholds, ICONE counts, hourly averages), waste (collections, each
   container's state); what the dashboards read is kept here, never computed at read
   time from raw readings;
6. recompute gateway activity and radio reception per device for the hours of the
   uplinks stored since the previous run (by the same cursor as the measurements');
7. store the new cursor. A failure rolls everything back; the next run starts again from
   the old cursor. Rows committed between steps 2 and 3 are read twice, which is
   harmless: a recomputation is idempotent;
8. plan the day's collection round again if the containers to collect, the depot or the
   day changed (analytics.rounds; a problem there is reported in the result and leaves
   the rest committed).
The lag is one beat interval (HV_ROLLUP_INTERVAL) plus the run time. `backfill`
recomputes a time range from scratch, slice by slice, for data loaded in bulk or after a
change of settings; the first refresh of a member backfills everything it holds. What is
computed from the rollups and derived tables rather than from the measurements (tenant
migration 0063) is filled for the whole history by the first refresh after that migration
(`rederive`; the dashboards benchmark calls it on its generated rollups).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from hypervision.analytics import air, health, rounds, waste, water
from hypervision.analytics.config import MemberAnalytics
from hypervision.analytics.members import Member, devices, sync
from hypervision.analytics.series import HOUR, Range, floor_hour
from hypervision.export.cursor import Snapshot
from hypervision.settings import Settings

MEASUREMENTS = "measurements"
UPLINKS = "uplinks"
# Its row in rollup_state (with a watermark) says that the columns and tables derived
# from the rollups by tenant migration 0063 were filled for the history before it.
DERIVED = "derived:0063"
# A refresh that kept only a watermark for the uplinks (before they had their own cursor)
# is followed by one that recomputes from the hour that was current this long before it.
UPLINK_MARGIN = dt.timedelta(minutes=10)
# Without a previous run, the hours of the uplinks of this last period are recomputed.
FIRST_UPLINK_HOURS = dt.timedelta(days=8)
MICROSECOND = dt.timedelta(microseconds=1)
DAY = dt.timedelta(days=1)


@dataclass
class RefreshResult:
    member: str
    hours: int = 0
    days: int = 0
    devices: int = 0
    derived_rows: int = 0
    seconds: float = 0.0
    first_run: bool = False
    skipped: str | None = None  # why nothing was done (another refresh holds the lock)
    round_planned: bool = False  # the day's collection round was planned again
    round_error: str | None = None  # why it could not be (the rest is refreshed)


class Busy(RuntimeError):
    """Another refresh or backfill of the same member is running."""


@contextmanager
def member_lock(conn: psycopg.Connection, m: Member) -> Iterator[None]:
    """A session-level advisory lock per member: one refresh or backfill at a time."""
    key = f"hv-rollups:{m.schema}"
    row = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,)).fetchone()
    if not row or not row[0]:
        raise Busy(f"{m.slug}: a rollup refresh or backfill is already running")
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))


def current_snapshot(conn: psycopg.Connection) -> Snapshot:
    row = conn.execute("SELECT pg_current_snapshot()::text").fetchone()
    assert row is not None
    return Snapshot.parse(row[0])


def unseen(since: Snapshot) -> tuple[sql.Composable, dict[str, Any]]:
    """A condition on `ingested_xid`: written by a transaction `since` did not see. The
    lower bound (xmin) lets the BRIN index skip older pages even with in-progress ids."""
    params: dict[str, Any] = {"xmin": since.xmin, "xmax": since.xmax}
    if since.in_progress:
        params["xip"] = list(since.in_progress)
        return sql.SQL(
            "ingested_xid >= %(xmin)s AND (ingested_xid >= %(xmax)s"
            " OR ingested_xid = ANY(%(xip)s))"), params
    return sql.SQL("ingested_xid >= %(xmax)s"), params


def _state(conn: psycopg.Connection, schema: str, stream: str) -> tuple[str | None, Any]:
    row = conn.execute(
        sql.SQL("SELECT snapshot, watermark FROM {}.rollup_state WHERE stream = %s"
                " FOR UPDATE").format(sql.Identifier(schema)),
        (stream,),
    ).fetchone()
    return (row[0], row[1]) if row else (None, None)


def _save_state(
    conn: psycopg.Connection, schema: str, stream: str, *, snapshot: Snapshot | None = None,
    watermark: dt.datetime | None = None, seconds: float | None = None,
    hours: int | None = None, devices_: int | None = None,
) -> None:
    conn.execute(
        sql.SQL(
            """
            INSERT INTO {}.rollup_state AS r (stream, snapshot, watermark, last_run_at,
                                              last_duration_ms, last_hours, last_devices)
            VALUES (%(stream)s, %(snapshot)s, %(wm)s, now(), %(ms)s, %(hours)s, %(devices)s)
            ON CONFLICT (stream) DO UPDATE SET
                snapshot = coalesce(EXCLUDED.snapshot, r.snapshot),
                watermark = coalesce(EXCLUDED.watermark, r.watermark),
                last_run_at = now(),
                last_duration_ms = coalesce(EXCLUDED.last_duration_ms, r.last_duration_ms),
                last_hours = coalesce(EXCLUDED.last_hours, r.last_hours),
                last_devices = coalesce(EXCLUDED.last_devices, r.last_devices)
            """
        ).format(sql.Identifier(schema)),
        {"stream": stream, "snapshot": snapshot.text() if snapshot else None, "wm": watermark,
         "ms": None if seconds is None else seconds * 1000, "hours": hours,
         "devices": devices_},
    )


def _collect_keys(conn: psycopg.Connection, query: sql.Composable, params: dict) -> int:
    """Fill rollup_keys, the (device, metric, hour) keys to recompute, private to this
    transaction. Done as the superuser before switching to the member's owner role, which
    may not create temporary tables (hence the grant)."""
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS rollup_keys"
        " (dev_eui text, metric text, bucket timestamptz) ON COMMIT DELETE ROWS"
    )
    conn.execute("GRANT SELECT ON rollup_keys TO PUBLIC")
    count = conn.execute(
        sql.SQL("INSERT INTO rollup_keys (dev_eui, metric, bucket) ") + query, params).rowcount
    conn.execute("ANALYZE rollup_keys")
    return count


def _as_owner(conn: psycopg.Connection, m: Member) -> None:
    conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(m.owner)))


def _recompute_keys(
    conn: psycopg.Connection, m: Member, config: MemberAnalytics
) -> tuple[int, int]:
    """Step 4: the hours of rollup_keys, then the local days holding them."""
    s = sql.Identifier(m.schema)
    span = conn.execute("SELECT min(bucket), max(bucket), count(*) FROM rollup_keys").fetchone()
    assert span is not None
    if not span[2]:
        return 0, 0
    # One index probe per key, whatever the planner guesses from the fresh chunks' stale
    # statistics: a hash join on the device and metric alone would compare every key with
    # every hour of its series in the range. The cost stays linear in the keys.
    for setting in ("enable_hashjoin", "enable_mergejoin", "enable_memoize"):
        conn.execute(sql.SQL("SET LOCAL {} = off").format(sql.Identifier(setting)))
    # The constant range lets TimescaleDB skip the chunks no key falls in.
    hours = conn.execute(
        sql.SQL(
            """
            INSERT INTO {s}.rollup_hourly AS r
                (bucket, dev_eui, metric, n, min, max, sum, first, last, first_time, last_time)
            SELECT k.bucket, k.dev_eui, k.metric, count(*), min(m.value), max(m.value),
                   sum(m.value), first(m.value, m.time), last(m.value, m.time),
                   min(m.time), max(m.time)
            FROM rollup_keys k JOIN {s}.measurements m
              ON m.dev_eui = k.dev_eui AND m.metric = k.metric
             AND m.time >= k.bucket AND m.time < k.bucket + interval '1 hour'
            WHERE m.time >= %(lo)s AND m.time < %(hi)s
            GROUP BY k.bucket, k.dev_eui, k.metric
            ON CONFLICT (dev_eui, metric, bucket) DO UPDATE SET
                n = EXCLUDED.n, min = EXCLUDED.min, max = EXCLUDED.max, sum = EXCLUDED.sum,
                first = EXCLUDED.first, last = EXCLUDED.last,
                first_time = EXCLUDED.first_time, last_time = EXCLUDED.last_time
            """
        ).format(s=s),
        {"lo": span[0], "hi": span[1] + HOUR},
    ).rowcount
    days = conn.execute(
        sql.SQL(
            """
            WITH d AS (
                SELECT DISTINCT dev_eui, metric, (bucket AT TIME ZONE %(tz)s)::date AS day
                FROM rollup_keys)
            INSERT INTO {s}.rollup_daily AS r
                (day, dev_eui, metric, n, min, max, sum, first, last, first_time, last_time)
            SELECT d.day, d.dev_eui, d.metric, sum(h.n), min(h.min), max(h.max), sum(h.sum),
                   first(h.first, h.first_time), last(h.last, h.last_time),
                   min(h.first_time), max(h.last_time)
            FROM d JOIN {s}.rollup_hourly h
              ON h.dev_eui = d.dev_eui AND h.metric = d.metric
             AND h.bucket >= (d.day::timestamp AT TIME ZONE %(tz)s)
             AND h.bucket < ((d.day + 1)::timestamp AT TIME ZONE %(tz)s)
            WHERE h.bucket >= %(lo)s AND h.bucket < %(hi)s
            GROUP BY d.day, d.dev_eui, d.metric
            ON CONFLICT (dev_eui, metric, day) DO UPDATE SET
                n = EXCLUDED.n, min = EXCLUDED.min, max = EXCLUDED.max, sum = EXCLUDED.sum,
                first = EXCLUDED.first, last = EXCLUDED.last,
                first_time = EXCLUDED.first_time, last_time = EXCLUDED.last_time
            """
        ).format(s=s),
        {"tz": config.timezone, "lo": span[0] - dt.timedelta(days=1),
         "hi": span[1] + dt.timedelta(days=1)},
    ).rowcount
    for setting in ("enable_hashjoin", "enable_mergejoin", "enable_memoize"):
        conn.execute(sql.SQL("SET LOCAL {} = on").format(sql.Identifier(setting)))
    return hours, days


# Per device, the time ranges whose derived rows to recompute, as rounds: each round holds
# at most one range per device (what the derived modules take).
Ranges = Callable[[tuple[str, ...]], list[dict[str, Range]]]
# Dirty hours of one device further apart than this are recomputed as separate ranges, so
# that two late readings a month apart do not make the month in between recomputed.
CLUSTER_GAP = dt.timedelta(hours=6)


def _key_ranges(conn: psycopg.Connection) -> Ranges:
    """Per device, the hours of rollup_keys holding one of the metrics, clustered."""

    def ranges(metrics: tuple[str, ...]) -> list[dict[str, Range]]:
        rows = conn.execute(
            "SELECT DISTINCT dev_eui, bucket FROM rollup_keys WHERE metric = ANY(%s)"
            " ORDER BY dev_eui, bucket",
            (list(metrics),),
        ).fetchall()
        clusters: dict[str, list[list[dt.datetime]]] = {}
        for dev_eui, bucket in rows:
            found = clusters.setdefault(dev_eui, [])
            if found and bucket - found[-1][1] <= CLUSTER_GAP:
                found[-1][1] = bucket
            else:
                found.append([bucket, bucket])
        rounds: list[dict[str, Range]] = []
        for dev_eui, spans in clusters.items():
            for i, (lo, hi) in enumerate(spans):
                if i == len(rounds):
                    rounds.append({})
                rounds[i][dev_eui] = (lo, hi + HOUR)
        return rounds

    return ranges


def _slice_ranges(conn: psycopg.Connection, m: Member, a: dt.datetime, b: dt.datetime) -> Ranges:
    """Per device, the span of its hourly rollups in [a, b) holding one of the metrics."""

    def ranges(metrics: tuple[str, ...]) -> list[dict[str, Range]]:
        rows = conn.execute(
            sql.SQL(
                "SELECT dev_eui, min(bucket), max(bucket) + interval '1 hour'"
                " FROM {}.rollup_hourly WHERE bucket >= %s AND bucket < %s AND metric = ANY(%s)"
                " GROUP BY dev_eui").format(sql.Identifier(m.schema)),
            (a, b, list(metrics)),
        ).fetchall()
        return [{r[0]: (r[1], r[2]) for r in rows}]

    return ranges


def _recompute_derived(
    conn: psycopg.Connection, m: Member, config: MemberAnalytics, ranges: Ranges
) -> int:
    """Step 5: the derived tables of the devices whose readings changed."""
    water_rounds = ranges((water.INDEX,))
    # Temperature and humidity too: air_hourly carries each hour's averages.
    air_rounds = ranges((air.CO2, air.TEMPERATURE, air.HUMIDITY))
    waste_rounds = ranges(waste.METRICS)
    batteries = sorted({e for r in ranges((health.BATTERY,)) for e in r})
    written = health.recompute_batteries(conn, m.schema, batteries) if batteries else 0
    concerned = {e for rounds in (water_rounds, air_rounds, waste_rounds)
                 for r in rounds for e in r}
    if not concerned:
        return written
    known = devices(conn, m.schema, dev_euis=sorted(concerned))
    for r in water_rounds:
        written += water.recompute(conn, m.schema, r, known, config.water, config.timezone)
    for r in air_rounds:
        written += air.recompute(conn, m.schema, r, known, config.air, config.timezone)
    for r in waste_rounds:
        written += waste.recompute(conn, m.schema, r, known, config.waste)
    # Once per container, after all of its collections.
    written += waste.recompute_states(
        conn, m.schema, sorted({e for r in waste_rounds for e in r}), known, config.waste)
    return written


def _rederive(conn: psycopg.Connection, m: Member, config: MemberAnalytics) -> int:
    """What the derived tables hold that is computed from the rollups and from other
    derived tables rather than from the measurements (water.derive, air.derive,
    health.recompute_batteries, waste.recompute_states), recomputed for every device over
    all its history."""
    s = sql.Identifier(m.schema)

    def spans(table: str) -> dict[str, Range]:
        return {r[0]: (r[1], r[2]) for r in conn.execute(
            sql.SQL("SELECT dev_eui, min(bucket), max(bucket) + interval '1 hour'"
                    " FROM {s}.{t} GROUP BY dev_eui").format(
                s=s, t=sql.Identifier(table))).fetchall()}

    hours = spans("water_hourly")
    # Days without hours: kept when the hours expired, or loaded in bulk.
    days = {r[0]: (r[1], r[2]) for r in conn.execute(
        sql.SQL("SELECT dev_eui, min(day)::timestamp AT TIME ZONE %(tz)s,"
                " (max(day) + 1)::timestamp AT TIME ZONE %(tz)s"
                " FROM {s}.water_daily GROUP BY dev_eui").format(s=s),
        {"tz": config.timezone}).fetchall()}
    for e, (lo, hi) in hours.items():
        a, b = days.get(e, (lo, hi))
        days[e] = (min(a, lo), max(b, hi))
    water.derive(conn, m.schema, days, config.water, config.timezone, nights=hours)
    air_ranges = spans("air_hourly")
    air.derive(conn, m.schema, air_ranges, config.timezone)
    known = devices(conn, m.schema, category="waste")
    return len(days) + len(air_ranges) + health.recompute_batteries(conn, m.schema) \
        + waste.recompute_states(conn, m.schema, sorted(known), known, config.waste)


def _mark_derived(conn: psycopg.Connection, m: Member) -> None:
    _save_state(conn, m.schema, DERIVED, watermark=dt.datetime.now(dt.UTC))


def rederive(
    conn: psycopg.Connection, m: Member, catalogue: psycopg.Connection | None = None
) -> int:
    """Run `_rederive` for one member, in one transaction, as its owner: for a data set
    loaded in bulk with its rollups (bench/dashboards.py). The refresh does it by itself
    once after the tenant migration that added those columns and tables (0063).
    Returns the number of devices concerned."""
    with member_lock(conn, m):
        config = sync(catalogue or conn, m, conn)
        with conn.transaction():
            _as_owner(conn, m)
            written = _rederive(conn, m, config)
            _mark_derived(conn, m)
    return written


def _refresh_gateways(conn: psycopg.Connection, m: Member, timezone: str) -> int:
    """Step 6: gateway activity per hour and radio reception per device and local day,
    for every hour that got uplinks since the previous run (by their ingestion, like the
    measurements: a history published late, an archive imported, is counted in its own
    hours and days). The first run, or the first after an upgrade from the time-based
    refresh, takes the hours from the previous run's (less a margin), or the last eight
    days (the health window)."""
    old, previous = _state(conn, m.schema, UPLINKS)
    new = current_snapshot(conn)
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    now = row[0]
    if old is None:
        since = previous - UPLINK_MARGIN if previous else now - FIRST_UPLINK_HOURS
        ranges = [(floor_hour(since), now + HOUR)]
    else:
        condition, params = unseen(Snapshot.parse(old))
        hours = [r[0] for r in conn.execute(
            sql.SQL("SELECT DISTINCT time_bucket('1 hour', time) AS h FROM {}.uplinks"
                    " WHERE ").format(sql.Identifier(m.schema)) + condition
            + sql.SQL(" ORDER BY h"), params).fetchall()]
        ranges = _runs(hours, HOUR)
    written = 0
    zone = ZoneInfo(timezone)
    days: set[dt.date] = set()
    for a, b in ranges:
        written += health.recompute_gateways(conn, m.schema, a, b)
        day, last = a.astimezone(zone).date(), (b - MICROSECOND).astimezone(zone).date()
        while day <= last:
            days.add(day)
            day += DAY
    for first, end in _runs(sorted(days), DAY):
        written += health.recompute_radio(conn, m.schema, first, end, timezone)
    # The watermark: the hours before its own are complete (hv_operator's gateway
    # activity reads the raw uplinks from it on).
    _save_state(conn, m.schema, UPLINKS, snapshot=new, watermark=now)
    return written


def _runs(points: list[Any], step: dt.timedelta) -> list[tuple[Any, Any]]:
    """Sorted points `step` apart (hours, days) as half-open ranges of consecutive ones."""
    out: list[tuple[Any, Any]] = []
    for p in points:
        if out and out[-1][1] == p:
            out[-1] = (out[-1][0], p + step)
        else:
            out.append((p, p + step))
    return out


def _keep_round(conn: psycopg.Connection, m: Member, config: MemberAnalytics,
                settings: Settings, result: RefreshResult) -> None:
    """Step 8: the day's collection round, when the member declares a depot; a problem
    with it (a bad distance file) is reported and leaves the rest of the refresh alone."""
    try:
        with conn.transaction():
            result.round_planned = rounds.keep_planned(
                conn, m.schema, config, settings.tenants_dir, dt.datetime.now(dt.UTC))
    except rounds.RoundError as exc:
        result.round_error = str(exc)
        if isinstance(exc, rounds.TooManyStops):
            rounds.forget(conn, m.schema)  # an old round would look like today's


def refresh(
    conn: psycopg.Connection, m: Member, settings: Settings,
    clock: Callable[[], float] = time.monotonic, catalogue: psycopg.Connection | None = None,
) -> RefreshResult:
    """Bring one member's rollups and derived tables up to date (module docstring).
    `conn` is on the member's server, `catalogue` on the primary (default: `conn`)."""
    started = clock()
    result = RefreshResult(m.slug)
    try:
        with member_lock(conn, m):
            config = sync(catalogue or conn, m, conn)
            with conn.transaction():
                conn.execute("SET LOCAL work_mem = '64MB'")
                old, _ = _state(conn, m.schema, MEASUREMENTS)
                new = current_snapshot(conn)
                derived = _state(conn, m.schema, DERIVED)[1] is not None
                if old is None:
                    result.first_run = True
                    _save_state(conn, m.schema, MEASUREMENTS, snapshot=new)
                    # The backfill below computes every derived table.
                    _mark_derived(conn, m)
                else:
                    condition, params = unseen(Snapshot.parse(old))
                    _collect_keys(
                        conn,
                        sql.SQL(
                            "SELECT DISTINCT dev_eui, metric, time_bucket('1 hour', time)"
                            " FROM {}.measurements WHERE "
                        ).format(sql.Identifier(m.schema)) + condition,
                        params,
                    )
                    _as_owner(conn, m)
                    result.hours, result.days = _recompute_keys(conn, m, config)
                    result.derived_rows = _recompute_derived(conn, m, config,
                                                             _key_ranges(conn))
                    row = conn.execute(
                        "SELECT count(DISTINCT dev_eui) FROM rollup_keys").fetchone()
                    result.devices = row[0] if row else 0
                    result.derived_rows += _refresh_gateways(conn, m, config.timezone)
                    if not derived:
                        # History rolled up before the derived tables of tenant
                        # migration 0063 existed: fill them once.
                        result.derived_rows += _rederive(conn, m, config)
                        _mark_derived(conn, m)
                    _save_state(conn, m.schema, MEASUREMENTS, snapshot=new,
                                seconds=clock() - started, hours=result.hours,
                                devices_=result.devices)
                    _keep_round(conn, m, config, settings, result)
            if result.first_run:
                # Whatever the member held before its first refresh (the snapshot saved
                # above covers it: what commits later is read by the next refresh).
                span = conn.execute(
                    sql.SQL("SELECT min(time), max(time) FROM {}.measurements").format(
                        sql.Identifier(m.schema))).fetchone()
                if span and span[0] is not None:
                    result.hours, result.days, result.derived_rows = _backfill_locked(
                        conn, m, config, span[0], span[1] + HOUR)
                with conn.transaction():
                    _as_owner(conn, m)
                    result.derived_rows += _refresh_gateways(conn, m, config.timezone)
                    _keep_round(conn, m, config, settings, result)
    except Busy as exc:
        result.skipped = str(exc)
    result.seconds = clock() - started
    return result


@dataclass
class BackfillResult:
    member: str
    start: dt.datetime
    end: dt.datetime
    hours: int = 0
    days: int = 0
    derived_rows: int = 0
    seconds: float = 0.0


def _slices(start: dt.datetime, end: dt.datetime, size: dt.timedelta) -> list[Range]:
    out = []
    a = start
    while a < end:
        out.append((a, min(a + size, end)))
        a += size
    return out


def _backfill_slice(
    conn: psycopg.Connection, m: Member, config: MemberAnalytics, a: dt.datetime, b: dt.datetime
) -> tuple[int, int, int]:
    """Recompute every hour in [a, b) (hour-aligned) straight from the measurements, the
    local days overlapping it from the hours, and the derived tables of its devices.

    Rows are upserted, never deleted: hours whose raw measurements have expired
    (retention) keep their rollups, which is what rollups are for."""
    s = sql.Identifier(m.schema)
    params = {"a": a, "b": b, "tz": config.timezone}
    with conn.transaction():
        # Room for the slice's aggregation in memory rather than in temporary files.
        conn.execute("SET LOCAL work_mem = '64MB'")
        _as_owner(conn, m)
        # In key order: index pages are written once each rather than at random.
        hours = conn.execute(
            sql.SQL(
                """
                INSERT INTO {s}.rollup_hourly AS r
                    (bucket, dev_eui, metric, n, min, max, sum, first, last, first_time,
                     last_time)
                SELECT time_bucket('1 hour', time), dev_eui, metric, count(*), min(value),
                       max(value), sum(value), first(value, time), last(value, time),
                       min(time), max(time)
                FROM {s}.measurements WHERE time >= %(a)s AND time < %(b)s
                GROUP BY 2, 3, 1 ORDER BY 2, 3, 1
                ON CONFLICT (dev_eui, metric, bucket) DO UPDATE SET
                    n = EXCLUDED.n, min = EXCLUDED.min, max = EXCLUDED.max, sum = EXCLUDED.sum,
                    first = EXCLUDED.first, last = EXCLUDED.last,
                    first_time = EXCLUDED.first_time, last_time = EXCLUDED.last_time
                """
            ).format(s=s),
            params,
        ).rowcount
        day_span = sql.SQL(
            "h.bucket >= ((%(a)s AT TIME ZONE %(tz)s)::date::timestamp AT TIME ZONE %(tz)s)"
            " AND h.bucket < (((%(b)s - interval '1 microsecond') AT TIME ZONE %(tz)s)::date"
            " + 1)::timestamp AT TIME ZONE %(tz)s")
        days = conn.execute(
            sql.SQL(
                """
                INSERT INTO {s}.rollup_daily AS r
                    (day, dev_eui, metric, n, min, max, sum, first, last, first_time,
                     last_time)
                SELECT (h.bucket AT TIME ZONE %(tz)s)::date, h.dev_eui, h.metric, sum(h.n),
                       min(h.min), max(h.max), sum(h.sum), first(h.first, h.first_time),
                       last(h.last, h.last_time), min(h.first_time), max(h.last_time)
                FROM {s}.rollup_hourly h WHERE {span}
                GROUP BY 2, 3, 1 ORDER BY 2, 3, 1
                ON CONFLICT (dev_eui, metric, day) DO UPDATE SET
                    n = EXCLUDED.n, min = EXCLUDED.min, max = EXCLUDED.max, sum = EXCLUDED.sum,
                    first = EXCLUDED.first, last = EXCLUDED.last,
                    first_time = EXCLUDED.first_time, last_time = EXCLUDED.last_time
                """
            ).format(s=s, span=day_span),
            params,
        ).rowcount
        derived = _recompute_derived(conn, m, config, _slice_ranges(conn, m, a, b))
    return hours, days, derived


def _backfill_locked(
    conn: psycopg.Connection, m: Member, config: MemberAnalytics, start: dt.datetime,
    end: dt.datetime, progress: Callable[[int, int], None] | None = None,
    slice_size: dt.timedelta = dt.timedelta(days=7),
) -> tuple[int, int, int]:
    start = start.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    parts = _slices(start, end, slice_size)
    totals = [0, 0, 0]
    for i, (a, b) in enumerate(parts, 1):
        for j, n in enumerate(_backfill_slice(conn, m, config, a, b)):
            totals[j] += n
        if progress:
            progress(i, len(parts))
    return totals[0], totals[1], totals[2]


def backfill(
    conn: psycopg.Connection, m: Member, settings: Settings, start: dt.datetime,
    end: dt.datetime, progress: Callable[[int, int], None] | None = None,
    slice_size: dt.timedelta = dt.timedelta(days=7),
    clock: Callable[[], float] = time.monotonic, catalogue: psycopg.Connection | None = None,
) -> BackfillResult:
    """Recompute rollups and derived tables for [start, end) from the measurements, one
    slice (a week by default) per transaction; `progress(done, total)` after each.

    A member never refreshed gets its cursor first, so that the next refresh reads only
    what is written from now on."""
    if end <= start:
        raise ValueError("the end of a backfill must come after its start")
    started = clock()
    with member_lock(conn, m):
        config = sync(catalogue or conn, m, conn)
        with conn.transaction():
            if _state(conn, m.schema, MEASUREMENTS)[0] is None:
                _save_state(conn, m.schema, MEASUREMENTS, snapshot=current_snapshot(conn))
        hours, days, derived = _backfill_locked(conn, m, config, start, end, progress,
                                                slice_size)
    return BackfillResult(m.slug, start, end, hours, days, derived, clock() - started)


def start_from_now(admin: psycopg.Connection, m: Member) -> None:
    """Set the member's cursor to now without rolling up what it already holds: the next
    refreshes read only what is written from now on (for a history imported in bulk and
    backfilled separately, range by range)."""
    with member_lock(admin, m), admin.transaction():
        _state(admin, m.schema, MEASUREMENTS)
        _save_state(admin, m.schema, MEASUREMENTS, snapshot=current_snapshot(admin))


@dataclass(frozen=True)
class Lag:
    """How far behind a member's rollups are."""

    member: str
    last_run_at: dt.datetime | None
    pending: int  # measurements written since the cursor


def lag(conn: psycopg.Connection, m: Member) -> Lag:
    s = sql.Identifier(m.schema)
    row = conn.execute(
        sql.SQL("SELECT snapshot, last_run_at FROM {}.rollup_state WHERE stream = %s").format(s),
        (MEASUREMENTS,),
    ).fetchone()
    if not row or row[0] is None:
        total = conn.execute(sql.SQL("SELECT count(*) FROM {}.measurements").format(s)).fetchone()
        return Lag(m.slug, None, total[0] if total else 0)
    condition, params = unseen(Snapshot.parse(row[0]))
    pending = conn.execute(
        sql.SQL("SELECT count(*) FROM {}.measurements WHERE ").format(s) + condition, params
    ).fetchone()
    return Lag(m.slug, row[1], pending[0] if pending else 0)

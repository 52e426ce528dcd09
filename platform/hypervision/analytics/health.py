"""Device and network health: battery, silence, lost uplinks, radio trends, gateways
(see analytics/README.md, "Health").

- Battery: the latest `battery.level` reading (else the level of the latest status
  event); low below `health.battery_low_pct`.
- Silent: nothing heard for more than `health.silent_factor` times the model's usual
  interval (`typical_interval_s`); a device never heard is silent too.
- Loss rate over the window (`health.window_days`): frame counters tell how many uplinks
  were sent; a counter that goes down is a new session (rejoin) and starts counting
  again; a repeated counter is a retransmission, counted once.
- Radio trend: mean RSSI and SNR of the best gateway, and their least-squares slope per
  day over the window (a falling slope: an antenna moved, a new obstacle, a tired
  battery).
- Battery trend: the latest daily level and its slope over 30 days (battery_trends,
  refreshed with the rollups), what the battery forecast reads.
- Radio: uplinks, RSSI and SNR per device and local day (radio_daily, refreshed with
  the rollups), what the health dashboard's charts over a week read.
- Gateways: uplinks per gateway and hour (gateway_hourly, refreshed with the rollups);
  a gateway that heard the member's devices during the window but nothing during the
  last `health.gateway_silent_minutes` has stopped hearing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import SupportsFloat

import psycopg
from psycopg import sql

from hypervision.analytics.config import HealthSettings
from hypervision.analytics.series import floor_hour

BATTERY = "battery.level"


def recompute_gateways(
    conn: psycopg.Connection, schema: str, since: dt.datetime, until: dt.datetime
) -> int:
    """Rewrite gateway_hourly for the hours from `since` (floored) to `until`, with the
    time each gateway last heard an uplink in each hour."""
    s = sql.Identifier(schema)
    params = {"a": floor_hour(since), "b": until}
    conn.execute(
        sql.SQL("DELETE FROM {s}.gateway_hourly WHERE bucket >= %(a)s AND bucket < %(b)s").format(
            s=s),
        params,
    )
    return conn.execute(
        sql.SQL(
            """
            INSERT INTO {s}.gateway_hourly (bucket, gateway_id, uplinks, devices, last_heard)
            SELECT time_bucket('1 hour', u.time), g, count(*), count(DISTINCT u.dev_eui),
                   max(u.time)
            FROM {s}.uplinks u CROSS JOIN LATERAL unnest(u.gateways) AS g
            WHERE u.time >= %(a)s AND u.time < %(b)s
            GROUP BY 1, 2
            """
        ).format(s=s),
        params,
    ).rowcount


def recompute_radio(
    conn: psycopg.Connection, schema: str, first: dt.date, end: dt.date, timezone: str
) -> int:
    """Rewrite radio_daily for the local days from `first` to `end` (excluded): per device
    and day, the uplinks received and the sums and counts of their RSSI and SNR."""
    s = sql.Identifier(schema)
    params = {"a": first, "b": end, "tz": timezone}
    conn.execute(
        sql.SQL("DELETE FROM {s}.radio_daily WHERE day >= %(a)s AND day < %(b)s").format(s=s),
        params,
    )
    return conn.execute(
        sql.SQL(
            """
            INSERT INTO {s}.radio_daily (dev_eui, day, uplinks, rssi_sum, rssi_n, snr_sum,
                                         snr_n)
            SELECT dev_eui, (time AT TIME ZONE %(tz)s)::date, count(*), sum(rssi),
                   count(rssi), sum(snr), count(snr)
            FROM {s}.uplinks
            WHERE time >= %(a)s::timestamp AT TIME ZONE %(tz)s
              AND time < %(b)s::timestamp AT TIME ZONE %(tz)s
            GROUP BY 1, 2
            """
        ).format(s=s),
        params,
    ).rowcount


def recompute_batteries(
    conn: psycopg.Connection, schema: str, dev_euis: list[str] | None = None
) -> int:
    """Rewrite battery_trends for these devices (all when None): the latest daily battery
    level and its least-squares slope per day over the 30 days up to that day (7 days at
    least), from the daily rollups."""
    s = sql.Identifier(schema)
    params = {"battery": BATTERY, "devs": dev_euis}
    conn.execute(
        sql.SQL("DELETE FROM {s}.battery_trends WHERE %(devs)s::text[] IS NULL"
                " OR dev_eui = ANY(%(devs)s)").format(s=s), params)
    return conn.execute(
        sql.SQL(
            """
            INSERT INTO {s}.battery_trends (dev_eui, last_day, battery_pct, slope_pct_day,
                                            days)
            SELECT r.dev_eui, max(r.day), (array_agg(r.last ORDER BY r.day DESC))[1],
                   CASE WHEN count(*) >= 7
                        THEN regr_slope(r.last, r.day - date '2000-01-01') END,
                   count(*)
            FROM {s}.rollup_daily r
            JOIN (SELECT dev_eui, max(day) AS last_day FROM {s}.rollup_daily
                  WHERE metric = %(battery)s
                    AND (%(devs)s::text[] IS NULL OR dev_eui = ANY(%(devs)s))
                  GROUP BY dev_eui) l ON l.dev_eui = r.dev_eui
            WHERE r.metric = %(battery)s AND r.day >= l.last_day - 30
            GROUP BY r.dev_eui
            """
        ).format(s=s),
        params,
    ).rowcount


@dataclass(frozen=True)
class DeviceHealth:
    dev_eui: str
    name: str
    model_id: str
    category: str
    last_seen: dt.datetime | None
    typical_interval_s: int
    silent: bool
    battery_pct: float | None
    battery_low: bool
    uplinks: int
    expected_uplinks: int
    loss_rate: float | None
    rssi_avg: float | None
    snr_avg: float | None
    rssi_slope_per_day: float | None
    snr_slope_per_day: float | None


def devices(
    conn: psycopg.Connection, schema: str, now: dt.datetime, settings: HealthSettings,
    dev_eui: str | None = None,
) -> list[DeviceHealth]:
    """Health of the member's active devices at `now` (module docstring)."""
    rows = conn.execute(
        sql.SQL(
            """
            WITH w AS (
                SELECT dev_eui, time, f_cnt, rssi, snr,
                       lag(f_cnt) OVER (PARTITION BY dev_eui ORDER BY time) AS prev
                FROM {s}.uplinks
                WHERE time > %(since)s AND time <= %(now)s
                  AND (%(dev)s::text IS NULL OR dev_eui = %(dev)s)),
            radio AS (
                SELECT dev_eui,
                       count(*) FILTER (WHERE prev IS NULL OR f_cnt <> prev) AS received,
                       sum(CASE WHEN prev IS NULL OR f_cnt < prev THEN 1
                                WHEN f_cnt > prev THEN f_cnt - prev ELSE 0 END) AS expected,
                       avg(rssi) AS rssi, avg(snr) AS snr,
                       regr_slope(rssi, extract(epoch FROM time) / 86400) AS rssi_slope,
                       regr_slope(snr, extract(epoch FROM time) / 86400) AS snr_slope
                FROM w GROUP BY dev_eui),
            battery AS (
                SELECT DISTINCT ON (dev_eui) dev_eui, value
                FROM {s}.measurements
                WHERE metric = %(battery)s AND time <= %(now)s
                  AND time > %(now)s - interval '30 days'
                  AND (%(dev)s::text IS NULL OR dev_eui = %(dev)s)
                ORDER BY dev_eui, time DESC)
            SELECT d.dev_eui, d.name, d.model_id, d.category, st.last_seen,
                   d.typical_interval_s, coalesce(b.value, st.battery_level),
                   coalesce(r.received, 0), coalesce(r.expected, 0), r.rssi, r.snr,
                   r.rssi_slope, r.snr_slope
            FROM {s}.analytics_devices d
            LEFT JOIN {s}.device_state st USING (dev_eui)
            LEFT JOIN radio r USING (dev_eui)
            LEFT JOIN battery b USING (dev_eui)
            WHERE d.active AND (%(dev)s::text IS NULL OR d.dev_eui = %(dev)s)
            ORDER BY d.dev_eui
            """
        ).format(s=sql.Identifier(schema)),
        {"since": now - dt.timedelta(days=settings.window_days), "now": now,
         "battery": BATTERY, "dev": dev_eui},
    ).fetchall()
    out = []
    for r in rows:
        last_seen, interval = r[4], r[5]
        silent = last_seen is None or (
            (now - last_seen).total_seconds() > settings.silent_factor * interval)
        battery = r[6]
        received, expected = int(r[7]), int(r[8])
        out.append(DeviceHealth(
            r[0], r[1], r[2], r[3], last_seen, interval, silent, battery,
            battery is not None and battery < settings.battery_low_pct, received, expected,
            (1 - received / expected) if expected else None, _f(r[9]), _f(r[10]), _f(r[11]),
            _f(r[12]),
        ))
    return out


def _f(value: SupportsFloat | None) -> float | None:
    return None if value is None else float(value)


def silent_devices(
    conn: psycopg.Connection, schema: str, now: dt.datetime, settings: HealthSettings
) -> list[DeviceHealth]:
    return [d for d in devices(conn, schema, now, settings) if d.silent]


@dataclass(frozen=True)
class Gateway:
    gateway_id: str
    last_heard: dt.datetime | None
    uplinks_24h: int
    devices_24h: int
    silent: bool


def gateways(
    conn: psycopg.Connection, schema: str, now: dt.datetime, settings: HealthSettings
) -> list[Gateway]:
    """Gateways that heard the member's devices during the window, with the last time
    each heard one, and whether it has stopped hearing."""
    s = sql.Identifier(schema)
    recent_from = now - dt.timedelta(minutes=settings.gateway_silent_minutes)
    rows = conn.execute(
        sql.SQL(
            """
            WITH known AS (
                SELECT gateway_id, max(bucket) AS last_hour,
                       sum(uplinks) FILTER (WHERE bucket >= %(day)s) AS uplinks_24h,
                       max(devices) FILTER (WHERE bucket >= %(day)s) AS devices_24h
                FROM {s}.gateway_hourly
                WHERE bucket >= %(window)s AND bucket <= %(now)s
                GROUP BY gateway_id),
            heard AS (
                SELECT g AS gateway_id, max(u.time) AS last_heard
                FROM {s}.uplinks u CROSS JOIN LATERAL unnest(u.gateways) AS g
                WHERE u.time >= %(last_hours)s AND u.time <= %(now)s
                GROUP BY g)
            SELECT coalesce(k.gateway_id, h.gateway_id), h.last_heard,
                   coalesce(k.uplinks_24h, 0), coalesce(k.devices_24h, 0)
            FROM known k FULL JOIN heard h USING (gateway_id)
            ORDER BY 1
            """
        ).format(s=s),
        {"window": now - dt.timedelta(days=settings.window_days),
         "day": now - dt.timedelta(days=1), "now": now,
         # The hour buckets older than this are complete in gateway_hourly.
         "last_hours": min(floor_hour(recent_from), floor_hour(now) - dt.timedelta(hours=1))},
    ).fetchall()
    out = []
    for gateway_id, last_heard, uplinks, devs in rows:
        if last_heard is None:
            found = conn.execute(
                sql.SQL(
                    """
                    SELECT max(u.time) FROM {s}.uplinks u
                    WHERE u.time >= (SELECT max(bucket) FROM {s}.gateway_hourly
                                     WHERE gateway_id = %(g)s)
                      AND u.time <= %(now)s AND %(g)s = ANY(u.gateways)
                    """
                ).format(s=s),
                {"g": gateway_id, "now": now},
            ).fetchone()
            last_heard = found[0] if found else None
        silent = last_heard is None or last_heard < recent_from
        out.append(Gateway(gateway_id, last_heard, int(uplinks), int(devs), silent))
    return out


@dataclass(frozen=True)
class DeviceState:
    """A device's state at a glance (the console's lists and counts): from device_state
    and the analytics copy of the catalogue only, no scan of the readings."""

    dev_eui: str
    last_seen: dt.datetime | None
    battery_pct: float | None
    rssi: int | None
    snr: float | None
    state: str  # "ok", "silent" (never heard, or quiet too long), "battery" (low)


# A device missing from the analytics copy (declared since the last refresh) is silent
# after this long.
DEFAULT_INTERVAL_S = 8 * 3600


def device_states(
    conn: psycopg.Connection, schema: str, now: dt.datetime, settings: HealthSettings,
    dev_euis: list[str] | None = None,
) -> dict[str, DeviceState]:
    """The state of the given devices (all of the member's when None): silent as in
    `devices` (the model's usual interval times silent_factor), battery from the latest
    status only."""
    rows = conn.execute(
        sql.SQL(
            """
            SELECT s.dev_eui, s.last_seen, s.battery_level, s.last_rssi, s.last_snr,
                   coalesce(d.typical_interval_s, %(default)s)
            FROM {s}.device_state s
            LEFT JOIN {s}.analytics_devices d USING (dev_eui)
            WHERE %(devs)s::text[] IS NULL OR s.dev_eui = ANY(%(devs)s)
            """
        ).format(s=sql.Identifier(schema)),
        {"devs": dev_euis, "default": DEFAULT_INTERVAL_S},
    ).fetchall()
    out = {}
    for dev_eui, last_seen, battery, rssi, snr, interval in rows:
        silent = last_seen is None or (
            (now - last_seen).total_seconds() > settings.silent_factor * interval)
        low = battery is not None and battery < settings.battery_low_pct
        out[dev_eui] = DeviceState(dev_eui, last_seen, _f(battery), rssi, _f(snr),
                                   "silent" if silent else "battery" if low else "ok")
    return out

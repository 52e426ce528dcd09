"""The life cycle of alerts in a member's schema: open, acknowledged, closed (see
alerts/README.md).

`evaluate` runs every minute (hypervision.jobs.alerts), per member, in one transaction:
1. for each rule, observe every device it watches: the condition `fires` (it has held
   for the rule's duration), is `pending` (it holds, not long enough yet) or is
   `clear`;
2. a firing device gets an alert unless one is already open or acknowledged for that
   rule and device (a partial unique index makes this an idempotent INSERT ... ON
   CONFLICT DO NOTHING), or a person closed one during the same episode (closed, not
   yet `cleared_at`); the alert's notifications are written in the same transaction (an
   outbox, see notify.py), so an open alert notifies once, not at every reading;
3. a clear condition closes the device's alert (by the system) and ends the episode of
   one a person closed (`cleared_at`); a rule that no longer exists closes its alerts.
A person acknowledges (`ack`) or closes (`close`) an alert from the CLI or the API.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from hypervision.alerts.rules import AlertRule
from hypervision.analytics import water
from hypervision.analytics.config import MemberAnalytics
from hypervision.analytics.members import Device, Member, devices, sync
from hypervision.settings import Settings

State = Literal["open", "acknowledged", "closed"]
SYSTEM = "system"
# Conditions of alerts the platform opens itself (hypervision.syndicate), not a rule.
PLATFORM_CONDITIONS = ("incident", "incident_deadline", "coverage_margin")
# How far back above/below rules look, beyond their duration.
LOOKBACK = dt.timedelta(days=1)


class AlertError(Exception):
    """An alert does not exist or is not in a state allowing the change."""


@dataclass(frozen=True)
class Gateway:
    """A gateway of the network as ChirpStack last listed it (hv.gateways)."""

    gateway_id: str
    name: str
    state: str  # NEVER_SEEN, ONLINE or OFFLINE
    last_seen: dt.datetime | None


def network_gateways(admin: psycopg.Connection) -> list[Gateway]:
    """Every gateway ChirpStack lists (read from the control schema: the member roles
    cannot)."""
    rows = admin.execute(
        "SELECT gateway_id, name, state, last_seen_at FROM hv.gateways WHERE in_chirpstack"
        " ORDER BY gateway_id").fetchall()
    return [Gateway(*r) for r in rows]


@dataclass(frozen=True)
class Observation:
    """What a rule sees on one device."""

    dev_eui: str
    status: Literal["fires", "pending", "clear"]
    value: float | None = None
    since: dt.datetime | None = None
    message: str = ""


def _watched(rule: AlertRule, known: dict[str, Device]) -> dict[str, Device]:
    return {
        e: d for e, d in known.items()
        if (not rule.devices or e in rule.devices)
        and (not rule.buildings or (d.building or "") in rule.buildings)
    }


def _threshold(
    conn: psycopg.Connection, schema: str, rule: AlertRule, watched: dict[str, Device],
    now: dt.datetime,
) -> list[Observation]:
    """above / below: the run of consecutive readings meeting the condition, up to the
    latest reading, must span the rule's duration."""
    compare = sql.SQL(">") if rule.condition == "above" else sql.SQL("<")
    rows = conn.execute(
        sql.SQL(
            """
            WITH r AS (
                SELECT dev_eui, time, value, value {cmp} %(threshold)s AS ok
                FROM {s}.measurements
                WHERE metric = %(metric)s AND dev_eui = ANY(%(euis)s)
                  AND time > %(from)s AND time <= %(now)s),
            latest AS (
                SELECT DISTINCT ON (dev_eui) dev_eui, time, value, ok
                FROM r ORDER BY dev_eui, time DESC),
            broken AS (
                SELECT dev_eui, max(time) AS t FROM r WHERE NOT ok GROUP BY dev_eui)
            SELECT l.dev_eui, l.time, l.value, l.ok,
                   (SELECT min(r.time) FROM r
                    WHERE r.dev_eui = l.dev_eui AND r.ok
                      AND r.time > coalesce(b.t, '-infinity'))
            FROM latest l LEFT JOIN broken b USING (dev_eui)
            """
        ).format(s=sql.Identifier(schema), cmp=compare),
        {"threshold": rule.threshold, "metric": rule.metric, "euis": list(watched),
         "from": now - rule.duration - LOOKBACK, "now": now},
    ).fetchall()
    word = "au-dessus de" if rule.condition == "above" else "en dessous de"
    out = []
    for dev_eui, time, value, ok, since in rows:
        if not ok:
            out.append(Observation(dev_eui, "clear", value))
            continue
        status: Literal["fires", "pending"] = (
            "fires" if time - since >= rule.duration else "pending")
        out.append(Observation(
            dev_eui, status, value, since,
            f"{rule.metric} = {value:g} {word} {rule.threshold:g} depuis le"
            f" {since.isoformat(timespec='minutes')}",
        ))
    return out


def _silent(
    conn: psycopg.Connection, schema: str, rule: AlertRule, watched: dict[str, Device],
    now: dt.datetime, config: MemberAnalytics,
) -> list[Observation]:
    """silent: nothing heard for the rule's duration (default: the member's silent factor
    times the model's usual interval). A device never heard yet is not installed yet: it
    does not fire."""
    rows = conn.execute(
        sql.SQL("SELECT dev_eui, last_seen FROM {}.device_state WHERE dev_eui = ANY(%s)").format(
            sql.Identifier(schema)),
        (list(watched),),
    ).fetchall()
    out = []
    for dev_eui, last_seen in rows:
        if last_seen is None:
            continue
        limit = rule.duration or dt.timedelta(
            seconds=config.health.silent_factor * watched[dev_eui].typical_interval_s)
        if now - last_seen > limit:
            out.append(Observation(dev_eui, "fires", None, last_seen + limit,
                                   f"aucune trame reçue depuis le"
                                   f" {last_seen.isoformat(timespec='minutes')}"))
        else:
            out.append(Observation(dev_eui, "clear"))
    return out


def _leak(
    conn: psycopg.Connection, schema: str, rule: AlertRule, watched: dict[str, Device],
    now: dt.datetime, config: MemberAnalytics,
) -> list[Observation]:
    """leak: the last N complete nights without zero flow (water.leaks)."""
    zone = ZoneInfo(config.timezone)
    local = now.astimezone(zone)
    last_night = local.date()
    if water.night_window(last_night, config.water, zone)[1] > now:
        last_night -= dt.timedelta(days=1)
    nights = int(rule.threshold or config.water.leak_nights)
    found = {
        leak.dev_eui: leak
        for leak in water.leaks(conn, schema, last_night, config.water, config.timezone, nights)
    }
    out = []
    for dev_eui, device in watched.items():
        if device.category != "water":
            continue
        leak = found.get(dev_eui)
        if leak is None:
            out.append(Observation(dev_eui, "clear"))
            continue
        since = water.night_window(leak.first_night, config.water, zone)[0]
        out.append(Observation(
            dev_eui, "fires", leak.min_flow_l_h, since,
            f"fuite probable : débit nocturne jamais nul {leak.nights} nuits de suite"
            f" (au moins {leak.min_flow_l_h:g} L/h)"))
    return out


def _gateways_offline(rule: AlertRule, gateways: Sequence[Gateway], now: dt.datetime,
                      config: MemberAnalytics) -> list[Observation]:
    """gateway_offline: ChirpStack says OFFLINE, or nothing seen for the rule's duration
    (default: the member's health.gateway_silent_minutes). A gateway never seen is not
    installed yet: it does not fire. The alert's `dev_eui` is the gateway id."""
    limit = rule.duration or dt.timedelta(minutes=config.health.gateway_silent_minutes)
    out = []
    for g in gateways:
        if g.last_seen is None:
            continue
        if g.state == "OFFLINE" or now - g.last_seen > limit:
            out.append(Observation(g.gateway_id, "fires", None, g.last_seen + limit,
                                   f"passerelle {g.name} hors ligne : rien reçu depuis le"
                                   f" {g.last_seen.isoformat(timespec='minutes')}"))
        else:
            out.append(Observation(g.gateway_id, "clear"))
    return out


def observe(
    conn: psycopg.Connection, schema: str, rule: AlertRule, config: MemberAnalytics,
    now: dt.datetime, known: dict[str, Device] | None = None,
    gateways: Sequence[Gateway] = (),
) -> list[Observation]:
    """Step 1 for one rule."""
    if rule.condition == "gateway_offline":
        return _gateways_offline(rule, gateways, now, config)
    watched = _watched(rule, known if known is not None else devices(conn, schema))
    if not watched:
        return []
    if rule.condition in ("above", "below"):
        return _threshold(conn, schema, rule, watched, now)
    if rule.condition == "silent":
        return _silent(conn, schema, rule, watched, now, config)
    return _leak(conn, schema, rule, watched, now, config)


@dataclass
class Evaluation:
    member: str
    opened: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    still_open: int = 0


def evaluate(
    conn: psycopg.Connection, schema: str, config: MemberAnalytics, now: dt.datetime,
    member: str = "", gateways: Sequence[Gateway] = (),
) -> Evaluation:
    """Steps 1-3 for every rule of the member. Runs in the caller's transaction, as a
    role that may write the member's alert tables (its owner); `gateways` are the
    network's, for gateway_offline rules (read by the caller, `network_gateways`)."""
    s = sql.Identifier(schema)
    result = Evaluation(member)
    known = devices(conn, schema)
    for rule in config.alerts:
        spec = Jsonb(rule.model_dump(mode="json"))
        for o in observe(conn, schema, rule, config, now, known, gateways):
            if o.status == "fires":
                row = conn.execute(
                    sql.SQL(
                        """
                        INSERT INTO {s}.alerts (rule, dev_eui, condition, metric, threshold,
                            severity, message, value, since, last_value, rule_spec)
                        SELECT %(rule)s, %(dev)s, %(condition)s, %(metric)s, %(threshold)s,
                               %(severity)s, %(message)s, %(value)s, %(since)s, %(value)s,
                               %(spec)s
                        WHERE NOT EXISTS (
                            SELECT 1 FROM {s}.alerts c
                            WHERE c.rule = %(rule)s AND c.dev_eui = %(dev)s
                              AND c.state = 'closed' AND c.cleared_at IS NULL)
                        ON CONFLICT (rule, dev_eui) WHERE state <> 'closed' DO NOTHING
                        RETURNING id
                        """
                    ).format(s=s),
                    {"rule": rule.name, "dev": o.dev_eui, "condition": rule.condition,
                     "metric": rule.metric, "threshold": rule.threshold,
                     "severity": rule.severity, "message": o.message, "value": o.value,
                     "since": o.since, "spec": spec},
                ).fetchone()
                if row is not None:
                    result.opened.append(row[0])
                    _queue_notifications(conn, schema, row[0], rule)
                else:
                    result.still_open += conn.execute(
                        sql.SQL(
                            "UPDATE {s}.alerts SET last_value = %(value)s, checked_at = now()"
                            " WHERE rule = %(rule)s AND dev_eui = %(dev)s AND state <> 'closed'"
                        ).format(s=s),
                        {"value": o.value, "rule": rule.name, "dev": o.dev_eui},
                    ).rowcount
            elif o.status == "clear":
                result.closed += _close_where(conn, schema, rule.name, o.dev_eui,
                                              "la condition n'est plus remplie")
    names = [r.name for r in config.alerts]
    rows = conn.execute(
        # Alerts the platform raises itself (incidents' clocks, radio coverage) have no
        # rule in the member's file: they are not "rules removed".
        sql.SQL("SELECT DISTINCT rule FROM {s}.alerts WHERE state <> 'closed'"
                " AND NOT (rule = ANY(%s)) AND condition <> ALL(%s)").format(s=s),
        (names, list(PLATFORM_CONDITIONS)),
    ).fetchall()
    for (gone,) in rows:
        result.closed += _close_where(conn, schema, gone, None, "la règle a été retirée")
    return result


def _close_where(
    conn: psycopg.Connection, schema: str, rule: str, dev_eui: str | None, reason: str
) -> list[int]:
    """Close the rule's alerts (of one device, or all) and end their episode; returns the
    ids of the alerts this closed (not those a person had closed already)."""
    rows = conn.execute(
        sql.SQL(
            """
            WITH before AS (
                SELECT id, state FROM {s}.alerts
                WHERE rule = %(rule)s AND (%(dev)s::text IS NULL OR dev_eui = %(dev)s)
                  AND (state <> 'closed' OR cleared_at IS NULL)
                FOR UPDATE)
            UPDATE {s}.alerts a SET state = 'closed',
                   closed_at = coalesce(a.closed_at, now()),
                   closed_by = coalesce(a.closed_by, %(by)s),
                   close_reason = coalesce(a.close_reason, %(reason)s),
                   cleared_at = now(), checked_at = now()
            FROM before b WHERE a.id = b.id
            RETURNING a.id, b.state
            """
        ).format(s=sql.Identifier(schema)),
        {"by": SYSTEM, "reason": reason, "rule": rule, "dev": dev_eui},
    ).fetchall()
    return sorted(r[0] for r in rows if r[1] != "closed")


def _queue_notifications(conn: psycopg.Connection, schema: str, alert_id: int,
                         rule: AlertRule) -> None:
    targets = rule.recipients.targets()
    if not targets:
        return
    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL(
                "INSERT INTO {}.alert_notifications (alert_id, channel, target)"
                " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"
            ).format(sql.Identifier(schema)),
            [(alert_id, channel, target) for channel, target in targets],
        )


# A person's actions ----------------------------------------------------------------------


def _change(
    conn: psycopg.Connection, schema: str, alert_id: int, set_: sql.Composable,
    allowed: Sequence[str], params: dict,
) -> dict:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            sql.SQL("UPDATE {s}.alerts SET {set} WHERE id = %(id)s AND state = ANY(%(allowed)s)"
                    " RETURNING *").format(s=sql.Identifier(schema), set=set_),
            {**params, "id": alert_id, "allowed": list(allowed)},
        ).fetchone()
        if row is None:
            state = conn.execute(
                sql.SQL("SELECT state FROM {}.alerts WHERE id = %s").format(
                    sql.Identifier(schema)),
                (alert_id,),
            ).fetchone()
            if state is None:
                raise AlertError(f"no alert {alert_id}")
            raise AlertError(f"alert {alert_id} is {state[0]}")
    return row


def acknowledge(conn: psycopg.Connection, schema: str, alert_id: int, by: str) -> dict:
    """open -> acknowledged: someone is on it. Returns the alert row."""
    return _change(conn, schema, alert_id,
                   sql.SQL("state = 'acknowledged', acknowledged_at = now(),"
                           " acknowledged_by = %(by)s"), ("open",), {"by": by})


def close(conn: psycopg.Connection, schema: str, alert_id: int, by: str,
          reason: str = "") -> dict:
    """open or acknowledged -> closed. While the same episode lasts, the rule does not
    open the alert again (step 2 of `evaluate`)."""
    return _change(conn, schema, alert_id,
                   sql.SQL("state = 'closed', closed_at = now(), closed_by = %(by)s,"
                           " close_reason = %(reason)s"), ("open", "acknowledged"),
                   {"by": by, "reason": reason or None})


def alerts(
    conn: psycopg.Connection, schema: str, states: Sequence[State] | None = None,
    limit: int = 200,
) -> list[dict]:
    """The member's alerts, newest first, as dicts (columns of the alerts table)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            sql.SQL(
                """
                SELECT id, rule, dev_eui, condition, metric, threshold, severity, state,
                       message, value, since, opened_at, last_value, checked_at,
                       acknowledged_at, acknowledged_by, closed_at, closed_by, close_reason
                FROM {}.alerts
                WHERE %(states)s::text[] IS NULL OR state = ANY(%(states)s)
                ORDER BY opened_at DESC, id DESC LIMIT %(limit)s
                """
            ).format(sql.Identifier(schema)),
            {"states": list(states) if states else None, "limit": limit},
        ).fetchall()


def evaluate_member(
    admin: psycopg.Connection, m: Member, settings: Settings, now: dt.datetime | None = None,
    catalogue: psycopg.Connection | None = None,
) -> Evaluation:
    """Evaluate one member's rules with its current declaration (the superuser connection
    copies it first, then works as the member's owner role). `admin` is on the member's
    server, `catalogue` on the primary (default: `admin`)."""
    catalogue = admin if catalogue is None else catalogue
    config = sync(catalogue, m, admin)
    watches_gateways = any(r.condition == "gateway_offline" for r in config.alerts)
    gateways = network_gateways(catalogue) if watches_gateways else []
    with admin.transaction():
        if now is None:
            row = admin.execute("SELECT now()").fetchone()
            assert row is not None
            now = row[0]
        admin.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(m.owner)))
        return evaluate(admin, m.schema, config, now, m.slug, gateways)

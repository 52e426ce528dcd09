"""The member's home page: devices in service, silent or with a low battery; open
alerts by severity; uplinks today and the last one heard; the member's dashboards."""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from psycopg import sql

from hypervision.analytics import health
from hypervision.analytics.members import settings_of
from hypervision.api.deps import Audit, State
from hypervision.console import PREFIX
from hypervision.console.pages.common import ago, hidden_devices, member_facts, now
from hypervision.console.session import ConsoleUser, ReadConn, ReadPage
from hypervision.console.web import lang_of, render
from hypervision.superset.server import public_url

router = APIRouter()
SEVERITIES = ("critical", "warning", "info")

# The member's active devices counted by state in the database, with the last uplink
# heard, in one aggregate on the member's reader connection (the catalogue's active
# devices through hv_shared.member_active_devices, an index of the catalogue, not each
# device's declaration): the states as the devices
# list (pages.devices.LIST_SQL) and analytics.health.device_states define them (a device
# never heard is silent); only one row leaves the database, whatever the fleet's size.
COUNTS_SQL = """
SELECT count(*),
       count(*) FILTER (WHERE state = 'ok'),
       count(*) FILTER (WHERE state = 'silent'),
       count(*) FILTER (WHERE state = 'battery'),
       max(last_seen)
FROM (
    SELECT s.last_seen,
           CASE WHEN s.last_seen IS NULL OR s.last_seen < %(now)s - make_interval(
                         secs => %(factor)s * coalesce(a.typical_interval_s, %(default)s))
                THEN 'silent'
                WHEN s.battery_level < %(low)s THEN 'battery'
                ELSE 'ok' END AS state
    FROM hv_shared.member_active_devices(%(m)s) d
    LEFT JOIN {s}.device_state s USING (dev_eui)
    LEFT JOIN {s}.analytics_devices a USING (dev_eui)
    WHERE NOT (d.dev_eui = ANY(%(hidden)s::text[]))
) stated
"""

# Open and acknowledged alerts counted by state and severity (the withheld devices'
# left out), instead of reading them.
ALERTS_SQL = """
SELECT state, severity, count(*) FROM {s}.alerts
WHERE state IN ('open', 'acknowledged')
  AND (dev_eui IS NULL OR NOT (dev_eui = ANY(%(hidden)s::text[])))
GROUP BY state, severity
"""


@router.get("/", name="console_index")
def index(principal: ConsoleUser) -> Response:
    """Operators land on the network's overview, everyone else on their member's home."""
    if principal.operator:
        return RedirectResponse(f"{PREFIX}/operator", status_code=303)
    return RedirectResponse(f"{PREFIX}/m/{principal.member_slug}", status_code=303)


@router.get("/m/{slug}", name="console_home")
def home(request: Request, member: ReadPage, session: ReadConn, state: State,
         audit_: Audit) -> Response:
    at = now()
    facts = member_facts(state, member)
    hidden = hidden_devices(state, member)
    with state.dbs.control() as conn:
        today = conn.execute(
            "SELECT coalesce(sum(events) FILTER (WHERE event_type = 'up'"
            " AND outcome IN ('stored', 'decode_failed')), 0),"
            " coalesce(sum(events) FILTER (WHERE outcome NOT IN ('stored', 'duplicate')), 0)"
            " FROM hv.ingest_outcomes WHERE member_slug = %s AND day = current_date",
            (member.slug,)).fetchone()
        dashboards = conn.execute(
            "SELECT name, template FROM hv.superset_objects"
            " WHERE member_slug = %s AND kind = 'dashboard' ORDER BY name",
            (member.slug,)).fetchall()
    config = settings_of(session, member.schema).health
    s = sql.Identifier(member.schema)
    counted = session.execute(sql.SQL(COUNTS_SQL).format(s=s), {
        "m": member.slug, "hidden": sorted(hidden), "now": at,
        "factor": config.silent_factor, "default": health.DEFAULT_INTERVAL_S,
        "low": config.battery_low_pct}).fetchone()
    assert counted is not None
    total, ok, silent, battery, last_seen = counted
    by_severity: Counter[str] = Counter()
    acknowledged = 0
    for alert_state, severity, n in session.execute(
            sql.SQL(ALERTS_SQL).format(s=s), {"hidden": sorted(hidden)}).fetchall():
        if alert_state == "open":
            by_severity[severity] += n
        else:
            acknowledged += n
    audit_.record("home.read", member.slug, target="*",
                  params={"grant": member.grant_id, "withheld_devices": len(hidden)},
                  rows=total)
    superset = public_url(state.settings)
    return render(
        request, "home.html", member=facts,
        devices={"total": total, "ok": ok, "silent": silent, "battery": battery,
                 "withheld": len(hidden)},
        alerts={"open": by_severity, "acknowledged": acknowledged,
                "severities": SEVERITIES, "total_open": sum(by_severity.values())},
        uplinks_today=int(today[0]) if today else 0,
        problems_today=int(today[1]) if today else 0,
        last_uplink=last_seen, last_uplink_ago=ago(last_seen, lang_of(request)),
        # Dashboards' slugs are <member>-<template> (superset.provision).
        dashboards=[{"name": d[0], "href": f"{superset}/superset/dashboard/{member.slug}-{d[1]}/"}
                    for d in dashboards],
        superset=superset,
    )

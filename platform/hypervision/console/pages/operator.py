"""The syndicate operators' pages: every member's ingest outcomes and usage, the dead
letters (without their payloads, as the API), the gateways with their state and when
they were last seen. A member's devices are its own pages (/console/m/<slug>/devices),
which operators may open for every member: devices of personal data classes, and so
their locations, only under a grant."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from psycopg.rows import dict_row

from hypervision import usage
from hypervision.api.deps import Audit, State
from hypervision.console.session import OperatorUser
from hypervision.console.web import render

router = APIRouter()
OUTCOMES = ("stored", "duplicate", "decode_failed", "unknown_device", "tenant_suspended",
            "rejected", "store_failed")


@router.get("/operator", name="console_operator")
def overview(
    request: Request, principal: OperatorUser, state: State, audit_: Audit,
    days: Annotated[int, Query(ge=1, le=90)] = 1,
    member: Annotated[str, Query(max_length=40)] = "",
    reason: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    today = usage.today()
    first = today - dt.timedelta(days=days - 1)
    with state.dbs.control() as conn, conn.cursor(row_factory=dict_row) as cur:
        members = cur.execute(
            "SELECT m.slug, m.name, m.kind, m.suspended, m.schema_name,"
            " (SELECT count(*) FROM hv.devices d WHERE d.member_slug = m.slug AND d.active)"
            " AS devices FROM hv.members m ORDER BY m.slug").fetchall()
        outcomes: dict[str, dict[str, int]] = defaultdict(dict)
        for r in cur.execute(
                "SELECT member_slug, outcome, sum(events) AS n FROM hv.ingest_outcomes"
                " WHERE day BETWEEN %s AND %s GROUP BY 1, 2", (first, today)).fetchall():
            outcomes[r["member_slug"]][r["outcome"]] = int(r["n"])
        dead = cur.execute(
            "SELECT id, received_at, origin, event_type, dev_eui, member_slug, reason, detail,"
            " octet_length(payload) AS payload_bytes FROM hv.dead_letters"
            " WHERE received_at >= %(since)s"
            " AND (%(m)s = '' OR member_slug = %(m)s) AND (%(r)s = '' OR reason = %(r)s)"
            " ORDER BY id DESC LIMIT 50",
            {"since": dt.datetime.now(dt.UTC) - dt.timedelta(days=days), "m": member,
             "r": reason}).fetchall()
        reasons = [r["reason"] for r in cur.execute(
            "SELECT DISTINCT reason FROM hv.dead_letters ORDER BY 1").fetchall()]
        gateways = cur.execute(
            "SELECT gateway_id, name, member_slug, state, state_since, last_seen_at,"
            " in_chirpstack FROM hv.gateways ORDER BY state <> 'OFFLINE', name").fetchall()
        used = usage.totals(conn, [m["slug"] for m in members],
                            today - dt.timedelta(days=29), today)
    month = {u.member: u for u in used}
    audit_.record("members.read", None, target="*", rows=len(members))
    audit_.record("dead-letters.read", member or None,
                  params={"days": days, "reason": reason or None}, rows=len(dead))
    audit_.record("usage.read", None, target="*",
                  params={"start": today - dt.timedelta(days=29), "end": today},
                  rows=len(used))
    return render(request, "operator.html", members=members, outcomes=outcomes,
                  outcome_names=OUTCOMES, dead=dead, reasons=reasons, gateways=gateways,
                  usage=month, days=days, member_filter=member, reason_filter=reason)

"""The alerts inbox: open → acknowledged (with a comment) → resolved, with filters and
who did what. The changes go through the API's own `alerts._change` (same transitions,
same 409, same audit entry with before and after); the comment is kept in that entry."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.responses import RedirectResponse, Response
from psycopg.rows import dict_row

from hypervision.alerts import lifecycle
from hypervision.api.deps import Audit, State
from hypervision.api.routes import alerts as api_alerts
from hypervision.console import PREFIX
from hypervision.console.forms import PostedForm
from hypervision.console.pages.common import hidden_devices, member_facts
from hypervision.console.session import AdminPage, ReadConn, ReadPage
from hypervision.console.web import render

router = APIRouter()
AlertId = Annotated[int, Path(ge=1, lt=2**63)]
STATES: tuple[lifecycle.State, ...] = ("open", "acknowledged", "closed")
SEVERITIES = ("critical", "warning", "info")
MAX_COMMENT = 500


@router.get("/m/{slug}/alerts", name="console_alerts")
def inbox(
    request: Request, member: ReadPage, session: ReadConn, state: State, audit_: Audit,
    states: Annotated[list[str], Query(alias="state", max_length=3)] = [],  # noqa: B006
    severity: Annotated[str, Query(max_length=20)] = "",
    q: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    wanted: list[lifecycle.State] = [s for s in STATES if s in states] or ["open", "acknowledged"]
    hidden = hidden_devices(state, member)
    rows = [r for r in lifecycle.alerts(session, member.schema, wanted, 500)
            if r["dev_eui"] not in hidden
            and (severity not in SEVERITIES or r["severity"] == severity)]
    with state.dbs.control() as conn:
        names = dict(conn.execute("SELECT dev_eui, name FROM hv.devices WHERE member_slug = %s",
                                  (member.slug,)).fetchall())
    needle = q.strip().lower()
    if needle:
        rows = [r for r in rows if needle in r["dev_eui"]
                or needle in (names.get(r["dev_eui"]) or "").lower()
                or needle in (r["message"] or "").lower() or needle in r["rule"].lower()]
    audit_.record("alerts.read", member.slug, target="*",
                  params={"state": wanted, "severity": severity or None, "q": q or None,
                          "grant": member.grant_id, "withheld_devices": len(hidden)},
                  rows=len(rows))
    return render(request, "alerts.html", member=member_facts(state, member), rows=rows,
                  names=names, wanted=wanted, severity=severity, q=q,
                  states=STATES, severities=SEVERITIES,
                  may_act="admin" in member.principal.rights,
                  done=request.query_params.get("done"))


@router.get("/m/{slug}/alerts/{alert_id}", name="console_alert")
def alert_page(request: Request, member: ReadPage, state: State, audit_: Audit,
               alert_id: AlertId) -> Response:
    found = api_alerts._read_alert(state, member, alert_id)
    if found is None or found["dev_eui"] in hidden_devices(state, member):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"alert {alert_id} not found")
    with state.dbs.control() as conn, conn.cursor(row_factory=dict_row) as cur:
        history = cur.execute(
            "SELECT at, actor, action, params ->> 'reason' AS comment, before, after"
            " FROM hv.audit_log WHERE member_slug = %s AND target = %s"
            " AND action IN ('alerts.acknowledge', 'alerts.close') ORDER BY id",
            (member.slug, f"alert:{alert_id}")).fetchall()
        device = conn.execute("SELECT name FROM hv.devices WHERE member_slug = %s"
                              " AND dev_eui = %s", (member.slug, found["dev_eui"])).fetchone()
    audit_.record("alerts.read", member.slug, target=f"alert:{alert_id}",
                  params={"grant": member.grant_id}, rows=1)
    return render(request, "alert.html", member=member_facts(state, member), a=found,
                  history=history, device_name=device[0] if device else found["dev_eui"],
                  may_act="admin" in member.principal.rights,
                  done=request.query_params.get("done"))


def _act(request: Request, member: AdminPage, state: State, form: PostedForm,
         alert_id: int, action: Literal["acknowledge", "close"], audit_: Audit) -> Response:
    comment = form.get("comment", "").strip()[:MAX_COMMENT] or None
    if action == "close" and comment is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "say why the alert is resolved")
    api_alerts._change(state, member, audit_, alert_id, action, comment)
    back = form.get("back", "")
    target = back if back.startswith(f"{PREFIX}/m/{member.slug}/alerts") else \
        f"{PREFIX}/m/{member.slug}/alerts/{alert_id}"
    sep = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{sep}done={action}", status_code=303)


@router.post("/m/{slug}/alerts/{alert_id}/acknowledge", name="console_alert_ack")
def acknowledge(request: Request, member: AdminPage, state: State, form: PostedForm,
                alert_id: AlertId, audit_: Audit) -> Response:
    return _act(request, member, state, form, alert_id, "acknowledge", audit_)


@router.post("/m/{slug}/alerts/{alert_id}/close", name="console_alert_close")
def close(request: Request, member: AdminPage, state: State, form: PostedForm,
          alert_id: AlertId, audit_: Audit) -> Response:
    return _act(request, member, state, form, alert_id, "close", audit_)

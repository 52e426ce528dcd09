"""A member's alerts: the list, and a person acknowledging or closing one
(hypervision.alerts, see alerts/README.md, "Life cycle").

Reading goes through the member's reader connection like every read. Acknowledging and
closing need the `admin` right, and a role that may change the member's `alerts` table:
only its owner may write the member's tables and the reader role stays read-only, so the
API's own role holds column privileges on that one table (`api.db.grant_alert_changes`:
UPDATE of the columns a person changes, SELECT of id and state, nothing else). The change
and its audit entry (before and after state) commit in one transaction on that
connection; for a member on another database server (hypervision.placement), the change
commits there just before its audit entry on the primary (`Databases.changes`). The
transitions are those of `lifecycle.acknowledge` and `lifecycle.close`
(the CLI's, as the member's owner): open -> acknowledged; open or acknowledged -> closed.
An alert on a device of a personal data class is withheld from operators without a grant,
as measurements are.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, HTTPException, Path, Query, status
from psycopg import sql
from psycopg.rows import dict_row

from hypervision import audit, placement
from hypervision.alerts import lifecycle
from hypervision.api import schemas
from hypervision.api.deps import (
    AdminMember,
    Audit,
    Auditor,
    MemberScope,
    ReadMember,
    ReadSession,
    State,
    not_found,
)
from hypervision.api.params import finite
from hypervision.api.routes.measurements import withheld

router = APIRouter(tags=["alerts"])
AlertId = Annotated[int, Path(ge=1, lt=2**63, description="The alert's id.")]
ACTIONS: dict[int | str, dict[str, Any]] = {
    400: {"model": schemas.Problem}, 403: {"model": schemas.Problem},
    404: {"model": schemas.Problem}, 409: {"model": schemas.Problem}}

# What a person may do to an alert: the states it may be in, and the columns set.
TRANSITIONS: dict[str, tuple[tuple[str, ...], sql.SQL]] = {
    "acknowledge": (("open",), sql.SQL(
        "state = 'acknowledged', acknowledged_at = now(), acknowledged_by = %(by)s")),
    "close": (("open", "acknowledged"), sql.SQL(
        "state = 'closed', closed_at = now(), closed_by = %(by)s, close_reason = %(reason)s")),
}


def _alert(row: dict[str, Any]) -> schemas.Alert:
    for key in ("threshold", "value", "last_value"):
        row[key] = finite(row[key])
    return schemas.Alert(**row)


@router.get("/members/{slug}/alerts", response_model=schemas.Alerts,
            responses={404: {"model": schemas.Problem}})
def list_alerts(
    member: ReadMember, session: ReadSession, state: State, audit_: Audit,
    states: Annotated[list[Literal["open", "acknowledged", "closed"]], Query(
        alias="state", description="open, acknowledged or closed (repeatable); default all.",
        max_length=3)] = [],  # noqa: B006 (FastAPI copies defaults)
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> schemas.Alerts:
    """The member's alerts, newest first."""
    left_out = withheld(state, member, [])
    hidden = set(left_out)
    rows = [r for r in lifecycle.alerts(session, member.schema, states or None, limit)
            if r["dev_eui"] not in hidden]
    audit_.record("alerts.read", member.slug, target="*",
                  params={"state": list(states), "limit": limit, "grant": member.grant_id,
                          "withheld_devices": len(left_out)}, rows=len(rows))
    return schemas.Alerts(member=member.slug, items=[_alert(r) for r in rows],
                          withheld_devices=len(left_out))


def _read_alert(state: State, member: MemberScope, alert_id: int) -> dict[str, Any] | None:
    with state.dbs.reader(member.slug) as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            sql.SQL(
                "SELECT id, rule, dev_eui, condition, metric, threshold, severity, state,"
                " message, value, since, opened_at, last_value, checked_at, acknowledged_at,"
                " acknowledged_by, closed_at, closed_by, close_reason FROM {} WHERE id = %s"
            ).format(sql.Identifier(member.schema, "alerts")),
            (alert_id,),
        ).fetchone()


def _change(state: State, member: MemberScope, auditor: Auditor, alert_id: int, action: str,
            reason: str | None = None) -> schemas.Alert:
    """Steps: 1. the alert must exist and the caller may see its device (404 / 403);
    2. in one transaction, move it from an allowed state (409 otherwise) and write the
    audit entry; 3. answer with the alert as it now is."""
    found = _read_alert(state, member, alert_id)
    if found is None:
        raise not_found(f"alert {alert_id}")
    withheld(state, member, [found["dev_eui"]])
    allowed, changes = TRANSITIONS[action]
    who = auditor.who
    table = sql.Identifier(member.schema, "alerts")
    try:
        with state.dbs.changes(member.slug) as (conn, mconn), \
                placement.transaction(conn, mconn):
            row = mconn.execute(
                sql.SQL(
                    "WITH before AS (SELECT id, state FROM {t} WHERE id = %(id)s FOR UPDATE)"
                    " UPDATE {t} AS a SET {changes} FROM before b"
                    " WHERE a.id = b.id AND b.state = ANY(%(allowed)s) RETURNING b.state, a.state"
                ).format(t=table, changes=changes),
                {"id": alert_id, "allowed": list(allowed), "by": who.actor, "reason": reason},
            ).fetchone()
            if row is None:
                now = mconn.execute(sql.SQL("SELECT state FROM {} WHERE id = %s").format(
                    table), (alert_id,)).fetchone()
                if now is None:
                    raise not_found(f"alert {alert_id}")
                raise HTTPException(status.HTTP_409_CONFLICT, f"alert {alert_id} is {now[0]}")
            audit.record(conn, actor=who.actor, member=member.slug, action=f"alerts.{action}",
                         target=f"alert:{alert_id}",
                         params={"reason": reason, "token": member.principal.token_id,
                                 "grant": member.grant_id},
                         before={"state": row[0]}, after={"state": row[1]}, source="api",
                         request_id=who.request_id, remote_addr=who.remote_addr)
    except psycopg.errors.InsufficientPrivilege:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the API may not change this member's alerts yet: run `hypervision tenants apply`",
        ) from None
    changed = _read_alert(state, member, alert_id)
    assert changed is not None
    return _alert(changed)


@router.post("/members/{slug}/alerts/{alert_id}/acknowledge", response_model=schemas.Alert,
             responses=ACTIONS)
def acknowledge_alert(alert_id: AlertId, member: AdminMember, state: State,
                      audit_: Audit) -> schemas.Alert:
    """Someone is on it: open -> acknowledged (409 from any other state). Needs `admin`."""
    return _change(state, member, audit_, alert_id, "acknowledge")


@router.post("/members/{slug}/alerts/{alert_id}/close", response_model=schemas.Alert,
             responses=ACTIONS)
def close_alert(alert_id: AlertId, body: schemas.CloseAlertRequest, member: AdminMember,
                state: State, audit_: Audit) -> schemas.Alert:
    """Known, stop telling me: open or acknowledged -> closed (409 when already closed).
    The rule opens no new alert for the device until its condition has been seen clear.
    Needs `admin`."""
    return _change(state, member, audit_, alert_id, "close", body.reason)

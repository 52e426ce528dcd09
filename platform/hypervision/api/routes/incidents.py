"""The incident register, read-only (hypervision.syndicate.incidents; docs/syndicate.md):
a member's readers see its incidents with their legal clocks and the time left; the
syndicate's operators see every incident, the syndicate's own included, and the
notification drafts. Changes go through `hypervision incidents`, audited."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from hypervision.api.deps import (
    Audit,
    CurrentPrincipal,
    ReadMember,
    State,
    not_found,
    require_operator,
    require_right,
)
from hypervision.syndicate import incident_drafts, incidents

router = APIRouter(tags=["incidents"])


class ClockOut(BaseModel):
    name: str
    label: str
    due_at: dt.datetime
    filed_at: dt.datetime | None
    status: str
    seconds_left: int


class IncidentOut(BaseModel):
    id: int
    member: str | None
    title: str
    description: str
    detected_at: dt.datetime
    severity: str
    significant: bool
    systems: list[str]
    members_affected: list[str]
    breach: bool
    breach_known_at: dt.datetime | None
    data_classes: list[str]
    data_subjects: int | None
    actions: list[dict[str, Any]]
    state: str
    source: str
    clocks: list[ClockOut]


def _out(conn: Any, row: dict[str, Any], now: dt.datetime) -> IncidentOut:
    clocks = incidents.clocks(row, incidents.filings(conn, row["id"]))
    return IncidentOut(
        member=row["member_slug"], **{k: row[k] for k in (
            "id", "title", "description", "detected_at", "severity", "significant", "systems",
            "members_affected", "breach", "breach_known_at", "data_classes", "data_subjects",
            "actions", "state", "source")},
        clocks=[ClockOut(name=c.name, label=c.label, due_at=c.due_at, filed_at=c.filed_at,
                         status=c.status(now), seconds_left=int(c.left(now).total_seconds()))
                for c in clocks])


@router.get("/incidents", response_model=list[IncidentOut])
def all_incidents(principal: CurrentPrincipal, state: State, audit_: Audit) -> list[IncidentOut]:
    """Every incident (operators), newest first."""
    require_right(principal, "read")
    require_operator(principal)
    now = dt.datetime.now(dt.UTC)
    with state.dbs.control() as conn:
        found = [_out(conn, r, now) for r in incidents.listing(conn)]
    audit_.record("incidents.read", None, target="*", rows=len(found))
    return found


@router.get("/incidents/{incident_id}/drafts")
def incident_drafts_(incident_id: int, principal: CurrentPrincipal, state: State,
                     audit_: Audit) -> dict[str, dict[str, str]]:
    """The CNIL and CSIRT notification drafts of an incident (operators)."""
    require_right(principal, "read")
    require_operator(principal)
    with state.dbs.control() as conn:
        try:
            found = incident_drafts.drafts(conn, incident_id, dt.datetime.now(dt.UTC))
        except incidents.IncidentError:
            raise not_found(f"incident {incident_id}") from None
    audit_.record("incidents.drafts", None, target=f"incident:{incident_id}")
    return found


@router.get("/members/{slug}/incidents", response_model=list[IncidentOut])
def member_incidents(member: ReadMember, state: State, audit_: Audit) -> list[IncidentOut]:
    """The member's incidents with their clocks and time left."""
    now = dt.datetime.now(dt.UTC)
    with state.dbs.control() as conn:
        found = [_out(conn, r, now) for r in incidents.listing(conn, member.slug)]
    audit_.record("incidents.read", member.slug, target=member.slug, rows=len(found))
    return found

"""Members, their devices and device state, and the grants they give operators."""

from __future__ import annotations

from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, HTTPException, Path, Response, status
from psycopg import sql
from psycopg.rows import dict_row

from hypervision import accounts
from hypervision.api import schemas
from hypervision.api.deps import (
    AdminMember,
    Audit,
    CurrentPrincipal,
    ReadMember,
    ReadSession,
    State,
    forbidden,
    not_found,
    require_right,
)
from hypervision.api.params import DEV_EUI

router = APIRouter(tags=["members"])
DevEuiPath = Annotated[str, Path(pattern=DEV_EUI.pattern, description="16 lower-case hex digits.")]
GrantId = Annotated[int, Path(ge=1, lt=2**63)]

_MEMBER_QUERY = """
    SELECT m.slug, m.name, m.kind, m.siren, m.suspended,
           (SELECT count(*) FROM hv.devices d WHERE d.member_slug = m.slug AND d.active),
           m.spec -> 'contacts' -> 'dpo', coalesce(m.spec -> 'retention', '{}')
    FROM hv.members m
"""


def _member(row: Any) -> schemas.Member:
    return schemas.Member(slug=row[0], name=row[1], kind=row[2], siren=row[3], suspended=row[4],
                          devices=row[5], dpo=row[6], retention=row[7])


@router.get("/members", response_model=list[schemas.Member])
def list_members(principal: CurrentPrincipal, state: State, audit_: Audit) -> list[schemas.Member]:
    """The caller's member; for operators, every member."""
    require_right(principal, "read")
    with state.dbs.control() as conn:
        if principal.operator:
            rows = conn.execute(_MEMBER_QUERY + " ORDER BY m.slug").fetchall()
        else:
            rows = conn.execute(_MEMBER_QUERY + " WHERE m.slug = %s",
                                (principal.member_slug,)).fetchall()
    audit_.record("members.read", None if principal.operator else principal.member_slug,
                  target="*", rows=len(rows))
    return [_member(r) for r in rows]


@router.get("/members/{slug}", response_model=schemas.Member,
            responses={404: {"model": schemas.Problem}})
def get_member(member: ReadMember, state: State, audit_: Audit) -> schemas.Member:
    with state.dbs.control() as conn:
        row = conn.execute(_MEMBER_QUERY + " WHERE m.slug = %s", (member.slug,)).fetchone()
    audit_.record("members.read", member.slug, target=member.slug, rows=1)
    return _member(row)


def _devices(state: State, slug: str, dev_eui: str | None) -> list[dict[str, Any]]:
    with state.dbs.control() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT dev_eui, name, model_id, active, spec FROM hv.devices"
            " WHERE member_slug = %s AND (%s::text IS NULL OR dev_eui = %s) ORDER BY dev_eui",
            (slug, dev_eui, dev_eui),
        ).fetchall()


def _states(conn: psycopg.Connection, schema: str, dev_euis: list[str]) -> dict[str, Any]:
    rows = conn.execute(
        sql.SQL("SELECT s.dev_eui, to_jsonb(s) - 'dev_eui' FROM {}.device_state s"
                        " WHERE s.dev_eui = ANY(%s)").format(sql.Identifier(schema)),
        (dev_euis,),
    ).fetchall()
    return {r[0]: r[1] for r in rows}


# What replaces the name of a device of a personal data class for a caller without the
# right to the member's personal data: such names are often an address.
WITHHELD_NAME = "(personal data withheld)"


def _device(row: dict[str, Any], state_row: Any, personal_data: bool) -> schemas.Device:
    """A device as the caller may see it: where a household's meter is (its location and
    name) is personal data, shown only to the member and to operators holding a grant."""
    spec = row["spec"] or {}
    data_class = spec.get("data_class", "technical")
    hidden = data_class in accounts.PERSONAL_DATA_CLASSES and not personal_data
    return schemas.Device(
        dev_eui=row["dev_eui"], name=WITHHELD_NAME if hidden else row["name"],
        model=row["model_id"], data_class=data_class, active=row["active"],
        purpose=spec.get("purpose", ""), installed_on=spec.get("installed_on"),
        location=None if hidden else spec.get("location"), state=state_row,
    )


@router.get("/members/{slug}/devices", response_model=list[schemas.Device],
            responses={404: {"model": schemas.Problem}})
def list_devices(member: ReadMember, session: ReadSession, state: State,
                 audit_: Audit) -> list[schemas.Device]:
    """The member's devices with their latest state (last seen, signal, battery)."""
    rows = _devices(state, member.slug, None)
    states = _states(session, member.schema, [r["dev_eui"] for r in rows])
    audit_.record("devices.read", member.slug, target="*", rows=len(rows))
    return [_device(r, states.get(r["dev_eui"]), member.personal_data) for r in rows]


@router.get("/members/{slug}/devices/{dev_eui}", response_model=schemas.Device,
            responses={404: {"model": schemas.Problem}})
def get_device(member: ReadMember, session: ReadSession, dev_eui: DevEuiPath, state: State,
               audit_: Audit) -> schemas.Device:
    rows = _devices(state, member.slug, dev_eui)
    if not rows:
        raise not_found(f"device {dev_eui}")
    states = _states(session, member.schema, [dev_eui])
    audit_.record("devices.read", member.slug, target=dev_eui, rows=1)
    return _device(rows[0], states.get(dev_eui), member.personal_data)


def _grant(g: accounts.Grant) -> schemas.Grant:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    return schemas.Grant(id=g.id, operator_email=g.operator_email, member=g.member_slug,
                         reason=g.reason, starts_at=g.starts_at, expires_at=g.expires_at,
                         revoked_at=g.revoked_at,
                         active=g.revoked_at is None and g.starts_at <= now < g.expires_at)


@router.get("/members/{slug}/grants", response_model=list[schemas.Grant], tags=["grants"],
            responses={404: {"model": schemas.Problem}})
def list_grants(member: AdminMember, state: State) -> list[schemas.Grant]:
    """The grants this member gave operators to read its personal data."""
    with state.dbs.control() as conn:
        return [_grant(g) for g in accounts.list_grants(conn, member.slug)]


@router.post("/members/{slug}/grants", response_model=schemas.Grant, tags=["grants"],
             status_code=status.HTTP_201_CREATED, responses={404: {"model": schemas.Problem}})
def create_grant(body: schemas.GrantRequest, member: AdminMember, state: State,
                 audit_: Audit) -> schemas.Grant:
    """Let one of the syndicate's operators read this member's personal data for a while."""
    if not member.own:
        raise forbidden("only the member itself grants access to its personal data")
    try:
        with state.dbs.control() as conn:
            grant = accounts.create_grant(conn, audit_.who, operator_email=str(body.operator_email),
                                          member=member.slug, hours=body.hours,
                                          reason=body.reason)
    except accounts.AccountError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    return _grant(grant)


@router.delete("/members/{slug}/grants/{grant_id}", status_code=status.HTTP_204_NO_CONTENT,
               tags=["grants"], responses={404: {"model": schemas.Problem}})
def revoke_grant(grant_id: GrantId, member: AdminMember, state: State, audit_: Audit) -> Response:
    if not member.own:
        raise forbidden("only the member itself revokes its grants")
    with state.dbs.control() as conn:
        if not accounts.revoke_grant(conn, audit_.who, grant_id, member=member.slug):
            raise not_found(f"grant {grant_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)

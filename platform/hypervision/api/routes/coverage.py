"""Radio coverage (hypervision.syndicate.coverage; docs/syndicate.md): per device the
gateways hearing it and its margin, at-risk devices, gateways hearing none, as JSON or
as an SVG map drawn without outside tiles. A member sees its own devices (and the
network's gateways); the syndicate's operators see the whole network."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from hypervision import accounts
from hypervision.accounts import Principal
from hypervision.api.deps import (
    Audit,
    CurrentPrincipal,
    ReadMember,
    State,
    require_operator,
    require_right,
)
from hypervision.syndicate import coverage, coverage_map

router = APIRouter(tags=["coverage"])
Days = Annotated[int, Query(ge=1, le=400, description="Window: the last N days.")]
SVG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/svg+xml": {}}}}


class LinkOut(BaseModel):
    gateway_id: str
    frames: int
    rssi_mean: float | None
    snr_mean: float | None
    snr_best: float | None
    last_heard: dt.datetime


class DeviceOut(BaseModel):
    member: str
    dev_eui: str
    name: str
    lat: float | None
    lon: float | None
    margin_db: float | None
    at_risk: bool
    links: list[LinkOut]


class GatewayOut(BaseModel):
    gateway_id: str
    name: str
    lat: float | None
    lon: float | None
    devices: list[str]


class CoverageOut(BaseModel):
    start: dt.datetime
    end: dt.datetime
    devices: list[DeviceOut]
    gateways: list[GatewayOut]
    at_risk: list[str]
    idle_gateways: list[str]


def _compute(state: State, principal: Principal, slugs: list[str] | None,
             days: int) -> coverage.Coverage:
    """The members' coverage; personal devices withheld for members whose personal data
    the caller may not read (no grant)."""
    end = dt.datetime.now(dt.UTC)
    with state.dbs.control() as conn:
        members = [tuple(r) for r in conn.execute(
            "SELECT slug, schema_name FROM hv.members WHERE %(m)s::text[] IS NULL"
            " OR slug = ANY(%(m)s) ORDER BY slug", {"m": slugs}).fetchall()]
        closed = {slug for slug, _ in members if slug != principal.member_slug
                  and accounts.active_grant(conn, principal.account.id, slug) is None}
        declared = coverage.declared_gateways(state.settings.network_dir)
        gateways = coverage.network_gateways(conn, declared)
        found = coverage.coverage(conn, state.dbs.reader, members,
                                  gateways, end - dt.timedelta(days=days), end)
    return coverage.withhold(found, closed)


def _json(c: coverage.Coverage) -> CoverageOut:
    return CoverageOut(
        start=c.start, end=c.end,
        devices=[DeviceOut(member=d.member, dev_eui=d.dev_eui, name=d.name, lat=d.lat,
                           lon=d.lon, margin_db=d.margin_db, at_risk=d.at_risk,
                           links=[LinkOut(**{k: getattr(link, k) for k in LinkOut.model_fields})
                                  for link in d.links]) for d in c.devices],
        gateways=[GatewayOut(**vars(g)) for g in c.gateways],
        at_risk=[d.dev_eui for d in c.at_risk],
        idle_gateways=[g.gateway_id for g in c.idle_gateways])


def _operator(principal: Principal) -> None:
    require_right(principal, "read")
    require_operator(principal)


@router.get("/coverage.svg", response_class=Response, responses=SVG)
def network_coverage_svg(principal: CurrentPrincipal, state: State, audit_: Audit,
                         days: Days = 30) -> Response:
    """The whole network's map (operators)."""
    _operator(principal)
    c = _compute(state, principal, None, days)
    audit_.record("coverage.read", None, target="*", params={"days": days, "format": "svg"})
    return Response(coverage_map.svg(c, "Couverture radio du réseau"),
                    media_type="image/svg+xml")


@router.get("/coverage", response_model=CoverageOut)
def network_coverage(principal: CurrentPrincipal, state: State, audit_: Audit,
                     days: Days = 30) -> CoverageOut:
    """Every member's devices (operators)."""
    _operator(principal)
    c = _compute(state, principal, None, days)
    audit_.record("coverage.read", None, target="*", params={"days": days, "format": "json"})
    return _json(c)


@router.get("/members/{slug}/coverage.svg", response_class=Response, responses=SVG)
def member_coverage_svg(member: ReadMember, state: State, audit_: Audit,
                        days: Days = 30) -> Response:
    c = _compute(state, member.principal, [member.slug], days)
    audit_.record("coverage.read", member.slug, target=member.slug,
                  params={"days": days, "format": "svg"})
    return Response(coverage_map.svg(c, f"Couverture radio — {member.slug}"),
                    media_type="image/svg+xml")


@router.get("/members/{slug}/coverage", response_model=CoverageOut)
def member_coverage(member: ReadMember, state: State, audit_: Audit,
                    days: Days = 30) -> CoverageOut:
    """The member's devices: gateways hearing each, margin, at risk."""
    c = _compute(state, member.principal, [member.slug], days)
    audit_.record("coverage.read", member.slug, target=member.slug,
                  params={"days": days, "format": "json"})
    return _json(c)

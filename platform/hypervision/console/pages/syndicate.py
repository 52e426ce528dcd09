"""The syndicate's own page for its operators (docs/syndicate.md): the incidents still
open with their legal clocks and the time left, the radio coverage map of the last 30
days, and each member's statement of the network's shared costs for a year, as a PDF
or CSV download. A member's readers see their own statement line by line
(/console/m/<slug>/costs)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from markupsafe import Markup

from hypervision import accounts
from hypervision.api.deps import Audit, State, not_found
from hypervision.console.session import OperatorUser, ReadPage
from hypervision.console.web import render
from hypervision.syndicate import costs, coverage, coverage_map, incidents
from hypervision.syndicate.spec import NetworkSpecError, load

router = APIRouter()
Year = Annotated[int, Path(ge=2000, le=2100)]
SEVERITY_FR = {"low": "faible", "medium": "modérée", "high": "élevée", "critical": "critique"}


def _left(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    hours, rest = divmod(abs(minutes), 60)
    days, hours = divmod(hours, 24)
    text = f"{days} j {hours} h {rest:02d}" if days else f"{hours} h {rest:02d}"
    return f"−{text}" if minutes < 0 else text


@router.get("/syndicate", name="console_syndicate")
def overview(request: Request, principal: OperatorUser, state: State, audit_: Audit,
             year: Annotated[int | None, Query(ge=2000, le=2100)] = None) -> Response:
    now = dt.datetime.now(dt.UTC)
    rows = []
    with state.dbs.control() as conn:
        for r in incidents.listing(conn, state="open"):
            pending = [c for c in incidents.clocks(r, incidents.filings(conn, r["id"]))
                       if c.filed_at is None]
            nearest = min(pending, key=lambda c: c.due_at, default=None)
            rows.append({**r, "clock": nearest,
                         "left": None if nearest is None else _left(nearest.left(now)),
                         "overdue": nearest is not None and nearest.status(now) == "overdue"})
        members = [tuple(m) for m in conn.execute(
            "SELECT slug, schema_name FROM hv.members ORDER BY slug").fetchall()]
        gateways = coverage.network_gateways(
            conn, coverage.declared_gateways(state.settings.network_dir))
        closed = {slug for slug, _ in members if slug != principal.member_slug
                  and accounts.active_grant(conn, principal.account.id, slug) is None}
        found = coverage.withhold(coverage.coverage(
            conn, state.dbs.reader, members, gateways,
            now - dt.timedelta(days=30), now), closed)
        names = dict(conn.execute("SELECT slug, name FROM hv.members").fetchall())
    try:
        model = load(state.settings.network_dir).costs
        years = sorted(model.years, reverse=True)
        cost_members = model.members
        problem = None
    except NetworkSpecError as exc:
        years, cost_members, problem = [], [], str(exc).splitlines()[0]
    chosen = year if year in years else (years[0] if years else None)
    audit_.record("incidents.read", None, target="*", rows=len(rows))
    audit_.record("coverage.read", None, target="*", params={"days": 30, "format": "console"})
    # The map is drawn by coverage_map.svg, which escapes every text it writes.
    picture = Markup(coverage_map.svg(found, "Couverture radio du réseau, 30 jours"))
    return render(request, "syndicate.html", incidents=rows, coverage=found, map=picture,
                  years=years, year=chosen, cost_members=cost_members, names=names,
                  problem=problem, severities_fr=SEVERITY_FR)


@router.get("/syndicate/costs/{slug}/{year}.{fmt}", name="console_costs")
def statement(slug: str, year: Year, fmt: str, principal: OperatorUser, state: State,
              audit_: Audit) -> Response:
    """A member's statement (operators), as the API's `costs` routes give it."""
    return _file(state, audit_, slug, year, fmt)


def _file(state: State, audit_: Audit, slug: str, year: int, fmt: str) -> Response:
    if fmt not in ("pdf", "csv"):
        raise not_found(f"format {fmt}")
    try:
        s = _statement(state, slug, year)
    except (NetworkSpecError, costs.CostError):
        raise not_found(f"statement of {slug} for {year}") from None
    audit_.record("costs.read", slug, target=str(year), params={"format": fmt},
                  rows=len(s.lines))
    if fmt == "csv":
        return Response(costs.to_csv(s), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition":
                                 f'attachment; filename="costs-{slug}-{year}.csv"'})
    with state.dbs.control() as conn:
        heading = costs.letterhead(conn, slug)
    return Response(costs.to_pdf(s, *heading),
                    media_type="application/pdf",
                    headers={"Content-Disposition":
                             f'attachment; filename="costs-{slug}-{year}.pdf"'})

def _statement(state: State, slug: str, year: int) -> costs.Statement:
    net = load(state.settings.network_dir)
    with state.dbs.control() as conn:
        members = costs.cost_members(conn, net)
        used = costs.year_usage(conn, state.dbs.reader, members, year)
    return costs.statement(net, year, slug, used)


@router.get("/m/{slug}/costs", name="console_member_costs")
def member_costs(request: Request, member: ReadPage, state: State, audit_: Audit,
                 year: Annotated[int | None, Query(ge=2000, le=2100)] = None) -> Response:
    """The member's statement for a year, line by line, with its PDF and CSV."""
    try:
        model = load(state.settings.network_dir).costs
        years = sorted(model.years, reverse=True) if member.slug in model.members else []
    except NetworkSpecError:
        years = []
    chosen = year if year in years else (years[0] if years else None)
    found = None
    if chosen is not None:
        try:
            found = _statement(state, member.slug, chosen)
        except (NetworkSpecError, costs.CostError):
            found = None
        else:
            audit_.record("costs.read", member.slug, target=str(chosen),
                          params={"format": "console"}, rows=len(found.lines))
    return render(request, "costs.html", member=member, years=years, year=chosen,
                  statement=found, key_fr=costs.KEY_FR, number=costs.number)


@router.get("/m/{slug}/costs/{year}.{fmt}", name="console_member_costs_file")
def member_costs_file(member: ReadPage, state: State, audit_: Audit, year: Year,
                      fmt: str) -> Response:
    return _file(state, audit_, member.slug, year, fmt)

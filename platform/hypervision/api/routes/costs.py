"""A member's yearly statement of the network's shared costs (hypervision.syndicate.costs;
docs/syndicate.md), as JSON, CSV or a printable PDF. The member's own readers and the
syndicate's operators may read it; a stranger gets 404."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response
from pydantic import BaseModel

from hypervision.api.deps import Audit, MemberScope, ReadMember, State
from hypervision.syndicate import costs
from hypervision.syndicate.spec import NetworkSpecError, load

router = APIRouter(tags=["costs"])
Year = Annotated[int, Path(ge=2000, le=2100, description="The calendar year.")]


class StatementLine(BaseModel):
    cost: str
    label: str
    key: str
    member_basis: Decimal
    total_basis: Decimal
    cost_amount: Decimal
    amount: Decimal


class Statement(BaseModel):
    member: str
    year: int
    currency: str
    lines: list[StatementLine]
    total: Decimal


def _statement(state: State, member: MemberScope, year: int, audit_: Audit,
               fmt: str) -> costs.Statement:
    try:
        net = load(state.settings.network_dir)
        with state.dbs.control() as conn:
            members = costs.cost_members(conn, net)
            used = costs.year_usage(conn, state.dbs.reader, members, year)
        s = costs.statement(net, year, member.slug, used)
    except (NetworkSpecError, costs.CostError) as exc:
        raise HTTPException(404, str(exc)) from None
    audit_.record("costs.read", member.slug, target=str(year), params={"format": fmt},
                  rows=len(s.lines))
    return s


@router.get("/members/{slug}/costs/{year}.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}}})
def member_costs_csv(member: ReadMember, state: State, audit_: Audit, year: Year) -> Response:
    s = _statement(state, member, year, audit_, "csv")
    return Response(costs.to_csv(s), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition":
                             f'attachment; filename="costs-{member.slug}-{year}.csv"'})


@router.get("/members/{slug}/costs/{year}.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def member_costs_pdf(member: ReadMember, state: State, audit_: Audit, year: Year) -> Response:
    s = _statement(state, member, year, audit_, "pdf")
    with state.dbs.control() as conn:
        heading = costs.letterhead(conn, member.slug)
    body = costs.to_pdf(s, *heading)
    return Response(body, media_type="application/pdf",
                    headers={"Content-Disposition":
                             f'inline; filename="costs-{member.slug}-{year}.pdf"'})


# Declared after the .csv and .pdf routes, which its {year} would otherwise catch.
@router.get("/members/{slug}/costs/{year}", response_model=Statement,
            responses={404: {"description": "Unknown member, or no statement that year."}})
def member_costs(member: ReadMember, state: State, audit_: Audit, year: Year) -> Statement:
    """The member's statement, line by line: each cost, its key, the member's and the
    total basis, the cost and the member's share of it."""
    s = _statement(state, member, year, audit_, "json")
    return Statement(member=s.member, year=s.year, currency=s.currency, total=s.total,
                     lines=[StatementLine(**vars(line)) for line in s.lines])

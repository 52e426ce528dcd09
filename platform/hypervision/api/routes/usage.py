"""Usage per member and day (uplinks, bytes, active devices, storage), as JSON or CSV."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from hypervision import usage
from hypervision.accounts import Principal
from hypervision.api import schemas
from hypervision.api.deps import AppState, Audit, CurrentPrincipal, ReadMember, State, require_right
from hypervision.api.params import EARLIEST, LATEST, bad_request

router = APIRouter(tags=["usage"])
StartDay = Annotated[date | None, Query(description="First day (UTC); default 30 days ago.")]
EndDay = Annotated[date | None, Query(description="Last day, included; default today.")]
CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "One row per member and day."}}


def _days(start: date | None, end: date | None) -> tuple[date, date]:
    end = end or usage.today()
    start = start or end - timedelta(days=29)
    for name, day in (("start", start), ("end", end)):
        if not EARLIEST.date() <= day <= LATEST.date():
            raise bad_request(f"{name} must lie between {EARLIEST:%Y} and {LATEST:%Y}")
    if start > end:
        raise bad_request("start must not be after end")
    if (end - start).days >= usage.MAX_DAYS:
        raise bad_request(f"at most {usage.MAX_DAYS} days at a time")
    return start, end


def _members(state: AppState, principal: Principal, slug: str | None) -> list[tuple[str, str]]:
    with state.dbs.control() as conn:
        if slug is not None or not principal.operator:
            return [tuple(r) for r in conn.execute(
                "SELECT slug, schema_name FROM hv.members WHERE slug = %s",
                (slug or principal.member_slug,)).fetchall()]
        return [tuple(r) for r in conn.execute(
            "SELECT slug, schema_name FROM hv.members ORDER BY slug").fetchall()]


def _usage(state: AppState, audit_: Audit, principal: Principal, slug: str | None,
           start: date | None, end: date | None, fmt: str) -> list[usage.UsageDay]:
    first, last = _days(start, end)
    members = _members(state, principal, slug)
    with state.dbs.control() as conn:
        rows = usage.daily_usage(conn, state.dbs.reader, members, first, last)
    audit_.record("usage.read", slug if slug else (None if principal.operator
                                                   else principal.member_slug),
                  target=slug or "*", params={"start": first, "end": last, "format": fmt},
                  rows=len(rows))
    return rows


def _json(rows: list[usage.UsageDay], start: date | None, end: date | None) -> schemas.Usage:
    first, last = _days(start, end)
    return schemas.Usage(start=first, end=last,
                         days=[schemas.UsageDay(**vars(r)) for r in rows])


@router.get("/usage", response_model=schemas.Usage)
def all_usage(principal: CurrentPrincipal, state: State, audit_: Audit,
              start: StartDay = None, end: EndDay = None) -> schemas.Usage:
    """Every member's usage for operators; the caller's member's otherwise."""
    require_right(principal, "read")
    return _json(_usage(state, audit_, principal, None, start, end, "json"), start, end)


@router.get("/usage.csv", response_class=Response, responses=CSV)
def all_usage_csv(principal: CurrentPrincipal, state: State, audit_: Audit,
                  start: StartDay = None, end: EndDay = None) -> Response:
    require_right(principal, "read")
    rows = _usage(state, audit_, principal, None, start, end, "csv")
    return Response(usage.to_csv(rows), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="usage.csv"'})


@router.get("/members/{slug}/usage", response_model=schemas.Usage,
            responses={404: {"model": schemas.Problem}})
def member_usage(member: ReadMember, state: State, audit_: Audit,
                 start: StartDay = None, end: EndDay = None) -> schemas.Usage:
    rows = _usage(state, audit_, member.principal, member.slug, start, end, "json")
    return _json(rows, start, end)


@router.get("/members/{slug}/usage.csv", response_class=Response,
            responses={**CSV, 404: {"model": schemas.Problem}})
def member_usage_csv(member: ReadMember, state: State, audit_: Audit,
                     start: StartDay = None, end: EndDay = None) -> Response:
    rows = _usage(state, audit_, member.principal, member.slug, start, end, "csv")
    return Response(usage.to_csv(rows), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition":
                             f'attachment; filename="usage-{member.slug}.csv"'})

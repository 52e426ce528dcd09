"""Sharing agreements through the API: the agreements a member grants or receives, and the
measurements a recipient reads under one. Reads go through the recipient's reader role
and the agreement's views (hypervision.sharing.agreements), so the database, not this
module, decides what is visible; each read is written to both members' journals."""

from __future__ import annotations

from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, HTTPException, Path, Query
from psycopg import sql
from psycopg.rows import dict_row

from hypervision.api.deps import Audit, ReadMember, ReadSession, State, not_found
from hypervision.api.params import End, Start, time_range
from hypervision.sharing import deliveries
from hypervision.tenancy.spec import SHARE_NAME, SLUG

router = APIRouter(tags=["sharing"])
MAX_ROWS = 10_000
COLUMNS = ("id", "provider", "name", "recipient_member", "recipient_partner", "schema_name",
           "starts_at", "ends_at", "state", "ended_at")


def agreements_of(state: State, slug: str) -> list[dict[str, Any]]:
    """The agreements a member grants or receives, newest first."""
    with state.dbs.control() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT *, spec ->> 'purpose' AS purpose, spec ->> 'legal_basis' AS legal_basis,"
            " spec -> 'data_classes' AS data_classes, spec -> 'metrics' AS metrics"
            " FROM hv.share_agreements WHERE provider = %(m)s OR recipient_member = %(m)s"
            " ORDER BY id DESC", {"m": slug}).fetchall()


@router.get("/members/{slug}/shares")
def list_shares(member: ReadMember, state: State) -> list[dict[str, Any]]:
    """Agreements this member grants (`provider` is the member) or receives."""
    keep = (*COLUMNS, "purpose", "legal_basis", "data_classes", "metrics")
    return [{k: row[k] for k in keep} for row in agreements_of(state, member.slug)]


@router.get("/members/{slug}/shares/deliveries")
def list_deliveries(member: ReadMember, state: State) -> list[dict[str, Any]]:
    """The delivery log of the agreements this member grants or receives, newest first:
    the same rows for both sides."""
    with state.dbs.control() as conn:
        return deliveries.log_of(conn, member.slug)


@router.get("/members/{slug}/shares/{provider}/{name}/measurements")
def read_shared(
    member: ReadMember, session: ReadSession, state: State, audit_: Audit,
    provider: Annotated[str, Path(pattern=SLUG)],
    name: Annotated[str, Path(pattern=SHARE_NAME)],
    start: Start = None, end: End = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ROWS)] = 1000,
) -> dict[str, Any]:
    """Measurements shared with this member under the agreement, in [start, end), oldest
    first. 404 for an agreement the member does not receive; 403 once it has ended."""
    start, end = time_range(start, end)
    row = next((a for a in agreements_of(state, member.slug)
                if a["provider"] == provider and a["name"] == name
                and a["recipient_member"] == member.slug), None)
    if row is None:
        raise not_found(f"agreement '{provider}/{name}'")
    query = sql.SQL("SELECT time, device, metric, value, unit FROM {} WHERE time >= %s"
                    " AND time < %s ORDER BY time, device, metric LIMIT %s").format(
        sql.Identifier(row["schema_name"], "measurements"))
    try:
        with session.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(query, (start, end, limit)).fetchall()
    except psycopg.errors.InsufficientPrivilege:
        raise HTTPException(403, f"agreement '{provider}/{name}' is not in force") from None
    params = {"agreement": f"{provider}/{name}", "start": start.isoformat(),
              "end": end.isoformat()}
    for slug, side in ((provider, "provider"), (member.slug, "recipient")):
        audit_.record("share.read", slug, target=f"{row['schema_name']}.measurements",
                      params={**params, "side": side}, rows=len(rows))
    return {"agreement": f"{provider}/{name}", "measurements": rows}

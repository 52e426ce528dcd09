"""Dead letters: what could not be processed, with its reason (operators only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from psycopg.rows import dict_row

from hypervision.api import schemas
from hypervision.api.deps import Audit, CurrentPrincipal, State, require_operator, require_right
from hypervision.api.params import Cursor, End, Start, decode_cursor, encode_cursor, time_range
from hypervision.tenancy.spec import SLUG

router = APIRouter(tags=["operations"])


@router.get("/dead-letters", response_model=schemas.DeadLetters,
            responses={400: {"model": schemas.Problem}, 403: {"model": schemas.Problem}})
def list_dead_letters(
    principal: CurrentPrincipal, state: State, audit_: Audit,
    start: Start = None, end: End = None,
    member: Annotated[str | None, Query(pattern=SLUG)] = None,
    reason: Annotated[str | None, Query(pattern=r"^[a-z_]{1,40}$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Cursor = None,
) -> schemas.DeadLetters:
    """Dead letters received in [start, end) (default: the last 24 hours), newest first.
    Payloads are not returned: they may hold a member's data."""
    require_operator(principal)
    require_right(principal, "read")
    start, end = time_range(start, end)
    before_id = decode_cursor(cursor, (int,))[0] if cursor else None
    with state.dbs.control() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """
            SELECT id, received_at, recorded_at, origin, event_type, dev_eui,
                   member_slug AS member, reason, detail, octet_length(payload) AS payload_bytes
            FROM hv.dead_letters
            WHERE received_at >= %(start)s AND received_at < %(end)s
              AND (%(member)s::text IS NULL OR member_slug = %(member)s)
              AND (%(reason)s::text IS NULL OR reason = %(reason)s)
              AND (%(before)s::bigint IS NULL OR id < %(before)s)
            ORDER BY id DESC LIMIT %(limit)s
            """,
            {"start": start, "end": end, "member": member, "reason": reason,
             "before": before_id, "limit": limit + 1},
        ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    audit_.record("dead-letters.read", member, params={"start": start, "end": end,
                                                      "reason": reason, "cursor": cursor},
                  rows=len(rows))
    return schemas.DeadLetters(items=[schemas.DeadLetter(**r) for r in rows],
                               next_cursor=encode_cursor(rows[-1]["id"]) if more else None)

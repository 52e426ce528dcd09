"""A member's own audit trail: who read, exported or changed what, and when."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from psycopg.rows import dict_row

from hypervision.api import schemas
from hypervision.api.deps import Audit, ReadMember, State
from hypervision.api.params import Cursor, End, Start, decode_cursor, encode_cursor, time_range

router = APIRouter(tags=["audit"])
ACTION = r"^[a-z][a-z0-9_.-]{0,63}$"


@router.get("/members/{slug}/audit", response_model=schemas.AuditTrail,
            responses={400: {"model": schemas.Problem}, 404: {"model": schemas.Problem}})
def read_audit(
    member: ReadMember, state: State, audit_: Audit,
    start: Start = None, end: End = None,
    action: Annotated[str | None, Query(pattern=ACTION, description="e.g. export.csv")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Cursor = None,
) -> schemas.AuditTrail:
    """Entries about this member in [start, end) (default: the last 30 days), newest
    first. Each carries the hash that chains it to the previous one.

    Addresses and failed logins are the member's admins' to see: a caller without the
    `admin` right (or an operator without a grant) gets the other people's entries
    without their address, and none of their `auth.*` entries (failed logins)."""
    from datetime import timedelta

    start, end = time_range(start, end, default=timedelta(days=30))
    before_id = decode_cursor(cursor, (int,))[0] if cursor else None
    full = "admin" in member.principal.rights and member.personal_data
    me = member.principal.actor
    with state.dbs.control() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """
            SELECT id, at, actor, member_slug AS member, action, target, params, rows, source,
                   remote_addr, request_id, before, after, encode(hash, 'hex') AS hash
            FROM hv.audit_log
            WHERE member_slug = %(m)s AND at >= %(start)s AND at < %(end)s
              AND (%(action)s::text IS NULL OR action = %(action)s)
              AND (%(full)s OR actor = %(me)s OR action NOT LIKE 'auth.%%')
              AND (%(before)s::bigint IS NULL OR id < %(before)s)
            ORDER BY id DESC LIMIT %(limit)s
            """,
            {"m": member.slug, "start": start, "end": end, "action": action,
             "before": before_id, "limit": limit + 1, "full": full, "me": me},
        ).fetchall()
    if not full:
        for row in rows:
            if row["actor"] != me:
                row["remote_addr"] = None
    more = len(rows) > limit
    rows = rows[:limit]
    audit_.record("audit.read", member.slug, params={"start": start, "end": end,
                                                     "action": action, "cursor": cursor},
                  rows=len(rows))
    return schemas.AuditTrail(member=member.slug,
                              items=[schemas.AuditEntry(**r) for r in rows],
                              next_cursor=encode_cursor(rows[-1]["id"]) if more else None)

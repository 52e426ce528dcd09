"""The journal, for the member's DPO and admins (and operators): the audit trail with
filters and its CSV, the chain's verification, the register of processing activities
(art. 30, the public page), what retention deletes and when, and usage per month.

Who may open it: an account with the `admin` right, the DPO declared in the member's
file (contacts.dpo.email), or an operator; anyone else with `read` gets 403.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from psycopg.rows import dict_row

from hypervision import audit, usage
from hypervision.api.deps import Audit, MemberScope, State, forbidden
from hypervision.console.pages.common import day_start, local_today, member_facts, parse_day
from hypervision.console.session import ReadPage
from hypervision.console.web import lang_of, render

router = APIRouter()
LIMIT = 100
CLASS_NAMES = {
    "raw": ("Messages bruts", "Raw uplinks"),
    "water-consumption": ("Consommation d'eau", "Water consumption"),
    "waste-fill": ("Remplissage des conteneurs", "Container fill"),
    "indoor-air": ("Qualité de l'air intérieur", "Indoor air"),
    "energy": ("Énergie", "Energy"), "lighting": ("Éclairage", "Lighting"),
    "technical": ("Données techniques", "Technical data"),
}


def journal_member(member: ReadPage, state: State) -> MemberScope:
    principal = member.principal
    if "admin" in principal.rights or principal.operator:
        return member
    with state.dbs.control() as conn:
        row = conn.execute("SELECT lower(spec -> 'contacts' -> 'dpo' ->> 'email')"
                           " FROM hv.members WHERE slug = %s", (member.slug,)).fetchone()
    if member.own and row and row[0] == principal.account.email:
        return member
    raise forbidden("the journal is for the member's DPO and admins")


JournalPage = Annotated[MemberScope, Depends(journal_member)]


def _entries(state: State, slug: str, action: str, actor: str, start: dt.datetime,
             end: dt.datetime, before: int | None, limit: int) -> list[dict[str, Any]]:
    with state.dbs.control() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT id, at, actor, action, target, params, rows, source, remote_addr,
                   request_id, encode(hash, 'hex') AS hash
            FROM hv.audit_log
            WHERE member_slug = %(m)s AND at >= %(start)s AND at < %(end)s
              AND (%(action)s = '' OR action LIKE %(action_like)s)
              AND (%(actor)s = '' OR actor ILIKE %(actor_like)s)
              AND (%(before)s::bigint IS NULL OR id < %(before)s)
            ORDER BY id DESC LIMIT %(limit)s
            """,
            {"m": slug, "start": start, "end": end, "action": action,
             "action_like": action.replace("%", "").replace("_", r"\_") + "%",
             "actor": actor, "actor_like": "%" + actor.replace("%", "") + "%",
             "before": before, "limit": limit},
        ).fetchall()


def _range(start: str, end: str) -> tuple[dt.date, dt.date]:
    last = parse_day(end) or local_today()
    first = parse_day(start) or last - dt.timedelta(days=29)
    return first, last


@router.get("/m/{slug}/journal", name="console_journal")
def journal(
    request: Request, member: JournalPage, state: State, audit_: Audit,
    action: Annotated[str, Query(max_length=64)] = "",
    actor: Annotated[str, Query(max_length=254)] = "",
    start: Annotated[str, Query(max_length=10)] = "",
    end: Annotated[str, Query(max_length=10)] = "",
    before: Annotated[int | None, Query(ge=1, lt=2**63)] = None,
) -> Response:
    first, last = _range(start, end)
    rows = _entries(state, member.slug, action, actor, day_start(first),
                    day_start(last + dt.timedelta(days=1)), before, LIMIT + 1)
    more = len(rows) > LIMIT
    rows = rows[:LIMIT]
    audit_.record("audit.read", member.slug,
                  params={"start": first, "end": last, "action": action or None,
                          "actor": actor or None, "before": before}, rows=len(rows))
    facts = member_facts(state, member)
    lang = lang_of(request)
    return render(request, "journal.html", member=facts, rows=rows, more=more,
                  next_before=rows[-1]["id"] if more and rows else None,
                  query={"action": action, "actor": actor, "start": first.isoformat(),
                         "end": last.isoformat()},
                  retention=_retention(facts["retention"], lang),
                  usage=_usage_by_month(state, member),
                  verified=None)


def _retention(declared: dict[str, int], lang: str) -> list[dict[str, Any]]:
    """Per data class: how long it is kept, and from what date data goes at the next
    nightly run (hypervision.jobs.retention, 02:40 UTC)."""
    today = local_today()
    out = []
    for data_class, days in sorted(declared.items()):
        fr, en = CLASS_NAMES.get(data_class, (data_class, data_class))
        out.append({"class": data_class, "label": en if lang == "en" else fr, "days": days,
                    "cutoff": today + dt.timedelta(days=1) - dt.timedelta(days=days)})
    return out


def _usage_by_month(state: State, member: MemberScope) -> list[usage.UsageTotal]:
    """The last 12 months of the member's traffic and storage (usage.totals)."""
    last = usage.today()
    first = (last.replace(day=1) - dt.timedelta(days=335)).replace(day=1)
    with state.dbs.control() as conn:
        return usage.totals(conn, [member.slug], first, last, monthly=True)


@router.get("/m/{slug}/journal.csv", name="console_journal_csv")
def journal_csv(
    member: JournalPage, state: State, audit_: Audit,
    action: Annotated[str, Query(max_length=64)] = "",
    actor: Annotated[str, Query(max_length=254)] = "",
    start: Annotated[str, Query(max_length=10)] = "",
    end: Annotated[str, Query(max_length=10)] = "",
) -> Response:
    """Every entry of the filters (up to 100,000), oldest last, as CSV."""
    first, last = _range(start, end)
    rows = _entries(state, member.slug, action, actor, day_start(first),
                    day_start(last + dt.timedelta(days=1)), None, 100_000)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "at", "actor", "action", "target", "rows", "source",
                     "remote_addr", "request_id", "params", "hash"])
    for r in rows:
        writer.writerow([r["id"], r["at"].isoformat(), r["actor"], r["action"], r["target"],
                         r["rows"], r["source"], r["remote_addr"] or "", r["request_id"] or "",
                         json.dumps(r["params"], ensure_ascii=False, sort_keys=True),
                         r["hash"]])
    audit_.record("audit.read", member.slug,
                  params={"start": first, "end": last, "action": action or None,
                          "actor": actor or None, "format": "csv"}, rows=len(rows))
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="journal-{member.slug}.csv"'})


@router.get("/m/{slug}/journal/verify", name="console_journal_verify")
def verify(request: Request, member: JournalPage, state: State, audit_: Audit) -> Response:
    """Recompute the whole chain (hypervision.audit.verify), as `hypervision audit verify`."""
    with state.dbs.control() as conn:
        result = audit.verify(conn)
    audit_.record("audit.verify", member.slug, params={"ok": result.ok,
                                                       "entries": result.entries},
                  rows=result.entries)
    return render(request, "journal_verify.html", member=member_facts(state, member),
                  result=result)

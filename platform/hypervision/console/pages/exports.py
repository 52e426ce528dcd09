"""Exports: choose the data (measurements or raw uplinks), devices (found by a search on
the server, never listed all at once: a member may have thousands), period, format and
recipient; the download streams (console.js shows its size as it arrives) through the
API's own export route function (same checks, same pseudonymisation for a third-party
recipient, same audit entry); and the member's exports so far, with who and when, read
from the audit trail."""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from psycopg.rows import dict_row

from hypervision.api.deps import Audit, MemberScope, State
from hypervision.api.params import bad_request
from hypervision.api.routes import exports as api_exports
from hypervision.console.pages.common import day_start, hidden_devices, member_facts, parse_day
from hypervision.console.session import ExportPage, ReadPage
from hypervision.console.web import lang_of, render
from hypervision.export import Format, Kind

router = APIRouter()
KINDS = ("measurements", "uplinks")
FORMATS = ("csv", "jsonl", "parquet")
# Devices a search shows at most: more matches ask for a narrower search.
SEARCH_LIMIT = 20

# The member's active devices whose name or identifier contains the search, in name
# order, with how many match in all (the catalogue's member index; the withheld devices
# left out).
SEARCH_SQL = """
SELECT dev_eui, name, count(*) OVER () AS matching FROM hv.devices
WHERE member_slug = %(m)s AND active AND NOT (dev_eui = ANY(%(hidden)s::text[]))
  AND (name ILIKE %(like)s OR dev_eui LIKE lower(%(like)s))
ORDER BY name, dev_eui LIMIT %(limit)s
"""
QueryText = Annotated[str, Query(max_length=100)]


def search_devices(state: State, member: MemberScope, hidden: set[str],
                   text: str) -> tuple[list[dict[str, Any]], int]:
    """The first SEARCH_LIMIT devices matching `text`, and how many match in all."""
    like = f"%{text.replace('%', '').replace('_', '')}%"
    with state.dbs.control() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(SEARCH_SQL, {"m": member.slug, "hidden": sorted(hidden),
                                        "like": like, "limit": SEARCH_LIMIT}).fetchall()
    matching = int(rows[0]["matching"]) if rows else 0
    return [{"dev_eui": r["dev_eui"], "name": r["name"]} for r in rows], matching


def found_message(text: str, shown: int, matching: int, lang: str) -> str:
    """What the search's status line says (read out by screen readers as it changes)."""
    fr = lang != "en"
    if not text:
        return ("Aucun capteur choisi : l’export porte sur tous les capteurs. Cherchez-en"
                " par nom ou identifiant pour en choisir." if fr else
                "No device chosen: the export covers every device. Search for some by"
                " name or identifier to choose them.")
    if matching == 0:
        return (f"Aucun capteur ne correspond à « {text} »." if fr else
                f"No device matches “{text}”.")
    if matching > shown:
        return (f"{matching} capteurs correspondent à « {text} » ; les {shown} premiers sont"
                " affichés, précisez la recherche pour voir les autres." if fr else
                f"{matching} devices match “{text}”; the first {shown} are shown, narrow"
                " the search to see the others.")
    if matching == 1:
        return (f"1 capteur correspond à « {text} »." if fr else
                f"1 device matches “{text}”.")
    return (f"{matching} capteurs correspondent à « {text} »." if fr else
            f"{matching} devices match “{text}”.")


@router.get("/m/{slug}/exports/devices", name="console_export_devices")
def device_search(request: Request, member: ReadPage, state: State, audit_: Audit,
                  q: QueryText = "") -> Response:
    """The exports form's device search (console.js asks it as the text changes)."""
    text = q.strip()
    hidden = hidden_devices(state, member)
    shown, matching = search_devices(state, member, hidden, text) if text else ([], 0)
    audit_.record("devices.read", member.slug, target="*",
                  params={"q": text, "for": "export", "grant": member.grant_id,
                          "withheld_devices": len(hidden)}, rows=len(shown))
    return JSONResponse({"q": text, "matching": matching, "devices": shown,
                         "message": found_message(text, len(shown), matching,
                                                  lang_of(request))})


@router.get("/m/{slug}/exports", name="console_exports")
def exports_page(request: Request, member: ReadPage, state: State, audit_: Audit,
                 device_q: QueryText = "") -> Response:
    """The form (its device search works without script too: `device_q` lists the
    matching devices) and the history."""
    text = device_q.strip()
    hidden = hidden_devices(state, member) if text else set()
    found, matching = search_devices(state, member, hidden, text) if text else ([], 0)
    if text:
        audit_.record("devices.read", member.slug, target="*",
                      params={"q": text, "for": "export", "grant": member.grant_id,
                              "withheld_devices": len(hidden)}, rows=len(found))
    with state.dbs.control() as conn, conn.cursor(row_factory=dict_row) as cur:
        history = cur.execute(
            "SELECT at, actor, action, target, rows, params ->> 'recipient' AS recipient,"
            " (params ->> 'pseudonymised')::boolean AS pseudonymised,"
            " (params ->> 'completed')::boolean AS completed,"
            " params ->> 'start' AS start, params ->> 'end' AS end"
            " FROM hv.audit_log WHERE member_slug = %s AND action LIKE 'export.%%'"
            " ORDER BY id DESC LIMIT 50", (member.slug,)).fetchall()
    audit_.record("exports.history.read", member.slug, target="*", rows=len(history))
    facts = member_facts(state, member)
    return render(request, "exports.html", member=facts, found=found, device_q=text,
                  found_message=found_message(text, len(found), matching, lang_of(request)),
                  history=history, kinds=KINDS, formats=FORMATS,
                  may_export="export" in member.principal.rights)


@router.get("/m/{slug}/exports/download", name="console_export_download")
def download(
    request: Request, member: ExportPage, state: State, audit_: Audit,
    kind: Annotated[str, Query(max_length=20)] = "measurements",
    fmt: Annotated[str, Query(max_length=10)] = "csv",
    start: Annotated[str, Query(max_length=10)] = "",
    end: Annotated[str, Query(max_length=10)] = "",
    devices: Annotated[list[str], Query(max_length=5000)] = [],  # noqa: B006
    recipient: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """Days are the member's local days; `end` is included."""
    if kind not in KINDS or fmt not in FORMATS:
        raise bad_request("unknown kind or format")
    first, last = parse_day(start), parse_day(end)
    if (start and first is None) or (end and last is None):
        raise bad_request("dates are YYYY-MM-DD")
    import datetime as dt

    return api_exports.export(
        # Both were checked against KINDS and FORMATS above.
        member=member, state=state, audit_=audit_, kind=cast(Kind, kind), fmt=cast(Format, fmt),
        start=day_start(first) if first else None,
        end=day_start(last + dt.timedelta(days=1)) if last else None,
        devices=[",".join(d for d in devices if d)] if any(devices) else [],
        metrics=[], cursor=None, recipient=recipient or None, pseudonymise=False,
        coarsen=None)

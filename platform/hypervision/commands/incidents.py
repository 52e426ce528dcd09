"""`hypervision incidents ...`: the incident register of the syndicate and its members,
its legal clocks and notification drafts (hypervision.syndicate.incidents; see
docs/syndicate.md). Every change is audited (actor `cli:<os user>` or `--actor`).

    hypervision incidents open [--member M] --title T --severity S [--significant] ...
    hypervision incidents list [--member M | --syndicate] [--state open]
    hypervision incidents show ID            the record and its clocks, with time left
    hypervision incidents breach ID --data-class water-consumption [--known-at T]
    hypervision incidents action ID "text"
    hypervision incidents file ID CLOCK [--at T] [--reference R]
    hypervision incidents drafts ID          CNIL and CSIRT drafts from the record
    hypervision incidents close ID
    hypervision incidents check              the job's work now (detectors and clocks)
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from hypervision.commands.common import (
    Actor,
    MemberOption,
    When,
    console,
    fail,
    settings_or_exit,
    when_of,
    who_of,
)
from hypervision.db import connect_admin
from hypervision.syndicate import incident_detectors, incident_drafts, incidents

app = typer.Typer(help="Incidents and personal-data breaches, with their legal clocks.",
                  no_args_is_help=True)
def _left(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    sign = "-" if minutes < 0 else ""
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign}{hours} h {rest:02d}"


@app.command("open")
def open_(
    title: Annotated[str, typer.Option(help="What happened, in a line.")],
    severity: Annotated[str, typer.Option(help="low, medium, high or critical.")],
    member: MemberOption = None,
    description: Annotated[str, typer.Option()] = "",
    significant: Annotated[bool, typer.Option(
        "--significant", help="A significant incident under NIS2: its clocks start.")] = False,
    system: Annotated[list[str] | None, typer.Option(
        help="A system affected (core-network, hypervision, radio-network, sensors...).")] = None,
    affected: Annotated[list[str] | None, typer.Option(help="A member affected.")] = None,
    detected: When = None,
    actor: Actor = None,
) -> None:
    """Record an incident, detected at --at (default now), of the member given by --member
    or, without it, of the syndicate's shared service."""
    settings = settings_or_exit()
    with connect_admin(settings) as conn:
        try:
            found = incidents.open_incident(
                conn, who_of(actor), member=member, title=title, detected_at=when_of(detected),
                severity=severity, description=description, significant=significant,
                systems=system or [], members_affected=affected or [])
        except incidents.IncidentError as exc:
            raise fail(str(exc)) from None
    console.print(f"+ incident {found}")


@app.command("list")
def list_(
    member: MemberOption = None,
    syndicate: Annotated[bool, typer.Option(
        "--syndicate", help="Only the syndicate's own incidents.")] = False,
    state: Annotated[str | None, typer.Option(help="open or closed.")] = None,
) -> None:
    settings = settings_or_exit()
    now = dt.datetime.now(dt.UTC)
    with connect_admin(settings) as conn:
        rows = incidents.listing(conn, member, syndicate_only=syndicate, state=state)
        table = Table("id", "member", "detected", "severity", "title", "state", "next clock")
        for r in rows:
            pending = [c for c in incidents.clocks(r, incidents.filings(conn, r["id"]))
                       if c.filed_at is None]
            nearest = min(pending, key=lambda c: c.due_at, default=None)
            table.add_row(str(r["id"]), r["member_slug"] or "(syndicate)",
                          f"{r['detected_at']:%Y-%m-%d %H:%M}", r["severity"], r["title"],
                          r["state"], "" if nearest is None
                          else f"{nearest.name} {_left(nearest.left(now))}")
    console.print(table)


@app.command("show")
def show(incident_id: int) -> None:
    """The record, its actions and its clocks with the time left."""
    settings = settings_or_exit()
    now = dt.datetime.now(dt.UTC)
    with connect_admin(settings) as conn:
        try:
            r = incidents.get(conn, incident_id)
        except incidents.IncidentError as exc:
            raise fail(str(exc)) from None
        clocks = incidents.clocks(r, incidents.filings(conn, incident_id))
    for key in ("id", "member_slug", "title", "description", "detected_at", "severity",
                "significant", "systems", "members_affected", "breach", "breach_known_at",
                "data_classes", "data_subjects", "state", "source"):
        console.print(f"{key:>17}: {r[key]}")
    for a in r["actions"]:
        console.print(f"{'action':>17}: {a['at']} {a['text']} ({a['by']})")
    table = Table("clock", "due (UTC)", "status", "time left")
    for c in clocks:
        table.add_row(c.label, f"{c.due_at.astimezone(dt.UTC):%Y-%m-%d %H:%M}", c.status(now),
                      "" if c.filed_at else _left(c.left(now)))
    console.print(table)


@app.command("breach")
def breach(
    incident_id: int,
    data_class: Annotated[list[str], typer.Option(
        help="A data class affected (water-consumption, energy, ...).")],
    nature: Annotated[list[str] | None, typer.Option(
        help="confidentiality, integrity or availability.")] = None,
    subjects: Annotated[int | None, typer.Option(
        help="Data subjects (default: estimated from the member's devices).")] = None,
    known_at: Annotated[str | None, typer.Option(
        "--known-at", help="When the breach became known (ISO; default now).")] = None,
    actor: Actor = None,
) -> None:
    """Mark the incident as a personal-data breach: the GDPR 72 h clock starts."""
    settings = settings_or_exit()
    with connect_admin(settings) as conn:
        try:
            row = incidents.mark_breach(conn, who_of(actor), incident_id,
                                        known_at=when_of(known_at), data_classes=data_class,
                                        nature=nature or ["confidentiality"],
                                        data_subjects=subjects)
        except incidents.IncidentError as exc:
            raise fail(str(exc)) from None
    console.print(f"~ incident {incident_id}: breach, {row['data_subjects']} data subject(s)"
                  " estimated; the DPO is told")


@app.command("action")
def action(incident_id: int, text: str, at: When = None, actor: Actor = None) -> None:
    """Record an action taken."""
    settings = settings_or_exit()
    with connect_admin(settings) as conn:
        try:
            incidents.add_action(conn, who_of(actor), incident_id, text, when_of(at))
        except incidents.IncidentError as exc:
            raise fail(str(exc)) from None
    console.print(f"~ incident {incident_id}: action recorded")


@app.command("file")
def file_(incident_id: int, clock: str, at: When = None,
          reference: Annotated[str, typer.Option(help="The authority's reference.")] = "",
          actor: Actor = None) -> None:
    """Record that a clock's report was sent (its alerts stop)."""
    settings = settings_or_exit()
    with connect_admin(settings) as conn:
        try:
            incidents.file(conn, who_of(actor), incident_id, clock, when_of(at), reference)
        except incidents.IncidentError as exc:
            raise fail(str(exc)) from None
    console.print(f"~ incident {incident_id}: {clock} filed")


@app.command("close")
def close(incident_id: int, at: When = None, actor: Actor = None) -> None:
    settings = settings_or_exit()
    with connect_admin(settings) as conn:
        try:
            incidents.close(conn, who_of(actor), incident_id, when_of(at))
        except incidents.IncidentError as exc:
            raise fail(str(exc)) from None
    console.print(f"~ incident {incident_id}: closed")


@app.command("drafts")
def drafts(incident_id: int) -> None:
    """Drafts of the notifications the incident's clocks call for (CNIL, CSIRT)."""
    settings = settings_or_exit()
    with connect_admin(settings) as conn:
        try:
            found = incident_drafts.drafts(conn, incident_id, dt.datetime.now(dt.UTC))
        except incidents.IncidentError as exc:
            raise fail(str(exc)) from None
    if not found:
        console.print("= no clock runs: neither significant (NIS2) nor a breach (GDPR)")
    for clock, fields in found.items():
        typer.echo(incident_drafts.as_text(incidents.CLOCK_FR[clock], fields))


@app.command("check")
def check(verify_audit: Annotated[bool, typer.Option(
        "--verify-audit", help="Also recompute the audit chain.")] = False) -> None:
    """Run the detectors and the clocks' alerts now (the job does every minute)."""
    settings = settings_or_exit()
    now = dt.datetime.now(dt.UTC)
    with connect_admin(settings) as conn:
        opened = incident_detectors.detect(conn, settings, now, verify_audit=verify_audit)
        result = incidents.check_clocks(conn, now, settings.incident_warning_share)
    for i in opened:
        console.print(f"+ incident {i} opened by a detector")
    for i, clock in result.warned:
        console.print(f"! incident {i}: {clock} runs out soon")
    for i, clock in result.overdue:
        console.print(f"! incident {i}: {clock} overdue")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="incidents")

"""`hypervision suppliers ...`: intervention requests to the network's suppliers and their
SLA report per quarter (hypervision.syndicate.suppliers; docs/syndicate.md). Suppliers
are declared in network/suppliers.yaml.

    hypervision suppliers list
    hypervision suppliers request INCIDENT SUPPLIER [--brick B] [--at T]
    hypervision suppliers arrive ID [--at T]
    hypervision suppliers resolve ID [--at T]
    hypervision suppliers report 2026Q1 [--csv]
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from hypervision.commands.common import (
    Actor,
    When,
    console,
    fail,
    settings_or_exit,
    when_of,
    who_of,
)
from hypervision.db import connect_admin
from hypervision.syndicate import incidents, suppliers
from hypervision.syndicate.spec import NetworkSpecError, Suppliers, load

app = typer.Typer(help="Suppliers of the network's bricks: interventions and SLA report.",
                  no_args_is_help=True)


def _suppliers() -> Suppliers:
    try:
        return load(settings_or_exit().network_dir).suppliers
    except NetworkSpecError as exc:
        raise fail(str(exc)) from None


@app.command("list")
def list_() -> None:
    """The declared suppliers, their bricks and their promise."""
    table = Table("name", "supplier", "bricks", "on site within")
    for s in _suppliers().suppliers:
        table.add_row(s.name, s.label, ", ".join(s.bricks), f"{s.intervention_hours:g} h")
    console.print(table)


@app.command("request")
def request(incident_id: int, supplier: str,
            brick: Annotated[str | None, typer.Option(help="Default: its first brick.")] = None,
            at: When = None, note: Annotated[str, typer.Option()] = "",
            actor: Actor = None) -> None:
    """Ask a supplier to intervene on an incident; --at is when it was notified."""
    declared = _suppliers()
    with connect_admin(settings_or_exit()) as conn:
        try:
            found = suppliers.request(conn, who_of(actor), declared, incident_id=incident_id,
                                      supplier=supplier, notified_at=when_of(at), brick=brick,
                                      note=note)
        except (suppliers.InterventionError, incidents.IncidentError) as exc:
            raise fail(str(exc)) from None
    console.print(f"+ intervention {found}")


@app.command("arrive")
def arrive(intervention_id: int, at: When = None, actor: Actor = None) -> None:
    """The supplier arrived on site."""
    with connect_admin(settings_or_exit()) as conn:
        try:
            suppliers.arrive(conn, who_of(actor), intervention_id, when_of(at))
        except suppliers.InterventionError as exc:
            raise fail(str(exc)) from None
    console.print(f"~ intervention {intervention_id}: arrived")


@app.command("resolve")
def resolve(intervention_id: int, at: When = None, actor: Actor = None) -> None:
    """The supplier resolved the problem."""
    with connect_admin(settings_or_exit()) as conn:
        try:
            suppliers.resolve(conn, who_of(actor), intervention_id, when_of(at))
        except suppliers.InterventionError as exc:
            raise fail(str(exc)) from None
    console.print(f"~ intervention {intervention_id}: resolved")


@app.command("report")
def report(quarter: Annotated[str, typer.Argument(help="e.g. 2026Q1 (UTC).")],
           csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout.")] = False) -> None:
    """Per supplier: requests, promise met, each breach (late or not arrived in time)."""
    declared = _suppliers()
    with connect_admin(settings_or_exit()) as conn:
        try:
            found = suppliers.sla_report(conn, declared, quarter, dt.datetime.now(dt.UTC))
        except suppliers.InterventionError as exc:
            raise fail(str(exc)) from None
    if csv:
        typer.echo(suppliers.to_csv(quarter, found), nl=False)
        return
    table = Table("supplier", "requests", "met", "breaches", "pending", "share met",
                  title=f"SLA {quarter}")
    for s in found:
        table.add_row(s.label, str(s.requests), str(s.met), str(len(s.breaches)),
                      str(s.pending), "" if s.share_met is None else f"{s.share_met:.0%}")
    console.print(table)
    for s in found:
        for b in s.breaches:
            late = int(b.delay.total_seconds() // 60)
            console.print(f"! {s.supplier}: intervention {b.intervention_id} (incident"
                          f" {b.incident_id}) notified {b.notified_at:%Y-%m-%d %H:%M},"
                          f" {'arrived' if b.arrived_at else 'not arrived'} after"
                          f" {late // 60} h {late % 60:02d} (promise {b.promised_hours:g} h)")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="suppliers")

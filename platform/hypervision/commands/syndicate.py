"""The syndicate's own work (docs/syndicate.md): `hypervision costs MEMBER --year Y`
(each member's statement of the network's shared costs, as a table, CSV or PDF) and
`hypervision network check` (the files under network/ and the gateways ChirpStack lists).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.table import Table

from hypervision import audit
from hypervision.commands.common import (
    MemberArg,
    console,
    exit_on_errors,
    fail,
    settings_or_exit,
)
from hypervision.db import connect_admin
from hypervision.settings import Settings
from hypervision.syndicate import assets, costs
from hypervision.syndicate.spec import Network, NetworkSpecError, load


def _network(settings: Settings) -> Network:
    try:
        return load(settings.network_dir)
    except NetworkSpecError as exc:
        raise fail(str(exc)) from None


def member_statement(conn: psycopg.Connection, net: Network, member: str,
                     year: int) -> costs.Statement:
    """The member's statement, usage read with the caller's connection (the CLI's
    administrator)."""

    @contextmanager
    def same(_: str) -> Iterator[psycopg.Connection]:
        yield conn

    members = costs.cost_members(conn, net)
    return costs.statement(net, year, member, costs.year_usage(conn, same, members, year))


def costs_command(
    member: MemberArg,
    year: Annotated[int, typer.Option("--year", help="The calendar year (UTC days).")],
    csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout.")] = False,
    pdf: Annotated[Path | None, typer.Option("--pdf", help="Write a printable PDF here.")] = None,
    actor: Annotated[str | None, typer.Option(help="Who runs it, for the audit trail.")] = None,
) -> None:
    """The member's share of the network's costs for the year, line by line."""
    settings = settings_or_exit()
    net = _network(settings)
    with exit_on_errors(costs.CostError, ValueError), connect_admin(settings) as conn:
        s = member_statement(conn, net, member, year)
        heading = costs.letterhead(conn, member)
        audit.record(conn, actor=actor or audit.cli_actor(), member=member,
                     action="costs.read", target=str(year),
                     params={"format": "pdf" if pdf else "csv" if csv else "table"},
                     rows=len(s.lines), source="cli")
    if pdf is not None:
        try:
            body = costs.to_pdf(s, *heading)
        except costs.CostError as exc:
            raise fail(str(exc)) from None
        pdf.write_bytes(body)
        console.print(f"= statement of {member} for {year} → {pdf}")
    elif csv:
        typer.echo(costs.to_csv(s), nl=False)
    else:
        table = Table("cost", "key", "member basis", "total basis", "cost", "member's share",
                      title=f"{member} — {year} ({s.currency})")
        for line in s.lines:
            table.add_row(line.label, line.key, str(line.member_basis), str(line.total_basis),
                          f"{line.cost_amount:.2f}", f"{line.amount:.2f}")
        table.add_row("Total", "", "", "", "", f"{s.total:.2f}")
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command("costs")(costs_command)
    network = typer.Typer(help="The syndicate's declarations under network/ (gateways as"
                          " assets, cost model, suppliers).", no_args_is_help=True)
    app.add_typer(network, name="network")

    @network.command("check")
    def check() -> None:
        """Validate network/*.yaml and compare the declared gateways with those ChirpStack
        lists (as last read by `hypervision gateways sync`)."""
        settings = settings_or_exit()
        net = _network(settings)
        with connect_admin(settings) as conn:
            report = assets.compare(conn, net)
        for gid in report.undeclared:
            console.print(f"! {gid}: listed by ChirpStack, not declared in gateways.yaml")
        for gid in report.unknown:
            console.print(f"! {gid}: declared, unknown to ChirpStack")
        for gid in report.matched:
            console.print(f"= {gid}")
        if report.undeclared or report.unknown:
            raise typer.Exit(code=1)

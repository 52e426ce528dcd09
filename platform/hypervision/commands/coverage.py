"""`hypervision coverage`: where the network reaches, from the uplinks' reception reports
(hypervision.syndicate.coverage; docs/syndicate.md, "Radio coverage").

    hypervision coverage show [--member M] [--days 30] [--csv] [--svg FILE]
    hypervision coverage check        open/close the low-margin alerts now
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.table import Table

from hypervision import placement
from hypervision.commands.common import MemberOption, console, fail, settings_or_exit
from hypervision.db import connect_admin
from hypervision.settings import Settings
from hypervision.syndicate import coverage, coverage_map

app = typer.Typer(help="Radio coverage: which gateways hear which devices.",
                  no_args_is_help=True)


def compute(conn: psycopg.Connection, settings: Settings, member: str | None,
            start: dt.datetime, end: dt.datetime) -> coverage.Coverage:
    rows = conn.execute("SELECT slug, schema_name FROM hv.members WHERE %(m)s::text IS NULL"
                        " OR slug = %(m)s ORDER BY slug", {"m": member}).fetchall()
    if not rows:
        raise fail(f"unknown member '{member}'")

    @contextmanager
    def same(_: str) -> Iterator[psycopg.Connection]:
        yield conn

    gateways = coverage.network_gateways(conn, coverage.declared_gateways(settings.network_dir))
    return coverage.coverage(conn, same, [tuple(r) for r in rows], gateways, start, end)


@app.command("show")
def show(
    member: MemberOption = None,
    days: Annotated[int, typer.Option(help="Window: the last N days.")] = 30,
    csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout.")] = False,
    svg: Annotated[Path | None, typer.Option("--svg", help="Write the map here.")] = None,
) -> None:
    """Per device: the gateways hearing it, how well, its margin; at-risk devices and
    gateways hearing none."""
    settings = settings_or_exit()
    end = dt.datetime.now(dt.UTC)
    with connect_admin(settings) as conn:
        c = compute(conn, settings, member, end - dt.timedelta(days=days), end)
    if csv:
        typer.echo(coverage.to_csv(c), nl=False)
        return
    if svg is not None:
        svg.write_text(coverage_map.svg(c, f"Couverture radio — {member or 'réseau'}"),
                       encoding="utf-8")
        console.print(f"= map → {svg}")
    table = Table("member", "device", "gateways", "margin dB", "at risk")
    for d in c.devices:
        table.add_row(d.member, d.name, ", ".join(d.gateways) or "—",
                      "" if d.margin_db is None else f"{d.margin_db:g}",
                      "!" if d.at_risk else "")
    console.print(table)
    for g in c.idle_gateways:
        console.print(f"! gateway {g.gateway_id} ({g.name}) hears no device")


@app.command("check")
def check() -> None:
    """Open and close every member's low-margin alerts now (the job does it hourly)."""
    settings = settings_or_exit()
    now = dt.datetime.now(dt.UTC)
    with connect_admin(settings) as conn, placement.Connections(settings, conn) as servers:
        for slug, schema, server in conn.execute(
                "SELECT slug, schema_name, server FROM hv.members ORDER BY slug").fetchall():
            r = coverage.check_margins(servers.get(server), slug, schema, now,
                                       settings.coverage_margin_db,
                                       settings.coverage_margin_days, catalogue=conn)
            for dev in r.opened:
                console.print(f"+ {slug}: {dev} low margin")
            for dev in r.closed:
                console.print(f"- {slug}: {dev} margin back")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="coverage")

"""`hypervision opendata water|fill MEMBER --from D --to D [-k N] [-o FILE]`: open
aggregates per area and day, groups of fewer than k devices suppressed (hypervision.opendata).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path
from typing import Annotated

import typer

from hypervision import opendata
from hypervision.commands.common import (
    FromDate,
    MemberArg,
    ToDate,
    admin_db,
    console,
    day_of,
    fail,
    settings_or_exit,
)
from hypervision.commands.public import public_member
from hypervision.export.formats import csv_safe

opendata_app = typer.Typer(help="Open aggregates with small groups suppressed.",
                           no_args_is_help=True)

KOption = Annotated[int | None, typer.Option("-k", help="Minimum devices per group"
                                             " (default HV_OPENDATA_K).")]
OutOption = Annotated[Path | None, typer.Option("--output", "-o", help="FILE.csv or FILE.json")]


def _write_aggregates(rows: list[opendata.Aggregate], output: Path | None) -> None:
    if output is not None and output.suffix == ".json":
        output.write_text(json.dumps([r.to_json() for r in rows], ensure_ascii=False, indent=2),
                          encoding="utf-8")
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["day", "area", "value", "devices", "suppressed"])
    for r in rows:
        writer.writerow([r.day.isoformat(), csv_safe(r.area), "" if r.value is None else r.value,
                         "" if r.devices is None else r.devices, str(r.suppressed).lower()])
    if output is None:
        typer.echo(buffer.getvalue(), nl=False)
    else:
        output.write_text(buffer.getvalue(), encoding="utf-8")


def _opendata(kind: opendata.Kind, member: str, first: dt.date, last: dt.date,
              k: int | None, output: Path | None) -> None:
    settings = settings_or_exit()
    threshold = k if k is not None else settings.opendata_k
    if threshold < 2:
        raise fail("-k must be at least 2")
    with admin_db(settings=settings) as conn:
        public_member(conn, member)
        rows = opendata.member_aggregates(conn, member, kind, first, last, threshold)
    _write_aggregates(rows, output)
    if output is not None:
        hidden = sum(r.suppressed for r in rows)
        console.print(f"+ {output}: {len(rows)} row(s), {hidden} suppressed (k={threshold})")


@opendata_app.command("water")
def opendata_water(member: MemberArg, start: FromDate[str], end: ToDate[str],
                   k: KOption = None, output: OutOption = None) -> None:
    """Daily water consumption (litres) per area, from the day --from to the day --to
    included."""
    _opendata("water", member, day_of(start, "--from"), day_of(end, "--to"), k, output)


@opendata_app.command("fill")
def opendata_fill(member: MemberArg, start: FromDate[str], end: ToDate[str],
                  k: KOption = None, output: OutOption = None) -> None:
    """Daily mean fill level (%) of waste containers per area, from the day --from to the
    day --to included."""
    _opendata("fill", member, day_of(start, "--from"), day_of(end, "--to"), k, output)


def register(app: typer.Typer) -> None:
    app.add_typer(opendata_app, name="opendata")

"""`hypervision usage`: usage per member and day, for cost sharing (table or CSV)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.table import Table

from hypervision import usage
from hypervision.commands.common import (
    FromDate,
    MemberOption,
    ToDate,
    console,
    day_of,
    fail,
    settings_or_exit,
)
from hypervision.db import connect_admin


def register(app: typer.Typer) -> None:
    @app.command("usage")
    def usage_command(
        member: MemberOption = None,
        start: FromDate[str | None] = None,
        end: ToDate[str | None] = None,
        csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout.")] = False,
        output: Annotated[Path | None, typer.Option(help="Write the CSV to this file.")] = None,
    ) -> None:
        """Uplinks, bytes, active devices and storage per member and day (UTC), from the day
        --from (default: 29 days before --to) to the day --to included (default: today)."""
        settings = settings_or_exit()
        last = day_of(end, "--to") if end else usage.today()
        first = day_of(start, "--from") if start else last - timedelta(days=29)
        try:
            with connect_admin(settings) as conn:
                members = conn.execute(
                    "SELECT slug, schema_name FROM hv.members"
                    " WHERE %(m)s::text IS NULL OR slug = %(m)s ORDER BY slug", {"m": member}
                ).fetchall()
                if not members:
                    raise fail(f"unknown member '{member}'")

                @contextmanager
                def same(_: str) -> Iterator[psycopg.Connection]:
                    yield conn

                rows = usage.daily_usage(conn, same, [tuple(m) for m in members], first, last)
        except ValueError as exc:
            raise fail(str(exc)) from None
        if output is not None:
            output.write_text(usage.to_csv(rows), encoding="utf-8")
            console.print(f"= {len(rows)} rows written to {output}")
        elif csv:
            typer.echo(usage.to_csv(rows), nl=False)
        else:
            table = Table("day", "member", "uplinks", "events", "bytes", "active devices",
                          "storage")
            for r in rows:
                table.add_row(str(r.day), r.member, str(r.uplinks), str(r.events), str(r.bytes),
                              str(r.active_devices),
                              "" if r.storage_bytes is None else f"{r.storage_bytes:,}")
            console.print(table)

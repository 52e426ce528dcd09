"""`hypervision audit verify|show`: check the audit trail's hash chain, read entries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hypervision import audit
from hypervision.commands.common import (
    MemberOption,
    console,
    exit_on_errors,
    fail,
    settings_or_exit,
)
from hypervision.db import connect_admin

audit_app = typer.Typer(help="The append-only, hash-chained audit trail.", no_args_is_help=True)


@audit_app.command("verify")
def verify(
    anchors: Annotated[Path | None, typer.Option(
        help="An anchor file (each backup appends the chain's head to one): check that"
             " every entry it names still has its hash.")] = None,
) -> None:
    """Recompute every entry's hash and link; exit 1 if anything was tampered with.

    Keep the printed head hash somewhere outside the platform (each backup appends it to
    HV_AUDIT_ANCHOR_FILE): it proves later that the trail up to that entry was not
    rewritten, even by a database superuser."""
    settings = settings_or_exit()
    try:
        kept = audit.read_anchors(anchors) if anchors is not None else []
    except OSError as exc:
        raise fail(f"cannot read {anchors}: {exc}") from None
    with exit_on_errors(), connect_admin(settings) as conn:
        result = audit.verify(conn, anchors=kept)
    for problem in result.problems:
        console.print(f"[red]✗ {problem}[/]")
    if not result.ok:
        raise fail(f"the audit trail was tampered with ({len(result.problems)} problem(s))")
    console.print(f"= {result.entries} entries verified; last entry {result.last_id},"
                  f" head hash {result.head_hash}")


@audit_app.command("show")
def show(
    member: MemberOption = None,
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. export.csv.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON Lines instead of a table.")] = False,
) -> None:
    """The latest entries, newest first."""
    settings = settings_or_exit()
    with connect_admin(settings) as conn:
        rows = conn.execute(
            "SELECT id, at, actor, member_slug, action, target, params, rows, source,"
            " remote_addr FROM hv.audit_log"
            " WHERE (%(m)s::text IS NULL OR member_slug = %(m)s)"
            " AND (%(a)s::text IS NULL OR action = %(a)s) ORDER BY id DESC LIMIT %(l)s",
            {"m": member, "a": action, "l": limit},
        ).fetchall()
    keys = ("id", "at", "actor", "member", "action", "target", "params", "rows", "source",
            "remote_addr")
    if as_json:
        for row in rows:
            console.print_json(json.dumps(dict(zip(keys, row, strict=True)), default=str))
        return
    table = Table(*keys[:6], "rows", "source")
    for r in rows:
        table.add_row(str(r[0]), f"{r[1]:%Y-%m-%d %H:%M:%S}", r[2], r[3] or "", r[4], r[5],
                      "" if r[7] is None else str(r[7]), r[8])
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")

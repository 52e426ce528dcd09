"""`hypervision retention plan` / `retention run [--member M] [--dry-run] [--yes]`: enforce
each member's declared retention now (the daily job does the same; hypervision.retention).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from hypervision import audit, placement, retention
from hypervision.commands.common import (
    MembersOption,
    Yes,
    admin_db,
    confirm_or_exit,
    console,
    settings_or_exit,
)

retention_app = typer.Typer(help="Retention per member and data class.", no_args_is_help=True)


def _print_plan(plans: list[retention.MemberPlan]) -> None:
    for plan in plans:
        counts = plan.counts()
        console.print(f"{'-' if counts else '='} {plan.member}: {plan.total()} row(s)"
                      f" would go")
        for (table, data_class), n in sorted(counts.items()):
            console.print(f"    {table} {data_class}: {n}")
        for table, chunks in plan.chunks().items():
            console.print(f"    {table}: {len(chunks)} whole chunk(s) dropped")
        if plan.kept_classes:
            console.print(f"    [yellow]kept, no retention declared:[/]"
                          f" {', '.join(plan.kept_classes)}")
        if plan.uncovered_tables:
            console.print(f"    [yellow]hypertables not under retention:[/]"
                          f" {', '.join(plan.uncovered_tables)}")


@retention_app.command("plan")
def retention_plan(member: MembersOption = None) -> None:
    """Show what a run would delete, per member, table and data class. Writes nothing."""
    settings = settings_or_exit()
    with admin_db(placement.PlacementError, settings=settings) as conn, \
            placement.Connections(settings, conn) as servers:
        _print_plan(retention.plan(conn, members=member, servers=servers))


@retention_app.command("run")
def retention_run(
    member: MembersOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would go.")] = False,
    yes: Yes = False,
) -> None:
    """Delete what has expired now (the daily job does the same), with an audit entry."""
    settings = settings_or_exit()
    with admin_db(placement.PlacementError, settings=settings) as conn, \
            placement.Connections(settings, conn) as servers:
        if dry_run:
            _print_plan(retention.plan(conn, members=member, servers=servers))
            return
        whose = ", ".join(member) if member else "every member"
        confirm_or_exit(yes, f"delete the expired data of {whose} (--dry-run shows it)")
        runs = retention.run(conn, members=member, actor=audit.cli_actor(), source="cli",
                             servers=servers)
        if member is None:
            unattributed, _ = retention.expire_unattributed_dead_letters(
                conn, settings.dead_letter_retention_days, dt.datetime.now(dt.UTC),
                actor=audit.cli_actor(), source="cli")
            console.print(f"{'-' if unattributed else '='} dead letters of no member:"
                          f" {unattributed} row(s) removed")
    for done in runs:
        total = sum(done.removed.values())
        console.print(f"{'-' if total else '='} {done.plan.member}: {total} row(s) removed"
                      f" (audit entry {done.audit_id})")
        for (table, data_class), n in sorted(done.removed.items()):
            console.print(f"    {table} {data_class}: {n}")


def register(app: typer.Typer) -> None:
    app.add_typer(retention_app, name="retention")

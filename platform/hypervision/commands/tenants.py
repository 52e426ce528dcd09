"""`hypervision tenants validate|plan|apply`: members declared as files under tenants/."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer

from hypervision import placement
from hypervision.commands.common import (
    MemberArg,
    Yes,
    catalogue_or_exit,
    confirm_or_exit,
    console,
    exit_on_errors,
    fail,
    settings_or_exit,
)
from hypervision.db import connect_admin
from hypervision.tenancy import apply as tenancy
from hypervision.tenancy.spec import SpecError, TenantSpec, load_dir

tenants_app = typer.Typer(help="Members as code: validate, plan and apply tenants/*.yaml.",
                          no_args_is_help=True)
DirOption = Annotated[Path | None, typer.Option("--dir", help="Folder of tenant files.")]

SYMBOL_STYLE = {"+": "green", "~": "yellow", "-": "red", "=": "dim", "!": "magenta"}


def _load(folder: Path | None) -> list[TenantSpec]:
    settings = settings_or_exit()
    try:
        return load_dir(folder or settings.tenants_dir)
    except SpecError as exc:
        raise fail(str(exc)) from None


def _print(step: tenancy.Step) -> None:
    console.print(f"[{SYMBOL_STYLE[step.symbol]}]{step}[/]")


def apply_tenants(folder: Path | None = None, quiet: bool = False) -> list[tenancy.Step]:
    """Apply the members to the database, then to Superset when it runs."""
    from hypervision.superset import apply_if_running

    specs = _load(folder)
    settings = settings_or_exit()
    log = (lambda _: None) if quiet else console.print
    try:
        with connect_admin(settings) as conn:
            steps = tenancy.apply(conn, specs, catalogue_or_exit(), settings, log=log,
                                  actor=f"cli:{getpass.getuser()}")
    except ValueError as exc:
        raise fail(str(exc)) from None
    apply_if_running(settings, specs, log=log)
    return steps


@tenants_app.command("validate")
def validate(folder: DirOption = None) -> None:
    """Check every tenant file; print what each declares."""
    specs = _load(folder)
    settings = settings_or_exit()
    catalogue = catalogue_or_exit()
    for spec in specs:
        unknown = sorted({d.model for d in spec.devices} - set(catalogue.models))
        if unknown:
            raise fail(f"tenants/{spec.name}.yaml: unknown device model(s): {', '.join(unknown)}")
        try:
            placement.server(settings, spec.server)
        except placement.PlacementError as exc:
            raise fail(f"tenants/{spec.name}.yaml: server: {exc}") from None
        console.print(f"= {spec.name}: {spec.identity.name} ({spec.identity.kind}),"
                      f" {len(spec.devices)} devices, {len(spec.alerts)} alert rules")


@tenants_app.command("plan")
def plan(folder: DirOption = None) -> None:
    """Show what `apply` would change. Writes nothing."""
    specs = _load(folder)
    settings = settings_or_exit()
    with exit_on_errors(ValueError), connect_admin(settings) as conn:
        steps = tenancy.plan(conn, specs, catalogue_or_exit(), settings)
    for step in steps:
        _print(step)


@tenants_app.command("apply")
def apply(folder: DirOption = None) -> None:
    """Create or update schemas, roles, members and devices. Idempotent; never deletes data."""
    with exit_on_errors():
        steps = apply_tenants(folder)
    changed = sum(1 for s in steps if s.symbol != "=")
    console.print(f"= {changed} change(s) applied" if changed else "= nothing to change")


@tenants_app.command("move")
def move_member(
    member: MemberArg,
    to: Annotated[str | None, typer.Option("--to", help="The server to move it to, by its"
                                           " name in HV_DATABASE_SERVERS_FILE.")] = None,
    drop_old: Annotated[bool, typer.Option(
        "--drop-old", help="Drop the copy the last move left on the former server.")] = False,
    resume: Annotated[bool, typer.Option(
        "--resume", help="End a pause left by a move that stopped half-way.")] = False,
    yes: Yes = False,
) -> None:
    """Move a member's schema to another database server: copy, pause its ingestion
    only, catch up, verify counts, switch, resume. The old copy is kept (--drop-old)."""
    from hypervision.tenancy import move

    settings = settings_or_exit()
    if sum((to is not None, drop_old, resume)) != 1:
        raise fail("give one of --to SERVER, --drop-old or --resume")
    actor = f"cli:{getpass.getuser()}"
    with exit_on_errors(move.MoveError, placement.PlacementError):
        if resume:
            move.resume(settings, member)
            console.print(f"~ {member}: ingestion resumed")
        elif drop_old:
            confirm_or_exit(yes, f"drop the copy of {member} its last move left on the"
                                 " former server")
            move.drop_old(settings, member, actor=actor, log=console.print)
        else:
            assert to is not None
            result = move.move(settings, member, to, actor=actor, log=console.print)
            console.print(f"= {member}: {sum(result.counts.values())} rows verified on"
                          f" {result.target}, ingestion paused {result.paused_seconds:.1f}s")


def register(app: typer.Typer) -> None:
    app.add_typer(tenants_app, name="tenants")

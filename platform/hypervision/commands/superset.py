"""`hypervision superset start|prepare|stop|status|apply|password`: the dashboard layer.

Superset runs from its own virtualenv (infra/superset/install.sh) against the platform's
PostgreSQL; `apply` provisions every member declared under tenants/ (run `tenants apply`
first). See platform/hypervision/superset/README.md.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hypervision.commands.common import (
    Yes,
    confirm_or_exit,
    console,
    exit_on_errors,
    fail,
    settings_or_exit,
)
from hypervision.daemons import DaemonError
from hypervision.superset import provision, server
from hypervision.superset.client import SupersetError
from hypervision.superset.templates import TemplateError, load
from hypervision.tenancy.spec import SpecError, load_dir

superset_app = typer.Typer(help="Apache Superset: members' dashboards.", no_args_is_help=True)
DirOption = Annotated[Path | None, typer.Option("--dir", help="Folder of tenant files.")]


def _print(message: str) -> None:
    console.print(message, markup=False)


@superset_app.command("start")
def start(
    foreground: bool = typer.Option(
        False, "--foreground", help="Run in the foreground (a container's main process)."),
    prepared: bool = typer.Option(
        False, "--prepared", help="`superset prepare` ran already: start the web server"
        " only, without the superuser's connection."),
) -> None:
    """Start Superset (idempotent): metadata database, bootstrap when needed, web server."""
    settings = settings_or_exit()
    try:
        server.start(settings, log=_print, foreground=foreground, prepared=prepared)
    except DaemonError as exc:
        raise fail(str(exc)) from None
    _print(f"= Superset answers on {server.public_url(settings)}")


@superset_app.command("prepare")
def prepare() -> None:
    """Create Superset's metadata database and role, and bootstrap it when needed (the
    superuser's side of `start`; docker-compose.yml's `superset-init`)."""
    settings = settings_or_exit()
    try:
        server.prepare(settings, log=_print)
    except DaemonError as exc:
        raise fail(str(exc)) from None


@superset_app.command("stop")
def stop() -> None:
    """Stop Superset gracefully and wait until it has exited."""
    settings = settings_or_exit()
    try:
        server.stop(settings, log=_print)
    except DaemonError as exc:
        raise fail(str(exc)) from None


@superset_app.command("status")
def status() -> None:
    """Whether Superset runs and answers, and where."""
    settings = settings_or_exit()
    running = server.status(settings)
    table = Table(title="Superset")
    table.add_column("address")
    table.add_column("state")
    state = "[green]running[/]" if running else "[red]stopped[/]"
    table.add_row(server.public_url(settings), state)
    console.print(table)


@superset_app.command("apply")
def apply(
    folder: DirOption = None,
    force: Annotated[bool, typer.Option(help="Import unchanged members again.")] = False,
) -> None:
    """Provision every member (connection through its reader role, role, users,
    dashboards) and the operator's view. Idempotent; updates changed templates."""
    settings = settings_or_exit()
    with exit_on_errors(SpecError, TemplateError, ValueError, SupersetError):
        specs = load_dir(folder or settings.tenants_dir)
        templates = load()
        provision.apply(settings, specs, log=_print, template_set=templates, force=force)


@superset_app.command("password")
def password(username: Annotated[str, typer.Argument(help="Superset's `admin`.")],
             yes: Yes = False) -> None:
    """Give Superset's provisioning account (`admin`) a new random password, printed once.
    Members' users have none: they sign in through the platform."""
    settings = settings_or_exit()
    if username.lower() != provision.ADMIN:
        raise fail(f"{username}: only Superset's `admin` has a password; people sign in to"
                   " Superset through the platform (their console account)")
    confirm_or_exit(yes, f"replace the password of Superset's {provision.ADMIN}")
    new = secrets.token_urlsafe(12)
    try:
        provision.set_password(settings, provision.ADMIN, new)
    except SupersetError as exc:
        raise fail(str(exc)) from None
    console.print(f"new password for {provision.ADMIN}: {new}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(superset_app, name="superset")

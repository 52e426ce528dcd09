"""What every command group shares: settings, the console, domain errors as exit code 1."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import psycopg
import typer
from pydantic import ValidationError
from rich.console import Console

from hypervision import audit
from hypervision.accounts import Who
from hypervision.db import connect_admin
from hypervision.settings import Settings, get_settings
from ingest.decode import Catalogue, CatalogueError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def fail(message: str) -> typer.Exit:
    """Print a domain error and return the Exit to raise (exit code 1)."""
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


def settings_or_exit() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"HV_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise fail(f"configuration: {problems} (see .env.example)") from None


@contextmanager
def exit_on_errors(*errors: type[Exception]) -> Iterator[None]:
    """A command's work: the database being unreachable, and the domain errors given,
    become exit code 1 with the reason instead of a traceback."""
    try:
        yield
    except psycopg.OperationalError as exc:
        raise fail(f"database unreachable: {exc}") from None
    except errors as exc:
        raise fail(str(exc)) from None


@contextmanager
def admin_db(*errors: type[Exception],
             settings: Settings | None = None) -> Iterator[psycopg.Connection]:
    """A superuser connection to the primary for a command (the settings from the
    environment unless given), with `exit_on_errors(*errors)` around its use."""
    with exit_on_errors(*errors), connect_admin(settings or settings_or_exit()) as conn:
        yield conn


def catalogue_or_exit(settings: Settings | None = None) -> Catalogue:
    """The built-in models and the operator's (HV_CATALOGUE_DIR); exit 1 if a file is bad."""
    settings = settings or settings_or_exit()
    try:
        return Catalogue.load_with_operator(settings.catalogue_dir)
    except CatalogueError as exc:
        raise fail(f"invalid device model files:\n{exc}") from None


# Options of the commands that record something a person did at a given time (incidents,
# suppliers' interventions): `--at` and `--actor`, read by when_of and who_of.
When = Annotated[str | None, typer.Option(
    "--at", help="ISO time (default: now), e.g. 2026-03-10T09:30:00+01:00.")]
Actor = Annotated[str | None, typer.Option(help="Who does it, for the audit trail.")]


def when_of(text: str | None) -> dt.datetime:
    """The `--at` time: now when not given; an ISO time with its time zone otherwise."""
    if text is None:
        return dt.datetime.now(dt.UTC)
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"{text!r} is not an ISO time") from None
    if t.tzinfo is None:
        raise fail(f"{text!r}: give the time zone (Z or +01:00)")
    return t


def who_of(actor: str | None) -> Who:
    """The `--actor` for the audit trail, or the person running the command."""
    return Who(actor or audit.cli_actor())

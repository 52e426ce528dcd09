"""What every command group shares: settings, the console, domain errors as exit code 1."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

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


# The options every group shares, so that a thing has one name across the CLI
# (tests/platform/test_cli_style.py holds the rules):
# - a member the command needs is its first positional argument, MEMBER;
# - a member filter, when the command can also work on every member, is `--member/-m`;
# - a period is `--from`/`--to` (the command's help says whether `--to` is included);
# - a command that deletes, purges, drops, overwrites, restores or revokes takes
#   `--yes/-y` and otherwise asks, through confirm_or_exit.
MemberArg = Annotated[str, typer.Argument(metavar="MEMBER", help="The member's slug.",
                                          show_default=False)]
MemberOption = Annotated[str | None, typer.Option(
    "--member", "-m", help="Only this member (its slug); default: every member.",
    show_default=False)]
MembersOption = Annotated[list[str] | None, typer.Option(
    "--member", "-m", help="Only this member (its slug; repeatable); default: every member.",
    show_default=False)]

# Generic so that one alias serves a required bound (`FromDate[str]`) and an optional one
# (`FromDate[str | None] = None`); typer reads the Option either way.
T = TypeVar("T")
FromDate = Annotated[T, typer.Option(
    "--from", metavar="DATE", show_default=False,
    help="Start of the period: an ISO date or date-time (2026-03-01, 2026-03-01T08:00).")]
ToDate = Annotated[T, typer.Option(
    "--to", metavar="DATE", show_default=False,
    help="End of the period: an ISO date or date-time (2026-03-31, 2026-03-31T18:00).")]

Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def time_of(text: str, option: str, zone: str = "UTC") -> dt.datetime:
    """A `--from`/`--to` value: an ISO date (its midnight) or date-time; one without an
    offset is in `zone` (the member's time zone where it has one)."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"{option} {text!r} is not an ISO date or date-time"
                   " (2026-03-01 or 2026-03-01T08:00)") from None
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(zone))


def day_of(text: str, option: str) -> dt.date:
    """A `--from`/`--to` value of a command that counts whole days: the ISO date given
    (or the date of the date-time given)."""
    try:
        return dt.datetime.fromisoformat(text).date()
    except ValueError:
        raise fail(f"{option} {text!r} is not an ISO date (2026-03-01)") from None


def confirm_or_exit(yes: bool, action: str) -> None:
    """Go on if `--yes` was given or the person at the terminal agrees to `action` (e.g.
    "revoke token 12"); otherwise exit 1 with nothing done. Without a terminal (a script,
    a job, a pipe) nobody can answer: refuse rather than wait or assume yes."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise fail(f"not confirmed: {action}; add --yes (no terminal to ask on)")
    if not typer.confirm(f"{action[:1].upper()}{action[1:]}?", default=False):
        raise fail("nothing done")


def local_time(t: dt.datetime | None, zone: str) -> str:
    """A time as a member reads it, in its time zone to the minute; "—" for none."""
    return t.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M") if t else "—"


def audit_read(conn: psycopg.Connection, slug: str, action: str, target: str,
               params: dict[str, Any], rows: int) -> None:
    """Record a command's read of a member's data in the audit trail."""
    audit.record(conn, actor=audit.cli_actor(), member=slug, action=action, target=target,
                 params=params, rows=rows, source="cli")

"""`hypervision backup run|list|restore|keygen`: checksummed archives of the database,
encrypted with age, rotated, and their restore (see hypervision.backup and
docs/runbook.md, "Backups and restore")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hypervision import backup, backup_encryption
from hypervision.commands.common import (
    MemberOption,
    Yes,
    confirm_or_exit,
    console,
    exit_on_errors,
    fail,
    settings_or_exit,
)

backup_app = typer.Typer(help="Backups: run, list and restore archives.", no_args_is_help=True)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


IdentityOption = Annotated[
    Path | None, typer.Option("--identity", help="The age private key file that opens the"
                              " archive (default: HV_BACKUP_AGE_IDENTITY_FILE).",
                              show_default=False)
]


@backup_app.command("run")
def run(
    member: MemberOption = None,
    unencrypted: Annotated[bool, typer.Option(
        "--unencrypted", help="Write a plain archive, not encrypted for"
        " HV_BACKUP_AGE_RECIPIENTS (it holds every member's data).")] = False,
) -> None:
    """Write a new archive now (full, or one member's), then apply the rotation."""
    settings = settings_or_exit()
    with exit_on_errors(backup.BackupError):
        archive = backup.run_backup(settings, member=member, unencrypted=unencrypted,
                                    log=console.print)
        backup.rotate(settings, log=console.print)
    console.print(f"= {archive.name}: {_size(archive.size())} in {archive.path.parent}")


@backup_app.command("list")
def list_command(
    check: Annotated[bool, typer.Option("--verify", help="Check every file's checksum.")] = False,
) -> None:
    """List the archives, newest first (their names are their UTC creation times)."""
    settings = settings_or_exit()
    archives = backup.list_archives(settings)
    if not archives:
        console.print(f"= no archive in {backup.backup_dir(settings)}")
        return
    table = Table(box=None)
    table.add_column("archive", no_wrap=True)
    table.add_column("scope", no_wrap=True)
    table.add_column("size", no_wrap=True, justify="right")
    table.add_column("members")
    if check:
        table.add_column("checksums")
    damaged = 0
    for archive in archives:
        extra = []
        if check:
            problems = backup.verify(archive)
            damaged += bool(problems)
            extra = ["[green]ok[/]" if not problems else f"[red]{'; '.join(problems)}[/]"]
        table.add_row(archive.name, archive.scope, _size(archive.size()),
                      ", ".join(archive.members), *extra)
    console.print(table)
    if damaged:
        raise fail(f"{damaged} damaged archive(s)")


@backup_app.command("restore")
def restore(
    archive_ref: Annotated[str, typer.Argument(metavar="ARCHIVE",
                                               help="Archive name (see `list`) or path.")],
    member: MemberOption = None,
    identity: IdentityOption = None,
    yes: Yes = False,
) -> None:
    """Restore a whole full archive, or one member's data from any archive.

    Whole: every database of the archive is restored into a new database that then takes
    the live one's name; the live one is kept under `<name>_before_<time>`. Stop the
    platform's services first. One member: its tables are emptied and refilled in one
    transaction, in the live database.
    """
    settings = settings_or_exit()
    with exit_on_errors(backup.BackupError):
        archive = backup.find_archive(settings, archive_ref)
        if member is None and archive.scope != "full":
            raise backup.BackupError(f"archive {archive.name} holds one member only: add"
                                     f" --member {archive.members[0]}")
        what = (f"replace the data of member {member}" if member is not None else
                "replace the database(s) "
                + ", ".join(d["name"] for d in archive.manifest["databases"]))
        console.print(f"~ {what} with archive {archive.name}"
                      f" ({archive.created_at:%Y-%m-%d %H:%M:%S} UTC)")
        confirm_or_exit(yes, f"{what} with archive {archive.name}")
        if member is not None:
            rows = backup.restore_member(settings, archive, member, log=console.print,
                                         identity=identity)
            console.print(f"= member {member}: {rows} rows restored")
        else:
            kept = backup.restore_databases(settings, archive, log=console.print,
                                            identity=identity)
            if kept:
                console.print("= when all is well, drop the old copies: "
                              + ", ".join(f"DROP DATABASE {name};" for name in kept))
            console.print("= then: `hypervision migrate` and `hypervision tenants apply`,"
                          " and start the services again")


@backup_app.command("keygen")
def keygen(
    output: Annotated[Path, typer.Option("--output", help="Where to write the private key"
                                         " (mode 0600); keep it off the backup volume.")],
) -> None:
    """Make an age key pair for the backups: the private key goes to --output, the public
    key is printed, for HV_BACKUP_AGE_RECIPIENTS."""
    settings = settings_or_exit()
    root = backup.backup_dir(settings)
    if output.expanduser().resolve().is_relative_to(root):
        raise fail(f"{output} is inside the backup folder {root}: the archives must not"
                   " carry their own key")
    try:
        public = backup_encryption.generate(output.expanduser())
    except FileExistsError:
        raise fail(f"{output} exists already: nothing written") from None
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc}") from None
    console.print(f"+ private key in {output}: keep it safe and away from the backups")
    # Plain output, never wrapped: the line is meant to be pasted into the environment.
    typer.echo(f"HV_BACKUP_AGE_RECIPIENTS={public}")


def register(app: typer.Typer) -> None:
    app.add_typer(backup_app, name="backup")

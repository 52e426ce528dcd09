"""`hypervision export` (a member's data as CSV, Parquet or JSON Lines) and
`hypervision tenant export|import` (a member's whole archive, and its restore).

Exports read through the member's reader role (hypervision.export), show a progress bar,
print the cursor of the next incremental export, and are audited (`export.<format>`,
`tenant.export`, `tenant.import`). See platform/hypervision/export/README.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, cast

import psycopg
import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from hypervision import archive, audit
from hypervision.commands.common import (
    FromDate,
    MemberArg,
    ToDate,
    console,
    err_console,
    exit_on_errors,
    fail,
    settings_or_exit,
    time_of,
)
from hypervision.db import connect_admin, connect_member
from hypervision.export import (
    FORMATS,
    KINDS,
    ExportError,
    ExportFilter,
    Format,
    Kind,
    open_export,
)
from hypervision.pseudonym import COARSENINGS, Pseudonymiser
from hypervision.settings import Settings
from hypervision.tenancy.spec import TenantSpec

tenant_app = typer.Typer(help="A member's whole archive: export it, import it elsewhere.",
                         no_args_is_help=True)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("rows"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=err_console, transient=False,
    )


@contextmanager
def _steps() -> Iterator[Callable[[str, int, int | None], None]]:
    """A bar per step of an archive's export or import, and the callback that moves it."""
    tasks: dict[str, TaskID] = {}
    with _progress() as bar:
        def progress(step: str, done: int, total: int | None) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total)
            bar.update(tasks[step], completed=done, total=total)

        yield progress


def _choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise fail(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")
    return value


def _pseudonymiser(settings: Settings, spec: TenantSpec, recipient: str | None,
                   coarsen: str | None) -> Pseudonymiser | None:
    if coarsen is not None:
        _choice(coarsen, COARSENINGS, "coarsening")
    if recipient is None:
        if coarsen is not None:
            raise fail("--coarsen applies to an export for a --recipient that is a third party")
        return None
    found = [r for r in spec.export_recipients if r.name == recipient]
    if not found:
        known = ", ".join(r.name for r in spec.export_recipients) or "none declared"
        raise fail(f"{spec.name} declares no export recipient named {recipient!r}"
                   f" (known: {known})")
    return Pseudonymiser.for_recipient(settings, spec, found[0], coarsen=coarsen)


def _audit(settings: Settings, **entry: Any) -> None:
    with connect_admin(settings) as conn:
        audit.record(conn, source="cli", **entry)


def export_command(
    member: MemberArg,
    kind: Annotated[str, typer.Option("--kind", help="measurements or uplinks.")],
    fmt: Annotated[str, typer.Option("--format", help="csv, parquet or jsonl.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write.")],
    start_text: FromDate[str | None] = None,
    end_text: ToDate[str | None] = None,
    device: Annotated[list[str] | None, typer.Option(
        "--device", help="Only this DevEUI (repeatable).")] = None,
    metric: Annotated[list[str] | None, typer.Option(
        "--metric", help="Only this metric (repeatable; measurements).")] = None,
    cursor: Annotated[str | None, typer.Option(
        help="Only what was stored since the export that printed this cursor.")] = None,
    cursor_file: Annotated[Path | None, typer.Option(
        help="Read the cursor from this file if it exists; write the next one to it.")] = None,
    recipient: Annotated[str | None, typer.Option(
        help="An export recipient of the member's file; third parties get pseudonyms.")] = None,
    coarsen: Annotated[str | None, typer.Option(
        help="Truncate times to the hour or day (with a third-party --recipient).")] = None,
    actor: Annotated[str | None, typer.Option(
        help="Who runs it, for the audit trail (default: cli:<os user>).")] = None,
) -> None:
    """Export a member's measurements or raw uplinks, streamed, with a progress bar, from
    --from to --to (excluded); times without an offset are UTC."""
    settings = settings_or_exit()
    start = None if start_text is None else time_of(start_text, "--from")
    end = None if end_text is None else time_of(end_text, "--to")
    _choice(kind, KINDS, "kind")
    _choice(fmt, FORMATS, "format")
    if cursor is None and cursor_file is not None and cursor_file.exists():
        cursor = cursor_file.read_text(encoding="utf-8").strip() or None
    with exit_on_errors(archive.ArchiveError), connect_admin(settings) as admin:
        spec = archive.load_member(admin, member)
    pseudonymiser = _pseudonymiser(settings, spec, recipient, coarsen)
    names = {d.dev_eui: d.name for d in spec.devices}
    flt = ExportFilter(start=start, end=end, devices=tuple(device or ()),
                       metrics=tuple(metric or ()), cursor=cursor)
    partial = output.with_name(output.name + ".partial")
    params = {
        "kind": kind, "format": fmt, "start": start, "end": end, "devices": list(flt.devices),
        "metrics": list(flt.metrics), "cursor": cursor, "recipient": recipient,
        "pseudonymised": pseudonymiser is not None, "coarsen": coarsen, "file": str(output),
    }
    who = actor or audit.cli_actor()
    completed, rows, next_cursor = False, 0, None
    try:
        with connect_member(settings, spec.name) as conn:
            # Both were checked against KINDS and FORMATS above.
            stream = open_export(conn, spec.schema, cast(Kind, kind), cast(Format, fmt), flt,
                                 pseudonymiser, names=names, with_total=True)
            next_cursor = stream.next_cursor
            with stream, partial.open("wb") as out, _progress() as bar:
                task = bar.add_task(f"{member} {kind} → {output.name}", total=stream.total)
                for chunk in stream.chunks:
                    out.write(chunk)
                    bar.update(task, completed=stream.rows())
                bar.update(task, completed=stream.rows())
            rows = stream.rows()
        partial.replace(output)
        completed = True
    except ExportError as exc:
        raise fail(str(exc)) from None
    except psycopg.OperationalError as exc:
        raise fail(f"database unreachable: {exc}") from None
    finally:
        if not completed:
            partial.unlink(missing_ok=True)
        if next_cursor is not None:
            _audit(settings, actor=who, member=member, action=f"export.{fmt}", target=kind,
                   params={**params, "completed": completed, "next_cursor": next_cursor},
                   rows=rows if completed else None)
    if cursor_file is not None and next_cursor is not None:
        cursor_file.write_text(next_cursor + "\n", encoding="utf-8")
    console.print(f"= {rows} rows written to {output}")
    # Never wrapped: the token is copied as one piece.
    console.print(f"next cursor: {next_cursor}", soft_wrap=True)


@tenant_app.command("export")
def tenant_export(
    member: MemberArg,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="Archive to write: .tar, .tar.gz or .zip.")] = None,
    actor: Annotated[str | None, typer.Option(help="Who runs it, for the audit trail.")] = None,
) -> None:
    """Write one archive with everything the member owns, and a checksummed manifest."""
    settings = settings_or_exit()
    out = output or archive.default_archive_name(member)
    if not archive.archive_suffix_ok(out):
        raise fail(f"{out}: the archive name must end in .tar, .tar.gz, .tgz or .zip")
    with exit_on_errors(archive.ArchiveError), connect_admin(settings) as conn, \
            _steps() as progress:
        result = archive.export_member(conn, settings, member, out, progress=progress)
        audit.record(conn, actor=actor or audit.cli_actor(), member=member,
                     action="tenant.export", target=str(out), source="cli",
                     params={"fingerprint": result.fingerprint,
                             "counts": result.manifest.counts},
                     rows=sum(result.manifest.counts.get(t, 0)
                              for t in result.manifest.tables))
    counts = ", ".join(f"{k} {v}" for k, v in result.manifest.counts.items())
    console.print(f"= {member} archived to {out} ({counts})")
    console.print(f"fingerprint (SHA-256 of manifest.json): {result.fingerprint}")


@tenant_app.command("import")
def tenant_import(
    path: Annotated[Path, typer.Argument(help="An archive written by `tenant export`.")],
    as_slug: Annotated[str | None, typer.Option(
        "--as", help="Import under this slug instead of the archived one.")] = None,
    fingerprint: Annotated[str | None, typer.Option(
        help="Refuse the archive unless its manifest has this SHA-256.")] = None,
    actor: Annotated[str | None, typer.Option(help="Who runs it, for the audit trail.")] = None,
) -> None:
    """Check an archive against its manifest, declare its member, restore its data.
    Idempotent: importing the same archive again adds nothing."""
    settings = settings_or_exit()
    with exit_on_errors(archive.ArchiveError), connect_admin(settings) as conn, \
            _steps() as progress:
        result = archive.import_member(conn, settings, path, as_slug=as_slug,
                                       fingerprint=fingerprint, progress=progress,
                                       log=err_console.print)
        audit.record(conn, actor=actor or audit.cli_actor(), member=result.slug,
                     action="tenant.import", target=str(path), source="cli",
                     params={"fingerprint": result.fingerprint,
                             "inserted": result.inserted, "skipped": result.skipped},
                     rows=sum(result.inserted.values()))
    for table, count in result.inserted.items():
        console.print(f"+ {result.slug}: {table}: {count} rows restored")
    for table, why in result.skipped.items():
        console.print(f"= {result.slug}: {table}: {why}")
    console.print(f"= {result.slug} imported (archive fingerprint {result.fingerprint})")


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)
    app.add_typer(tenant_app, name="tenant")

"""`hypervision reprocess` and `hypervision decode-errors`: codec changes and codec health."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from psycopg import sql
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from hypervision import reprocess as reprocessing
from hypervision.commands.common import (
    FromDate,
    MemberArg,
    MemberOption,
    ToDate,
    Yes,
    catalogue_or_exit,
    confirm_or_exit,
    console,
    fail,
    settings_or_exit,
    time_of,
)
from hypervision.db import connect_admin


def register(app: typer.Typer) -> None:
    @app.command("reprocess")
    def reprocess(
        member: MemberArg,
        device: Annotated[str | None, typer.Option(help="Only this DevEUI.")] = None,
        model: Annotated[str | None, typer.Option(help="Only devices of this model.")] = None,
        start: FromDate[str | None] = None,
        end: ToDate[str | None] = None,
        resume: Annotated[int | None, typer.Option(help="Resume this run id.")] = None,
        page_size: int = 1000,
        actor: Annotated[str | None, typer.Option(help="Who runs it (audit).")] = None,
        yes: Yes = False,
    ) -> None:
        """Decode stored raw uplinks again with the current codecs; measurements are
        replaced, not doubled. Interrupted runs resume with --resume. The period runs from
        --from to --to (excluded); times without an offset are UTC."""
        settings = settings_or_exit()
        who = actor or f"cli:{getpass.getuser()}"
        filters = reprocessing.Filters(
            device.lower() if device else None, model,
            None if start is None else time_of(start, "--from"),
            None if end is None else time_of(end, "--to"))
        confirm_or_exit(yes, f"decode {member}'s stored uplinks again, replacing the"
                             " measurements decoded from them")
        with connect_admin(settings) as conn:
            try:
                job = (reprocessing.load_run(conn, resume) if resume is not None
                       else reprocessing.start(conn, member, filters, who))
            except reprocessing.ReprocessError as exc:
                raise fail(str(exc)) from None
            if job.member != member:
                raise fail(f"run {job.id} belongs to {job.member}, not {member}")
            console.print(f"run {job.id}: {job.total} uplinks of {member}"
                          f" ({job.done} already done)")
            columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn(),
                       TimeRemainingColumn())
            with Progress(*columns, console=console) as bar:
                task = bar.add_task("re-decoding", total=job.total, completed=job.done)
                job = reprocessing.run(conn, job, catalogue_or_exit(), who, page_size,
                                       progress=lambda done, _: bar.update(task, completed=done))
        console.print(f"= run {job.id} {job.status}: {job.done} uplinks re-decoded")

    @app.command("decode-errors")
    def decode_errors(
        member: MemberOption = None,
    ) -> None:
        """Per device: uplinks that could not be decoded, decoded with warnings, last error."""
        settings = settings_or_exit()
        table = Table("member", "device", "model", "errors", "warnings", "last error", "at")
        with connect_admin(settings) as conn:
            members = conn.execute(
                "SELECT slug, schema_name FROM hv.members WHERE %s::text IS NULL OR slug = %s"
                " ORDER BY slug", (member, member),
            ).fetchall()
            for slug, schema in members:
                rows = conn.execute(
                    sql.SQL(
                        "SELECT s.dev_eui, d.model_id, s.decode_errors, s.decode_warnings,"
                        " s.last_decode_error, s.last_decode_error_at FROM {}.device_state s"
                        " JOIN hv.devices d USING (dev_eui)"
                        " WHERE s.decode_errors > 0 OR s.decode_warnings > 0 ORDER BY 1"
                    ).format(sql.Identifier(schema))
                ).fetchall()
                for eui, model_id, errors, warnings, last, at in rows:
                    table.add_row(slug, eui, model_id, str(errors), str(warnings), last or "",
                                  at.isoformat(timespec="seconds") if at else "")
        console.print(table if table.row_count else "= no decode error or warning")


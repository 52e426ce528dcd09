"""`hypervision billing MEMBER --date D`: the billing run of a member's water meters, as
the CSV billing software imports (hypervision.analytics.billing; columns in
platform/README.md, "Billing run"). Read through the member's reader role, written to a
`.partial` file renamed when complete, audited as an export (`export.csv`, target
`billing`): the next run's period starts at this run's date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import psycopg
import typer

from hypervision import audit
from hypervision.analytics import billing, members
from hypervision.analytics.config import ConfigError
from hypervision.commands.common import (
    FromDate,
    MemberArg,
    console,
    day_of,
    err_console,
    exit_on_errors,
    fail,
    settings_or_exit,
)
from hypervision.db import connect_admin, connect_member


def billing_command(
    member: MemberArg,
    date: Annotated[str, typer.Option(
        "--date", help="Billing date: indexes at 00:00 that day, local time.")],
    start: FromDate[str | None] = None,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="CSV file to write (default: billing-MEMBER-DATE.csv).")] = None,
    decimal_comma: Annotated[bool, typer.Option(
        "--decimal-comma", help="Write 12,345 rather than 12.345.")] = False,
    actor: Annotated[str | None, typer.Option(help="Who runs it, for the audit trail.")] = None,
) -> None:
    """Index at the billing date, consumption over the period and flags (rollover,
    meter-swap, reverse-flow, gap, no-data) for every water meter of the member. The period
    starts on the day --from, by default the previous billing date, else each meter's first
    reading."""
    settings = settings_or_exit()
    day = day_of(date, "--date")
    out = output or Path(f"billing-{member}-{day.isoformat()}.csv")
    partial = out.with_name(out.name + ".partial")
    with exit_on_errors(LookupError, ConfigError), connect_admin(settings) as admin:
        m = members.member(admin, member)
        config = members.sync(admin, m)
        first: dt.date | None
        if start is not None:
            first = day_of(start, "--from")
        else:
            first = billing.previous_billing(admin, m.slug, day)
    at = billing.billing_instant(day, config.timezone)
    period = None if first is None else billing.billing_instant(first, config.timezone)
    if period is not None and period >= at:
        raise fail(f"the period must start before the billing date ({first} >= {day})")
    params = {"date": day.isoformat(), "from": None if first is None else first.isoformat(),
              "file": str(out), "decimal_comma": decimal_comma}
    completed, meters, flagged = False, 0, 0
    try:
        with connect_member(settings, m.slug) as conn, \
                partial.open("w", encoding="utf-8", newline="") as handle:
            lines = billing.run(conn, m.schema, config, at, period)

            def counted() -> Iterator[billing.Line]:
                nonlocal meters, flagged
                for line in lines:
                    meters += 1
                    flagged += bool(line.flags or line.estimated)
                    if meters % billing.BATCH == 0:
                        err_console.print(f"  {meters} meters…")
                    yield line

            for chunk in billing.csv_chunks(counted(), config.timezone, decimal_comma):
                handle.write(chunk)
        partial.replace(out)
        completed = True
    except psycopg.OperationalError as exc:
        raise fail(f"database unreachable: {exc}") from None
    finally:
        if not completed:
            partial.unlink(missing_ok=True)
        with connect_admin(settings) as admin:
            audit.record(admin, actor=actor or audit.cli_actor(), member=m.slug,
                         action=billing.EXPORT_ACTION, target=billing.EXPORT_TARGET,
                         params={**params, "completed": completed},
                         rows=meters if completed else None, source="cli")
    since = "each meter's first reading" if first is None else first.isoformat()
    console.print(f"= {meters} meters billed at {day} (period from {since}) → {out}")
    if flagged:
        console.print(f"! {flagged} line(s) estimated or flagged: check them before billing")


def register(app: typer.Typer) -> None:
    app.command("billing")(billing_command)

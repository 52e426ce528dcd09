"""`hypervision alerts list|ack|close|evaluate`: the alerts communes act on
(hypervision.alerts). Reads of a member's alerts and every change are written to the audit
trail.
"""

from __future__ import annotations

from typing import Annotated, cast

import psycopg
import typer
from psycopg import sql
from rich.table import Table

from hypervision import audit, placement
from hypervision.alerts import lifecycle, notify
from hypervision.analytics import members
from hypervision.analytics.config import ConfigError
from hypervision.commands.common import (
    MemberArg,
    MemberOption,
    admin_db,
    audit_read,
    console,
    fail,
    local_time,
    settings_or_exit,
)

alerts_app = typer.Typer(help="Alerts: list, acknowledge, close, evaluate now.",
                         no_args_is_help=True)

By = Annotated[str | None, typer.Option("--by", help="Who acts (default: the OS user).")]
# What the commands report as exit code 1 with the reason.
ERRORS = (LookupError, ConfigError, ValueError, lifecycle.AlertError, placement.PlacementError)


def _members(conn: psycopg.Connection, slug: str | None) -> list[members.Member]:
    """The member named, or every member."""
    return [members.member(conn, slug)] if slug else members.members(conn)


@alerts_app.command("list")
def alerts_list(
    member: MemberArg,
    state: Annotated[list[str] | None, typer.Option(
        "--state", help="open, acknowledged or closed (repeatable; default: all).")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
) -> None:
    """The member's alerts, newest first."""
    for s in state or []:
        if s not in ("open", "acknowledged", "closed"):
            raise fail(f"unknown state {s!r}")
    settings = settings_or_exit()
    with admin_db(*ERRORS) as admin, placement.Connections(settings, admin) as servers:
        m = members.member(admin, member)
        conn = servers.get(m.server)
        zone = members.settings_of(conn, m.schema).timezone
        # Every state was checked above.
        rows = lifecycle.alerts(conn, m.schema, cast(list[lifecycle.State] | None, state), limit)
        audit_read(admin, m.slug, "alerts.read", m.schema, {"state": state or []}, len(rows))
    table = Table("id", "state", "severity", "rule", "device", "opened", "message")
    for a in rows:
        table.add_row(str(a["id"]), a["state"], a["severity"], a["rule"], a["dev_eui"],
                      local_time(a["opened_at"], zone), a["message"])
    console.print(table)


def _act(member: str, alert_id: int, by: str | None, action: str, reason: str = "") -> None:
    actor = audit.cli_actor()
    who = by or actor.removeprefix("cli:")
    settings = settings_or_exit()
    with admin_db(*ERRORS) as admin, placement.Connections(settings, admin) as servers:
        m = members.member(admin, member)
        conn = servers.get(m.server)
        with placement.transaction(admin, conn):
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(m.owner)))
            if action == "acknowledge":
                row = lifecycle.acknowledge(conn, m.schema, alert_id, who)
            else:
                row = lifecycle.close(conn, m.schema, alert_id, who, reason)
            conn.execute("RESET ROLE")
            audit.record(admin, actor=actor, member=m.slug, action=f"alerts.{action}",
                         target=f"alert:{alert_id}", params={"by": who, "reason": reason},
                         after={"state": row["state"]}, source="cli")
    console.print(f"~ alert {alert_id} of {m.slug}: {row['state']}")


@alerts_app.command("ack")
def alerts_ack(member: MemberArg, alert_id: Annotated[int, typer.Argument()],
               by: By = None) -> None:
    """Acknowledge an open alert: someone is on it."""
    _act(member, alert_id, by, "acknowledge")


@alerts_app.command("close")
def alerts_close(
    member: MemberArg, alert_id: Annotated[int, typer.Argument()], by: By = None,
    reason: Annotated[str, typer.Option(help="Why it is closed.")] = "",
) -> None:
    """Close an alert (open or acknowledged)."""
    _act(member, alert_id, by, "close", reason)


@alerts_app.command("evaluate")
def alerts_evaluate(member: MemberOption = None) -> None:
    """Evaluate the rules and send due notifications now (what the beat job does)."""
    settings = settings_or_exit()
    with admin_db(*ERRORS) as admin, placement.Connections(settings, admin) as servers:
        for m in _members(admin, member):
            conn = servers.get(m.server)
            result = lifecycle.evaluate_member(conn, m, settings, catalogue=admin)
            zone = members.settings_of(conn, m.schema).timezone
            sent = notify.deliver_due(conn, m, settings, timezone=zone, catalogue=admin)
            console.print(f"~ {m.slug}: {len(result.opened)} opened, {len(result.closed)}"
                          f" closed, {result.still_open} still open; notifications"
                          f" {len(sent.sent)} sent, {len(sent.retried)} to retry,"
                          f" {len(sent.failed)} failed")


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")

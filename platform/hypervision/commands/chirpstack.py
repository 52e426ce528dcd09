"""ChirpStack from the command line (see infra/chirpstack/README.md):

    hypervision chirpstack plan|apply [--prune --yes]   members' objects in ChirpStack
    hypervision gateways sync|list                      gateways' state in the catalogue
    hypervision downlink DEV_EUI --command C [--param k=v ...]   send a command
    hypervision downlinks list|track|commands           downlinks and what can be sent
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
from rich.markup import escape
from rich.table import Column, Table

from hypervision import audit, placement
from hypervision.accounts import Who
from hypervision.chirpstack import downlinks, gateways, provision
from hypervision.chirpstack.client import ChirpStack, ChirpStackError
from hypervision.chirpstack.encoders import ENCODERS, EncodeError, encoder_for
from hypervision.chirpstack.network import Network, NetworkError, load_keys, load_network
from hypervision.commands.common import (
    Yes,
    admin_db,
    catalogue_or_exit,
    confirm_or_exit,
    console,
    err_console,
    exit_on_errors,
    fail,
    settings_or_exit,
)
from hypervision.db import connect_admin
from hypervision.tenancy.spec import SpecError, TenantSpec, load_dir

chirpstack_app = typer.Typer(help="Members' tenants, applications, profiles, devices and"
                             " gateways in ChirpStack.", no_args_is_help=True)
gateways_app = typer.Typer(help="The network's gateways: state and last seen.",
                           no_args_is_help=True)
downlinks_app = typer.Typer(help="Downlinks sent to devices and what can be sent.",
                            no_args_is_help=True)

DirOption = Annotated[Path | None, typer.Option("--dir", help="Folder of tenant files.")]
SYMBOL_STYLE = {"+": "green", "~": "yellow", "-": "red", "=": "dim"}


@contextmanager
def _session() -> Iterator[tuple[psycopg.Connection, ChirpStack]]:
    """The catalogue and ChirpStack; their failures become exit code 1 with the reason."""
    settings = settings_or_exit()
    with exit_on_errors(ChirpStackError, provision.ProvisionError), \
            ChirpStack.from_settings(settings) as client, connect_admin(settings) as conn:
        yield conn, client


def _inputs(folder: Path | None) -> tuple[list[TenantSpec], Network, dict[str, str]]:
    settings = settings_or_exit()
    try:
        specs = load_dir(folder or settings.tenants_dir)
        network = load_network(settings.chirpstack_network_file)
        keys = load_keys(settings.chirpstack_keys_file)
    except (SpecError, NetworkError) as exc:
        raise fail(str(exc)) from None
    return specs, network, keys


def _print(line: object) -> None:
    """A step, coloured by its symbol (its text is escaped: names may hold brackets)."""
    text = str(line)
    console.print(f"[{SYMBOL_STYLE.get(text[:1], 'default')}]{escape(text)}[/]")


def _warnings(result: provision.Plan) -> None:
    for warning in result.warnings:
        err_console.print(f"[bold yellow]![/] {warning}")


@chirpstack_app.command("secure-admin")
def secure_admin() -> None:
    """Give ChirpStack's `admin` account HV_CHIRPSTACK_ADMIN_PASSWORD instead of its
    default `admin` (idempotent: nothing to do once changed)."""
    from hypervision.chirpstack.admin import secure_admin as run

    settings = settings_or_exit()
    try:
        changed = run(settings)
    except (ValueError, RuntimeError, ChirpStackError) as exc:
        raise fail(str(exc)) from None
    console.print("~ ChirpStack's admin password set" if changed
                  else "= ChirpStack's admin password is not the default")


@chirpstack_app.command("plan")
def plan(folder: DirOption = None) -> None:
    """Show the drift between the files and ChirpStack (+ ~ - =). Changes nothing."""
    specs, network, keys = _inputs(folder)
    with _session() as (conn, client):
        result = provision.plan(conn, client, specs, catalogue_or_exit(), network, keys)
    for step in result.steps:
        _print(step)
    _warnings(result)
    if result.deletions:
        console.print(f"[dim]{len(result.deletions)} object(s) no longer declared: `apply"
                      " --prune --yes` deletes them[/]")


@chirpstack_app.command("apply")
def apply(
    folder: DirOption = None,
    prune: Annotated[bool, typer.Option(
        "--prune", help="Also delete from ChirpStack what is no longer declared.")] = False,
    yes: Yes = False,
) -> None:
    """Create or update the members' objects in ChirpStack. Idempotent; deletes nothing
    without --prune (which asks first, unless --yes)."""
    if prune:
        confirm_or_exit(yes, "delete from ChirpStack the objects no longer declared"
                             " (`hypervision chirpstack plan` shows them)")
    specs, network, keys = _inputs(folder)
    with _session() as (conn, client):
        result = provision.apply(conn, client, specs, catalogue_or_exit(), network, keys,
                                 prune=prune, log=_print)
    _warnings(result)
    changed = [s for s in result.changes if prune or s.symbol != "-"]
    console.print(f"= {len(changed)} change(s) applied in ChirpStack" if changed
                  else "= nothing to change in ChirpStack")
    kept = len(result.deletions) if not prune else 0
    if kept:
        console.print(f"[dim]{kept} object(s) no longer declared were kept (--prune --yes"
                      " deletes them)[/]")


# Gateways ---------------------------------------------------------------------------------


def _ago(moment: datetime | None) -> str:
    """'never', '12 s ago', '5 min ago', '3 h ago' or '2 d ago'."""
    if moment is None:
        return "never"
    seconds = max(int((datetime.now(UTC) - moment).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


@gateways_app.command("sync")
def gateways_sync() -> None:
    """Read every gateway's state and last-seen time from ChirpStack into the catalogue."""
    with _session() as (conn, client):
        result = gateways.sync(conn, client)
    for gateway_id, previous, state in result.state_changes:
        console.print(f"~ gateway {gateway_id}: {previous or 'new'} -> {state}")
    for gateway_id in result.gone:
        console.print(f"[red]- gateway {gateway_id}: no longer in ChirpStack[/]")
    console.print(f"= {result.seen} gateway(s) read from ChirpStack")


STATE_STYLE = {"ONLINE": "green", "OFFLINE": "red", "NEVER_SEEN": "yellow"}


@gateways_app.command("list")
def gateways_list() -> None:
    """The gateways as last read from ChirpStack (run `gateways sync` to refresh)."""
    with admin_db() as conn:
        rows = gateways.listing(conn)
    read = min((r["synced_at"] for r in rows), default=None)
    # Ids and states are what operators copy and grep: never cut them.
    table = Table(Column("gateway", no_wrap=True, min_width=16),
                  Column("name", min_width=10, overflow="fold"), "member",
                  Column("state", no_wrap=True, min_width=10),
                  Column("since", no_wrap=True), Column("last seen", no_wrap=True),
                  caption=f"read from ChirpStack {_ago(read)}" if rows else None)
    for row in rows:
        state = row["state"] if row["in_chirpstack"] else "REMOVED"
        style = STATE_STYLE.get(state, "dim")
        table.add_row(row["gateway_id"], escape(row["name"]), row["member_slug"] or "",
                      f"[{style}]{state}[/]", _ago(row["state_since"]),
                      _ago(row["last_seen_at"]))
    console.print(table)


# Downlinks --------------------------------------------------------------------------------


def _param_value(text: str) -> Any:
    """`--param k=v` values: JSON when they parse (numbers, lists, booleans), else text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def downlink(
    dev_eui: Annotated[str, typer.Argument(help="The device's DevEUI.")],
    command: Annotated[str, typer.Option("--command", "-c", help="e.g. switch, reboot.")],
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="k=v, repeatable; e.g. -p circuits=1,2 -p state=on")] = None,
    confirmed: Annotated[bool, typer.Option(
        "--confirmed/--unconfirmed", help="Ask the device to acknowledge it.")] = True,
) -> None:
    """Send a command to a device (encoded for its model, queued in ChirpStack, audited)."""
    params: dict[str, Any] = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise fail(f"--param {item!r}: expected key=value")
        params[key.strip()] = _param_value(value.strip())
    with _session() as (conn, client), \
            placement.Connections(settings_or_exit(), conn) as servers:
        try:
            target = downlinks.resolve(conn, dev_eui, None)
            sent = downlinks.enqueue(
                conn, client, dev_eui, command, params,
                who=Who(actor=audit.cli_actor(), source="cli"), confirmed=confirmed,
                member_conn=servers.get(placement.member_server(conn, target.member_slug)))
        except (EncodeError, downlinks.DownlinkError) as exc:
            raise fail(str(exc)) from None
    console.print(f"+ downlink {sent.queue_item_id} queued for {sent.dev_eui}: {sent.command}"
                  f" {json.dumps(sent.params)} -> fPort {sent.f_port}, {bytes(sent.data).hex()}"
                  f" ({'confirmed' if sent.confirmed else 'unconfirmed'})")


@downlinks_app.command("list")
def downlinks_list(
    dev_eui: Annotated[str, typer.Argument(help="The device's DevEUI.")],
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
) -> None:
    """A device's latest downlinks and their state."""
    with admin_db() as conn:
        target = downlinks.find_device(conn, dev_eui)
        if target is None:
            raise fail(f"device {dev_eui} not found")
        rows = downlinks.list_downlinks(conn, target.schema, target.dev_eui, limit)
    table = Table("requested", "command", "data", "status", "sent", "acked", "by")
    for d in rows:
        table.add_row(f"{d.requested_at:%Y-%m-%d %H:%M:%S}", f"{d.command} {json.dumps(d.params)}",
                      bytes(d.data).hex(), d.status,
                      f"{d.sent_at:%H:%M:%S}" if d.sent_at else "",
                      f"{d.acked_at:%H:%M:%S}" if d.acked_at else "", d.requested_by)
    console.print(table)


@downlinks_app.command("track")
def downlinks_track() -> None:
    """Update every member's downlinks from the txack/ack events stored so far, and mark
    `expired` those never transmitted within HV_DOWNLINK_EXPIRY seconds."""
    settings = settings_or_exit()
    with admin_db(placement.PlacementError) as conn, \
            placement.Connections(settings, conn) as servers:
        changed = downlinks.track_all(servers, expire_after_s=settings.downlink_expiry)
    for slug, count in changed.items():
        if count:
            console.print(f"~ {slug}: {count} downlink(s) changed state")
    console.print(f"= {sum(changed.values())} downlink(s) updated")


@downlinks_app.command("commands")
def downlinks_commands(
    model: Annotated[str | None, typer.Argument(help="A device model id.")] = None,
) -> None:
    """The downlink commands of a model (all models with an encoder when none is given)."""
    try:
        encoders = [encoder_for(model)] if model else list(ENCODERS.values())
    except EncodeError as exc:
        raise fail(str(exc)) from None
    for encoder in encoders:
        console.print(f"[bold]{encoder.model_id}[/]")
        for command in encoder.commands.values():
            fields = ", ".join(
                f"{name}" + ("" if f.is_required() else "?")
                for name, f in command.params.model_fields.items()
            )
            console.print(f"  {command.name}({fields}): {command.description}")


def register(app: typer.Typer) -> None:
    app.add_typer(chirpstack_app, name="chirpstack")
    app.add_typer(gateways_app, name="gateways")
    app.add_typer(downlinks_app, name="downlinks")
    app.command("downlink")(downlink)

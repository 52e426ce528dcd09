"""`hypervision rollups|water|waste|air|health`: the analytics communes read
(hypervision.analytics); the alerts they act on are in alerts.py.

Times on the command line are ISO 8601 (`2026-03-01` or `2026-03-01T08:00`); without an
offset they are in the member's time zone. Reads of a member's data and every change are
written to the audit trail.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, cast

import psycopg
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hypervision import audit, placement
from hypervision.analytics import air, health, members, rollups, rounds, waste, water
from hypervision.analytics.config import ConfigError, MemberAnalytics
from hypervision.commands.common import (
    FromDate,
    MemberArg,
    MemberOption,
    ToDate,
    admin_db,
    audit_read,
    console,
    fail,
    local_time,
    settings_or_exit,
    time_of,
)

rollups_app = typer.Typer(help="Hourly and daily rollups: refresh, backfill, status.",
                          no_args_is_help=True)
water_app = typer.Typer(help="Water meters: billing index, consumption, leaks.",
                        no_args_is_help=True)
waste_app = typer.Typer(help="Waste containers: what to empty today.", no_args_is_help=True)
air_app = typer.Typer(help="Indoor air: time above thresholds and ICONE per room.",
                      no_args_is_help=True)
health_app = typer.Typer(help="Device and gateway health.", no_args_is_help=True)

DevEui = Annotated[str, typer.Argument(help="The device's DevEUI (16 hex digits).")]
# What the commands report as exit code 1 with the reason.
ERRORS = (LookupError, ConfigError, ValueError, placement.PlacementError)


def _members(conn: psycopg.Connection, slug: str | None) -> list[members.Member]:
    """The member named, or every member."""
    return [members.member(conn, slug)] if slug else members.members(conn)


@contextmanager
def _member_db(
    slug: str,
) -> Iterator[tuple[psycopg.Connection, psycopg.Connection, members.Member, MemberAnalytics]]:
    """The primary (the catalogue, the audit trail), the member's database server
    (hypervision.placement), the member, and its settings as copied into its schema."""
    settings = settings_or_exit()
    with admin_db(*ERRORS) as admin, placement.Connections(settings, admin) as servers:
        m = members.member(admin, slug)
        conn = servers.get(m.server)
        yield admin, conn, m, members.sync(admin, m, conn)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# rollups ---------------------------------------------------------------------------------


@rollups_app.command("refresh")
def rollups_refresh(member: MemberOption = None) -> None:
    """Bring rollups and derived tables up to date now (what the beat job does)."""
    settings = settings_or_exit()
    with admin_db(*ERRORS) as admin, placement.Connections(settings, admin) as servers:
        for m in _members(admin, member):
            r = rollups.refresh(servers.get(m.server), m, settings, catalogue=admin)
            if r.skipped:
                console.print(f"= {m.slug}: skipped, {r.skipped}")
            else:
                first = " (first refresh: everything held)" if r.first_run else ""
                console.print(f"~ {m.slug}: {r.hours} hours, {r.days} days, {r.derived_rows}"
                              f" derived rows in {r.seconds:.2f}s{first}")


@rollups_app.command("backfill")
def rollups_backfill(
    member: MemberArg,
    start: FromDate[str],
    end: ToDate[str],
    slice_days: Annotated[int, typer.Option(help="Days per transaction.", min=1)] = 7,
) -> None:
    """Recompute rollups and derived tables from the measurements from --from to --to
    (excluded); times without an offset are in the member's time zone."""
    settings = settings_or_exit()
    with _member_db(member) as (admin, conn, m, config):
        zone = config.timezone
        a, b = time_of(start, "--from", zone), time_of(end, "--to", zone)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task(f"{m.slug} {a.date()} → {b.date()}", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            r = rollups.backfill(conn, m, settings, a, b, progress,
                                 dt.timedelta(days=slice_days), catalogue=admin)
        audit.record(admin, actor=audit.cli_actor(), member=m.slug, action="rollups.backfill",
                     target=m.schema, params={"from": a.isoformat(), "to": b.isoformat()},
                     rows=r.hours, source="cli")
    console.print(f"~ {m.slug}: {r.hours} hours, {r.days} days, {r.derived_rows} derived rows"
                  f" in {r.seconds:.1f}s")


@rollups_app.command("status")
def rollups_status(member: MemberOption = None) -> None:
    """Last refresh and measurements waiting for the next one, per member."""
    settings = settings_or_exit()
    with admin_db(*ERRORS) as admin, placement.Connections(settings, admin) as servers:
        table = Table("member", "last refresh (UTC)", "waiting measurements")
        for m in _members(admin, member):
            lag = rollups.lag(servers.get(m.server), m)
            table.add_row(m.slug, local_time(lag.last_run_at, "UTC"), str(lag.pending))
    console.print(table)


# water -----------------------------------------------------------------------------------


@water_app.command("index")
def water_index(
    member: MemberArg, dev_eui: DevEui,
    at: Annotated[str, typer.Option("--at", help="When (ISO date or date-time).")],
) -> None:
    """The meter's index at a date, for billing: measured, or interpolated (estimated)."""
    with _member_db(member) as (admin, conn, m, config):
        device = members.devices(conn, m.schema, dev_euis=[dev_eui.lower()]).get(dev_eui.lower())
        if device is None or device.category != "water":
            raise fail(f"{m.slug} has no water meter {dev_eui}")
        when = time_of(at, "--at", config.timezone)
        found = water.index_at(conn, m.schema, device.dev_eui, when,
                               water.Meter.of(device, config.water))
        audit_read(admin, m.slug, "water.index.read", device.dev_eui, {"at": when.isoformat()}, 1)
    if found.index_l is None:
        raise fail(f"no reading of {device.name} at or before {local_time(when, config.timezone)}")
    flag = "estimated" if found.estimated else "measured"
    console.print(f"{device.name} ({device.dev_eui}) at {local_time(when, config.timezone)}:"
                  f" {found.index_l:.1f} L = {found.index_l / 1000:.3f} m³ ({flag},"
                  f" {found.method})")
    for label, reading in (("before", found.before), ("after", found.after)):
        if reading:
            console.print(f"  reading {label}: {reading[1]:.1f} L at"
                          f" {local_time(reading[0], config.timezone)}")


@water_app.command("consumption")
def water_consumption(
    member: MemberArg, dev_eui: DevEui,
    start: FromDate[str],
    end: ToDate[str],
    by: Annotated[str, typer.Option("--by", help="hour, day or month.")] = "day",
) -> None:
    """Litres consumed per hour, day or month (from the rollups), from --from to --to
    (excluded); times without an offset are in the member's time zone."""
    if by not in ("hour", "day", "month"):
        raise fail("--by is hour, day or month")
    with _member_db(member) as (admin, conn, m, config):
        zone = config.timezone
        rows = water.consumption(conn, m.schema, dev_eui.lower(), time_of(start, "--from", zone),
                                 time_of(end, "--to", zone), cast(water.Bucket, by),
                                 zone)  # checked above
        audit_read(admin, m.slug, "water.consumption.read", dev_eui.lower(),
              {"from": start, "to": end, "by": by}, len(rows))
    table = Table(by, "litres", "estimated")
    for r in rows:
        table.add_row(local_time(r.start, zone), f"{r.volume_l:.1f}", "yes" if r.estimated else "")
    console.print(table)


@water_app.command("leaks")
def water_leaks(
    member: MemberArg,
    night: Annotated[str | None, typer.Option(help="Last night (date it ends on).")] = None,
) -> None:
    """Meters whose night flow never fell to zero for the member's number of nights."""
    with _member_db(member) as (admin, conn, m, config):
        last = (dt.date.fromisoformat(night) if night
                else _now().astimezone(config.zone).date())
        found = water.leaks(conn, m.schema, last, config.water, config.timezone)
        audit_read(admin, m.slug, "water.leaks.read", m.schema, {"night": last.isoformat()},
              len(found))
    if not found:
        console.print(f"= no leak suspected ({config.water.leak_nights} nights up to {last})")
    for leak in found:
        console.print(f"! {leak.dev_eui}: flow never zero from the night of {leak.first_night}"
                      f" to {leak.last_night}, at least {leak.min_flow_l_h:.1f} L/h")


# waste -----------------------------------------------------------------------------------


@waste_app.command("today")
def waste_today(
    member: MemberArg,
    at: Annotated[str | None, typer.Option("--at", help="As of (default: now).")] = None,
) -> None:
    """Containers to empty today: above the threshold, or full before the next round."""
    with _member_db(member) as (admin, conn, m, config):
        when = _now() if at is None else time_of(at, "--at", config.timezone)
        chosen = waste.today(conn, m.schema, config.waste, when, config.timezone)
        audit_read(admin, m.slug, "waste.today.read", m.schema, {"at": when.isoformat()},
              len(chosen))
    if not chosen:
        console.print("= no container to empty")
        return
    table = Table("container", "level %", "measured", "%/day", "full in (days)", "why")
    for c in chosen:
        table.add_row(f"{c.name} ({c.dev_eui})", f"{c.level_pct:.0f}",
                      local_time(c.measured_at, config.timezone),
                      "" if c.rate_pct_per_day is None else f"{c.rate_pct_per_day:.1f}",
                      "" if c.days_until_full is None else f"{c.days_until_full:.1f}",
                      "above threshold" if c.reason == "level" else "full before next round")
    console.print(table)


@waste_app.command("round")
def waste_round(member: MemberArg) -> None:
    """The collection round over today's containers, from the member's depot and back
    (analytics.waste.depot): stops in order, with the distance of each leg. Read only: the
    refresh job keeps the dashboard's copy."""
    settings = settings_or_exit()
    with _member_db(member) as (admin, conn, m, config):
        try:
            found = rounds.plan_for(conn, m.schema, config, settings.tenants_dir, _now())
        except rounds.RoundError as exc:
            raise fail(str(exc)) from None
        audit_read(admin, m.slug, "waste.round.read", m.schema, {}, found.containers)
    table = Table("#", "stop", "level %", "leg (km)", "total (km)")
    for s in found.stops:
        label = s.place.name if s.place.id == rounds.DEPOT else f"{s.place.name} ({s.place.id})"
        table.add_row(str(s.position), label,
                      "" if s.place.level_pct is None else f"{s.place.level_pct:.0f}",
                      f"{s.leg_m / 1000:.2f}", f"{s.cumulative_m / 1000:.2f}")
    console.print(table)
    console.print(f"= {found.containers} container(s), {found.distance_m / 1000:.1f} km,"
                  f" {'road' if found.distances == 'road' else 'straight-line'} distances")
    for dev_eui in found.not_placed:
        console.print(f"! {dev_eui}: to collect, but without coordinates (location.lat/lon)")


# air -------------------------------------------------------------------------------------


@air_app.command("icone")
def air_icone(
    member: MemberArg,
    start: FromDate[str],
    end: ToDate[str],
    building: Annotated[str | None, typer.Option(help="Only this building.")] = None,
) -> None:
    """ICONE and time above the CO2 thresholds per room, over the occupied hours from
    --from to --to (excluded); times without an offset are in the member's time zone."""
    with _member_db(member) as (admin, conn, m, config):
        rows = air.rooms(conn, m.schema, time_of(start, "--from", config.timezone),
                         time_of(end, "--to", config.timezone), building)
        audit_read(admin, m.slug, "air.rooms.read", m.schema, {"from": start, "to": end}, len(rows))
    low, high = f"{config.air.low_ppm:g}", f"{config.air.high_ppm:g}"
    table = Table("building", "room", "occupied h", f"> {low} ppm", f"> {high} ppm",
                  "n0/n1/n2", "ICONE")
    for r in rows:
        table.add_row(r.building, r.room, f"{r.occupied_s / 3600:.1f}",
                      "" if r.above_low_share is None else f"{r.above_low_share:.0%}",
                      "" if r.above_high_share is None else f"{r.above_high_share:.0%}",
                      f"{r.n0}/{r.n1}/{r.n2}",
                      "" if r.icone is None else f"{r.icone} ({r.icone_label})")
    console.print(table)


# health ----------------------------------------------------------------------------------


@health_app.command("devices")
def health_devices(member: MemberArg) -> None:
    """Battery, silence, lost uplinks and radio trend of each device."""
    with _member_db(member) as (admin, conn, m, config):
        rows = health.devices(conn, m.schema, _now(), config.health)
        audit_read(admin, m.slug, "health.devices.read", m.schema, {}, len(rows))
    table = Table("device", "last heard", "silent", "battery %", "loss", "RSSI", "dB/day")
    for d in rows:
        table.add_row(f"{d.name} ({d.dev_eui})", local_time(d.last_seen, config.timezone),
                      "yes" if d.silent else "",
                      "" if d.battery_pct is None else
                      f"{d.battery_pct:.0f}{' low' if d.battery_low else ''}",
                      "" if d.loss_rate is None else f"{d.loss_rate:.1%}",
                      "" if d.rssi_avg is None else f"{d.rssi_avg:.0f}",
                      "" if d.rssi_slope_per_day is None else f"{d.rssi_slope_per_day:+.2f}")
    console.print(table)


@health_app.command("gateways")
def health_gateways(member: MemberArg) -> None:
    """Gateways that heard the member's devices, and those that stopped hearing."""
    with _member_db(member) as (admin, conn, m, config):
        rows = health.gateways(conn, m.schema, _now(), config.health)
        audit_read(admin, m.slug, "health.gateways.read", m.schema, {}, len(rows))
    table = Table("gateway", "last heard", "uplinks 24 h", "stopped")
    for g in rows:
        table.add_row(g.gateway_id, local_time(g.last_heard, config.timezone), str(g.uplinks_24h),
                      "yes" if g.silent else "")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(rollups_app, name="rollups")
    app.add_typer(water_app, name="water")
    app.add_typer(waste_app, name="waste")
    app.add_typer(air_app, name="air")
    app.add_typer(health_app, name="health")

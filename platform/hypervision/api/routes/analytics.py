"""What the analytics make of a member's measurements: water consumption, billing index,
leaks, events and abnormal days; waste containers and collections; indoor air per room;
device and gateway health (hypervision.analytics, see analytics/README.md).

Every handler reads the member's schema on its reader connection (the analytics functions
take `(conn, schema, ...)` and read that schema only) with the member's analytics settings
from its `analytics_settings` table (defaults before the first refresh), and writes one
audit entry. Water consumption is personal data (`accounts.PERSONAL_DATA_CLASSES`): as for
measurements, an operator without a grant who names such a device gets 403, and lists
leave such devices out (`withheld_devices` counts them).

Ranges are bounded (MAX_DAYS below) so that one request cannot scan years of hours.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal, Protocol, TypeVar
from zoneinfo import ZoneInfo

import psycopg
from fastapi import APIRouter, HTTPException, Query, status

from hypervision.analytics import air, health, rounds, waste, water
from hypervision.analytics.config import MemberAnalytics
from hypervision.analytics.members import Device, devices, settings_of
from hypervision.api import schemas
from hypervision.api.deps import (
    AppState,
    Audit,
    Auditor,
    MemberScope,
    ReadMember,
    ReadSession,
    State,
    not_found,
)
from hypervision.api.params import (
    DEV_EUI,
    EARLIEST,
    LATEST,
    DeviceList,
    End,
    Start,
    bad_request,
    bounded,
    finite,
    split_list,
    time_range,
)
from hypervision.api.routes.measurements import withheld
from hypervision.api.routes.members import DevEuiPath

router = APIRouter(tags=["analytics"])
PROBLEMS: dict[int | str, dict[str, object]] = {
    400: {"model": schemas.Problem}, 403: {"model": schemas.Problem},
    404: {"model": schemas.Problem}}

# The longest range each kind of request may cover, in days.
MAX_DAYS = {"hour": 31, "day": 400, "month": 3660, "events": 400, "abnormal": 400,
            "collections": 400, "rooms": 400, "room-hours": 31}
MAX_ROWS = 10_000
EVENT_KINDS = ("rollover", "replacement", "backflow", "gap")
EVENT_KIND = re.compile(r"^(" + "|".join(EVENT_KINDS) + r")$")

At = Annotated[datetime | None, Query(
    description="The time of the answer (ISO 8601; UTC if no offset); default now.")]
StartDay = Annotated[date | None, Query(description="First day (the member's local days).")]
EndDay = Annotated[date | None, Query(description="Last day, included.")]
Building = Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^[^\x00]*$",
                                       description="Only this building (location.building).")]
Limit = Annotated[int, Query(ge=1, le=MAX_ROWS)]


def _at(value: datetime | None) -> datetime:
    return bounded(value, "at") if value is not None else datetime.now(UTC)


def _limited(start: datetime, end: datetime, kind: str) -> None:
    if end - start > timedelta(days=MAX_DAYS[kind]):
        raise bad_request(f"at most {MAX_DAYS[kind]} days at a time here")


def _day(value: date, name: str) -> date:
    # Nights and history reach a few weeks around the day: keep clear of date's limits.
    if not EARLIEST.date() <= value <= LATEST.date():
        raise bad_request(f"{name} must lie between {EARLIEST:%Y} and {LATEST:%Y}")
    return value


def _settings(session: psycopg.Connection, member: MemberScope) -> MemberAnalytics:
    return settings_of(session, member.schema)


class _OfDevice(Protocol):
    @property
    def dev_eui(self) -> str: ...


Item = TypeVar("Item", bound=_OfDevice)


def _visible(items: Iterable[Item], left_out: list[str]) -> list[Item]:
    """The items about a device the caller may see."""
    hidden = set(left_out)
    return [i for i in items if i.dev_eui not in hidden]


def _water_meter(state: State, member: MemberScope, dev_eui: str) -> Device:
    """The member's water meter as analytics reads it, from the catalogue (so that a meter
    declared a moment ago is known before the next refresh): 403 when it carries personal
    data the caller may not read, 404 when it is not one of the member's water meters."""
    withheld(state, member, [dev_eui])
    with state.dbs.control() as conn:
        row = conn.execute(
            """
            SELECT d.dev_eui, d.name, d.model_id, m.category,
                   d.spec -> 'location' ->> 'building', d.spec -> 'location' ->> 'room',
                   coalesce((m.spec ->> 'typical_interval_s')::integer, 3600), d.variables
            FROM hv.devices d JOIN hv.device_models m ON m.id = d.model_id
            WHERE d.member_slug = %s AND d.dev_eui = %s AND m.category = 'water'
            """,
            (member.slug, dev_eui),
        ).fetchone()
    if row is None:
        raise not_found(f"water meter {dev_eui}")
    return Device(row[0], row[1], row[2], row[3], row[4], row[5], row[6],
                  {str(k): str(v) for k, v in (row[7] or {}).items()})


# Water ----------------------------------------------------------------------------------


@router.get("/members/{slug}/water/{dev_eui}/consumption",
            response_model=schemas.WaterConsumption, responses=PROBLEMS)
def water_consumption(
    member: ReadMember, session: ReadSession, state: State, audit_: Audit, dev_eui: DevEuiPath,
    start: Start = None, end: End = None,
    bucket: Annotated[Literal["hour", "day", "month"], Query(
        description="UTC hours, or the member's local days or months.")] = "day",
) -> schemas.WaterConsumption:
    """Litres consumed per bucket in [start, end) (default: the last 30 days), from the
    meter's index. At most 31 days by the hour, 400 by the day, 3660 by the month. A bucket
    covers the hours of [start, end) only: for whole local days or months, pass local
    midnights (e.g. 2026-03-01T00:00:00+01:00)."""
    start, end = time_range(start, end, default=timedelta(days=30))
    _limited(start, end, bucket)
    _water_meter(state, member, dev_eui)
    config = _settings(session, member)
    rows = water.consumption(session, member.schema, dev_eui, start, end, bucket,
                             config.timezone)
    audit_.record("water.consumption.read", member.slug, target=dev_eui,
                  params={"start": start, "end": end, "bucket": bucket,
                          "grant": member.grant_id}, rows=len(rows))
    return schemas.WaterConsumption(
        member=member.slug, dev_eui=dev_eui, start=start, end=end, bucket=bucket,
        timezone=config.timezone, total_l=finite(sum(r.volume_l for r in rows)),
        estimated=any(r.estimated for r in rows),
        rows=[schemas.WaterVolume(start=r.start, volume_l=finite(r.volume_l),
                                  estimated=r.estimated, hours=r.hours) for r in rows],
    )


@router.get("/members/{slug}/water/{dev_eui}/index", response_model=schemas.WaterIndex,
            responses=PROBLEMS)
def water_index(
    member: ReadMember, session: ReadSession, state: State, audit_: Audit, dev_eui: DevEuiPath,
    at: At = None,
) -> schemas.WaterIndex:
    """The meter's index at a time, for billing: the reading taken then (`measured`), a
    linear interpolation between the readings around it (`interpolated`), the last reading
    when none follows (`last-reading`), the old meter's last reading across a replacement
    (`replaced-between`); all but `measured` are `estimated`."""
    when = _at(at)
    device = _water_meter(state, member, dev_eui)
    config = _settings(session, member)
    found = water.index_at(session, member.schema, dev_eui, when,
                           water.Meter.of(device, config.water))
    audit_.record("water.index.read", member.slug, target=dev_eui,
                  params={"at": when, "grant": member.grant_id},
                  rows=0 if found.index_l is None else 1)

    def reading(r: tuple[datetime, float] | None) -> schemas.IndexReading | None:
        return None if r is None else schemas.IndexReading(time=r[0], index_l=finite(r[1]))

    return schemas.WaterIndex(
        member=member.slug, dev_eui=dev_eui, at=when, index_l=finite(found.index_l),
        estimated=found.estimated, method=found.method,
        before=reading(found.before), after=reading(found.after),
    )


def _last_night(now: datetime, config: MemberAnalytics) -> date:
    """The last night whose window has ended at `now`, as the alert rules read it."""
    zone = ZoneInfo(config.timezone)
    night = now.astimezone(zone).date()
    if water.night_window(night, config.water, zone)[1] > now:
        night -= timedelta(days=1)
    return night


@router.get("/members/{slug}/water/leaks", response_model=schemas.WaterLeaks,
            responses=PROBLEMS)
def water_leaks(
    member: ReadMember, session: ReadSession, state: State, audit_: Audit,
    night: Annotated[date | None, Query(
        description="The last night to look at (the date it ends on); default: last night."
    )] = None,
    nights: Annotated[int | None, Query(
        ge=1, le=31, description="Nights in a row; default the member's water.leak_nights.")
    ] = None,
) -> schemas.WaterLeaks:
    """Meters whose night flow never fell to zero on each of the last nights: probable
    leaks (only fully measured nights count)."""
    config = _settings(session, member)
    last = _day(night, "night") if night is not None else _last_night(datetime.now(UTC), config)
    required = nights or config.water.leak_nights
    left_out = withheld(state, member, [])
    found = _visible(water.leaks(session, member.schema, last, config.water, config.timezone,
                                 required), left_out)
    names = _names(session, member, [f.dev_eui for f in found])
    audit_.record("water.leaks.read", member.slug, target="*",
                  params={"night": last, "nights": required, "grant": member.grant_id,
                          "withheld_devices": len(left_out)}, rows=len(found))
    return schemas.WaterLeaks(
        member=member.slug, night=last, nights=required, withheld_devices=len(left_out),
        items=[schemas.WaterLeak(dev_eui=f.dev_eui, name=names.get(f.dev_eui, f.dev_eui),
                                 nights=f.nights, first_night=f.first_night,
                                 last_night=f.last_night, min_flow_l_h=finite(f.min_flow_l_h))
               for f in found],
    )


def _names(session: psycopg.Connection, member: MemberScope,
           dev_euis: list[str]) -> dict[str, str]:
    return {e: d.name for e, d in devices(session, member.schema, dev_euis=dev_euis).items()}


@router.get("/members/{slug}/water/events", response_model=schemas.WaterEvents,
            responses=PROBLEMS)
def water_events(
    member: ReadMember, session: ReadSession, state: State, audit_: Audit,
    start: Start = None, end: End = None,
    kinds: Annotated[list[str], Query(
        description="rollover, replacement, backflow, gap; repeated or comma-separated.",
        max_length=len(EVENT_KINDS))] = [],  # noqa: B006 (FastAPI copies defaults)
    devices: DeviceList = [],  # noqa: B006
    limit: Limit = 1000,
) -> schemas.WaterEvents:
    """What happened to the indexes in [start, end) (default: the last 30 days, at most
    400): rollovers, meter replacements, backflows and gaps between readings."""
    start, end = time_range(start, end, default=timedelta(days=30))
    _limited(start, end, "events")
    wanted_kinds = split_list(kinds, EVENT_KIND, "kind")
    device_ids = split_list(devices, DEV_EUI, "device")
    left_out = withheld(state, member, device_ids)
    found = _visible(water.events(session, member.schema, start, end, wanted_kinds or None),
                     left_out)
    if device_ids:
        found = [e for e in found if e.dev_eui in device_ids]
    truncated = len(found) > limit
    found = found[:limit]
    audit_.record("water.events.read", member.slug, target=",".join(device_ids) or "*",
                  params={"start": start, "end": end, "kinds": wanted_kinds, "limit": limit,
                          "grant": member.grant_id, "withheld_devices": len(left_out)},
                  rows=len(found))
    return schemas.WaterEvents(
        member=member.slug, start=start, end=end, truncated=truncated,
        withheld_devices=len(left_out),
        items=[schemas.WaterEvent(time=e.time, dev_eui=e.dev_eui, kind=e.kind,
                                  previous_time=e.previous_time,
                                  index_before=finite(e.index_before),
                                  index_after=finite(e.index_after),
                                  volume_l=finite(e.volume_l)) for e in found],
    )


def _days(start: date | None, end: date | None, today: date, kind: str) -> tuple[date, date]:
    """A range of local days, both included: by default the 30 days before `today`."""
    last = _day(end, "end") if end is not None else today - timedelta(days=1)
    first = _day(start, "start") if start is not None else last - timedelta(days=29)
    if first > last:
        raise bad_request("start must not be after end")
    if (last - first).days >= MAX_DAYS[kind]:
        raise bad_request(f"at most {MAX_DAYS[kind]} days at a time here")
    return first, last


@router.get("/members/{slug}/water/abnormal", response_model=schemas.WaterAbnormal,
            responses=PROBLEMS)
def water_abnormal(
    member: ReadMember, session: ReadSession, state: State, audit_: Audit,
    start: StartDay = None, end: EndDay = None,
) -> schemas.WaterAbnormal:
    """Days whose consumption exceeds the meter's own previous days' mean by more than
    the member's water.abnormal_sigmas deviations (default: the last 30 complete days,
    at most 400)."""
    config = _settings(session, member)
    today = datetime.now(UTC).astimezone(ZoneInfo(config.timezone)).date()
    first, last = _days(start, end, today, "abnormal")
    left_out = withheld(state, member, [])
    found = _visible(water.abnormal_days(session, member.schema, first, last, config.water),
                     left_out)
    audit_.record("water.abnormal.read", member.slug, target="*",
                  params={"start": first, "end": last, "grant": member.grant_id,
                          "withheld_devices": len(left_out)}, rows=len(found))
    return schemas.WaterAbnormal(
        member=member.slug, start=first, end=last, withheld_devices=len(left_out),
        items=[schemas.WaterDay(dev_eui=d.dev_eui, day=d.day, volume_l=finite(d.volume_l),
                                history_days=d.history_days, mean_l=finite(d.mean_l),
                                stdev_l=finite(d.stdev_l), abnormal=d.abnormal)
               for d in found],
    )


# Waste ----------------------------------------------------------------------------------


def _containers(found: list[waste.Container]) -> list[schemas.WasteContainer]:
    return [schemas.WasteContainer(
        dev_eui=c.dev_eui, name=c.name, level_pct=finite(c.level_pct), measured_at=c.measured_at,
        rate_pct_per_day=finite(c.rate_pct_per_day), days_until_full=finite(c.days_until_full),
        full_at=c.full_at, last_collection=c.last_collection, next_round=c.next_round,
        to_empty=c.to_empty, reason=c.reason,
    ) for c in found]


def _container_list(
    action: str, read: Callable[..., list[waste.Container]], member: MemberScope,
    session: psycopg.Connection, state: AppState, audit_: Auditor, at: datetime | None,
) -> schemas.WasteContainers:
    """Containers as `read` (waste.containers or waste.today) lists them at `at`, personal
    devices withheld, one audit entry."""
    when = _at(at)
    config = _settings(session, member)
    left_out = withheld(state, member, [])
    found = _visible(read(session, member.schema, config.waste, when, config.timezone),
                     left_out)
    audit_.record(action, member.slug, target="*",
                  params={"at": when, "grant": member.grant_id,
                          "withheld_devices": len(left_out)}, rows=len(found))
    return schemas.WasteContainers(member=member.slug, at=when, items=_containers(found),
                                   withheld_devices=len(left_out))


@router.get("/members/{slug}/waste/containers", response_model=schemas.WasteContainers,
            responses=PROBLEMS)
def waste_containers(
    member: ReadMember, session: ReadSession, state: State, audit_: Audit, at: At = None,
) -> schemas.WasteContainers:
    """Every container with a level: its latest level, fill rate since the last
    collection, days until full and whether it is on the day's list."""
    return _container_list("waste.containers.read", waste.containers, member, session,
                           state, audit_, at)


@router.get("/members/{slug}/waste/today", response_model=schemas.WasteContainers,
            responses=PROBLEMS)
def waste_today(
    member: ReadMember, session: ReadSession, state: State, audit_: Audit, at: At = None,
) -> schemas.WasteContainers:
    """The containers to empty on the day of `at`, fullest first: level at least
    waste.empty_above_pct, or full before the next round."""
    return _container_list("waste.today.read", waste.today, member, session, state, audit_,
                           at)


@router.get("/members/{slug}/waste/round", response_model=schemas.WasteRound,
            responses={**PROBLEMS, 409: {"model": schemas.Problem}})
def waste_round(
    member: ReadMember, session: ReadSession, state: State, audit_: Audit,
) -> schemas.WasteRound:
    """The collection round over the containers to collect today (as in `waste/today`,
    those with coordinates), from the member's depot (analytics.waste.depot) and back, in
    the order VROOM finds shortest: by road where the member's distance file gives the
    leg, straight-line otherwise. 409 when the member declares no depot."""
    config = _settings(session, member)
    left_out = withheld(state, member, [])
    try:
        found = rounds.plan_for(session, member.schema, config, state.settings.tenants_dir,
                                datetime.now(UTC), leave_out=left_out)
    except rounds.RoundError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    audit_.record("waste.round.read", member.slug, target="*",
                  params={"grant": member.grant_id, "withheld_devices": len(left_out)},
                  rows=found.containers)
    return schemas.WasteRound(
        member=member.slug, planned_at=found.planned_at, containers=found.containers,
        distance_m=found.distance_m, distances=found.distances,
        stops=[schemas.WasteRoundStop(
            position=s.position, dev_eui=None if s.place.id == rounds.DEPOT else s.place.id,
            name=s.place.name, lat=s.place.lat, lon=s.place.lon,
            level_pct=finite(s.place.level_pct), leg_m=s.leg_m, cumulative_m=s.cumulative_m)
            for s in found.stops],
        not_placed=found.not_placed, withheld_devices=len(left_out),
    )


@router.get("/members/{slug}/waste/collections", response_model=schemas.WasteCollections,
            responses=PROBLEMS)
def waste_collections(
    member: ReadMember, session: ReadSession, state: State, audit_: Audit,
    start: Start = None, end: End = None,
) -> schemas.WasteCollections:
    """Collections (falls of the level of at least waste.collection_drop_pct points) in
    [start, end) (default: the last 30 days, at most 400)."""
    start, end = time_range(start, end, default=timedelta(days=30))
    _limited(start, end, "collections")
    left_out = withheld(state, member, [])
    found = _visible(waste.collections_between(session, member.schema, start, end), left_out)
    audit_.record("waste.collections.read", member.slug, target="*",
                  params={"start": start, "end": end, "grant": member.grant_id,
                          "withheld_devices": len(left_out)}, rows=len(found))
    return schemas.WasteCollections(
        member=member.slug, start=start, end=end, withheld_devices=len(left_out),
        items=[schemas.WasteCollection(time=c.time, dev_eui=c.dev_eui,
                                       level_before=finite(c.level_before),
                                       level_after=finite(c.level_after)) for c in found],
    )


# Indoor air -----------------------------------------------------------------------------


@router.get("/members/{slug}/air/rooms", response_model=schemas.AirRooms, responses=PROBLEMS)
def air_rooms(
    member: ReadMember, session: ReadSession, audit_: Audit,
    start: Start = None, end: End = None, building: Building = None,
) -> schemas.AirRooms:
    """Per room over [start, end) (default: the last 7 days, at most 400): occupied time,
    time above the member's CO2 thresholds while occupied, and the ICONE index."""
    start, end = time_range(start, end, default=timedelta(days=7))
    _limited(start, end, "rooms")
    config = _settings(session, member)
    found = air.rooms(session, member.schema, start, end, building)
    audit_.record("air.rooms.read", member.slug, target=building or "*",
                  params={"start": start, "end": end, "building": building}, rows=len(found))
    return schemas.AirRooms(
        member=member.slug, start=start, end=end, low_ppm=config.air.low_ppm,
        high_ppm=config.air.high_ppm,
        rooms=[schemas.AirRoom(
            building=r.building, room=r.room, occupied_s=r.occupied_s,
            above_low_s=r.above_low_s, above_high_s=r.above_high_s,
            above_low_share=r.above_low_share, above_high_share=r.above_high_share,
            n0=r.n0, n1=r.n1, n2=r.n2, icone=r.icone, icone_label=r.icone_label,
        ) for r in found],
    )


@router.get("/members/{slug}/air/room-hours", response_model=schemas.AirRoomHours,
            responses=PROBLEMS)
def air_room_hours(
    member: ReadMember, session: ReadSession, audit_: Audit,
    start: Start = None, end: End = None, building: Building = None, limit: Limit = 1000,
) -> schemas.AirRoomHours:
    """CO2, temperature and humidity per room and UTC hour in [start, end) (default: the
    last 24 hours, at most 31 days), with the occupied seconds and the seconds above the
    thresholds (worst sensor of the room)."""
    start, end = time_range(start, end)
    _limited(start, end, "room-hours")
    found = air.room_hours(session, member.schema, start, end, building)
    truncated = len(found) > limit
    found = found[:limit]
    audit_.record("air.room_hours.read", member.slug, target=building or "*",
                  params={"start": start, "end": end, "building": building, "limit": limit},
                  rows=len(found))
    return schemas.AirRoomHours(
        member=member.slug, start=start, end=end, truncated=truncated,
        rows=[schemas.AirRoomHour(
            building=r.building, room=r.room, hour=r.hour, co2_avg=finite(r.co2_avg),
            co2_max=finite(r.co2_max), temperature_avg=finite(r.temperature_avg),
            humidity_avg=finite(r.humidity_avg), occupied_s=r.occupied_s,
            above_low_s=r.above_low_s, above_high_s=r.above_high_s,
        ) for r in found],
    )


# Health ---------------------------------------------------------------------------------


@router.get("/members/{slug}/health/devices", response_model=schemas.DevicesHealth,
            responses=PROBLEMS)
def health_devices(
    member: ReadMember, session: ReadSession, state: State, audit_: Audit, at: At = None,
) -> schemas.DevicesHealth:
    """The member's active devices at `at`: last heard, silent, battery, loss rate and
    radio trend over the member's health.window_days."""
    when = _at(at)
    config = _settings(session, member)
    left_out = withheld(state, member, [])
    found = _visible(health.devices(session, member.schema, when, config.health), left_out)
    audit_.record("health.devices.read", member.slug, target="*",
                  params={"at": when, "grant": member.grant_id,
                          "withheld_devices": len(left_out)}, rows=len(found))
    return schemas.DevicesHealth(
        member=member.slug, at=when, window_days=config.health.window_days,
        withheld_devices=len(left_out),
        items=[schemas.DeviceHealth(
            dev_eui=d.dev_eui, name=d.name, model=d.model_id, category=d.category,
            last_seen=d.last_seen, typical_interval_s=d.typical_interval_s, silent=d.silent,
            battery_pct=finite(d.battery_pct), battery_low=d.battery_low, uplinks=d.uplinks,
            expected_uplinks=d.expected_uplinks, loss_rate=finite(d.loss_rate),
            rssi_avg=finite(d.rssi_avg), snr_avg=finite(d.snr_avg),
            rssi_slope_per_day=finite(d.rssi_slope_per_day),
            snr_slope_per_day=finite(d.snr_slope_per_day),
        ) for d in found],
    )


@router.get("/members/{slug}/health/gateways", response_model=schemas.GatewaysHealth,
            responses=PROBLEMS)
def health_gateways(
    member: ReadMember, session: ReadSession, audit_: Audit, at: At = None,
) -> schemas.GatewaysHealth:
    """Gateways that heard the member's devices during the window, and those that have
    stopped hearing them (nothing for health.gateway_silent_minutes)."""
    when = _at(at)
    config = _settings(session, member)
    found = health.gateways(session, member.schema, when, config.health)
    audit_.record("health.gateways.read", member.slug, target="*", params={"at": when},
                  rows=len(found))
    return schemas.GatewaysHealth(
        member=member.slug, at=when,
        items=[schemas.GatewayHealth(gateway_id=g.gateway_id, last_heard=g.last_heard,
                                     uplinks_24h=g.uplinks_24h, devices_24h=g.devices_24h,
                                     silent=g.silent) for g in found],
    )

"""A member's analytics settings: occupancy calendars, water, waste, air and health
thresholds, and its alert rules (see platform/hypervision/analytics/README.md).

They are declared in the member's tenant file, tenants/<slug>.yaml, under `analytics:`
(the `AnalyticsSettings` model) and `alerts:` (`AlertRules`); every field is documented in
tenants/README.md and has a default. The tenant spec (hypervision.tenancy.spec) validates
them with the models of this module, so a mistake is reported by `hypervision tenants
validate|plan` with the file and the field; `tenants apply` stores the spec in
hv.members.spec. The refresh job builds `MemberAnalytics` from that row (`for_member`) and
copies it into the member's own `analytics_settings` table, so views and the API (which
read with the member's read-only role) see the same settings as the jobs.

This module imports nothing from hypervision.tenancy: the tenant spec imports it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hypervision.alerts.rules import AlertRules

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^([0-2]\d):([0-5]\d)-([0-2]\d):([0-5]\d)$")


class ConfigError(Exception):
    """Stored analytics settings are invalid; the message names where and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


def _span(text: str) -> tuple[dt.time, dt.time]:
    match = _SPAN.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a span such as '08:30-12:00'")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or (h2 == 24 and m2) or (h1, m1) >= (h2, m2):
        raise ValueError(f"{text!r}: the end must come after the start, within one day")
    end = dt.time(23, 59, 59, 999999) if h2 == 24 else dt.time(h2, m2)
    return dt.time(h1, m1), end


class Calendar(_Strict):
    """When a building is occupied: weekly opening spans in local time, minus closed days.

    Default: Monday to Friday, 08:00-17:00, Europe/Paris. A school with Wednesday
    afternoons off declares `week: {wed: ["08:30-12:00"], ...}`.
    """

    timezone: str = "Europe/Paris"
    week: dict[Weekday, list[str]] = Field(
        default_factory=lambda: {d: ["08:00-17:00"] for d in WEEKDAYS[:5]},
        description="opening spans per weekday, 'HH:MM-HH:MM'; a day not listed is closed",
    )
    closed: list[dt.date] = Field(
        default_factory=list, description="closed days (holidays), even if their weekday is open"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _zone(value)

    @field_validator("week")
    @classmethod
    def _spans(cls, week: dict[Weekday, list[str]]) -> dict[Weekday, list[str]]:
        for day, spans in week.items():
            for text in spans:
                try:
                    _span(text)
                except ValueError as exc:
                    raise ValueError(f"{day}: {exc}") from None
        return week

    def occupied(
        self, start: dt.datetime, end: dt.datetime
    ) -> list[tuple[dt.datetime, dt.datetime]]:
        """The occupied intervals within [start, end), as UTC-aware datetimes, in order.

        Spans are local wall-clock times: a span on a daylight-saving change day is cut
        by the clocks like everything else in the building.
        """
        zone = ZoneInfo(self.timezone)
        closed = set(self.closed)
        day = start.astimezone(zone).date() - dt.timedelta(days=1)
        last = end.astimezone(zone).date()
        out: list[tuple[dt.datetime, dt.datetime]] = []
        while day <= last:
            if day not in closed:
                for text in self.week.get(WEEKDAYS[day.weekday()], []):
                    t1, t2 = _span(text)
                    a = dt.datetime.combine(day, t1, zone).astimezone(dt.UTC)
                    b = dt.datetime.combine(day, t2, zone).astimezone(dt.UTC)
                    a, b = max(a, start), min(b, end)
                    if a < b:
                        out.append((a, b))
            day += dt.timedelta(days=1)
        out.sort()
        return out


class WaterSettings(_Strict):
    """Water meters: night window for leaks, meter swaps, abnormal days."""

    night_start: dt.time = Field(default=dt.time(1, 0), description="local time, included")
    night_end: dt.time = Field(default=dt.time(5, 0), description="local time, excluded")
    leak_nights: int = Field(default=3, ge=1, description="nights in a row without zero flow")
    replacement_max_l: float = Field(
        default=100.0, ge=0,
        description="an index that falls to at most this many litres is a new meter",
    )
    abnormal_history_days: int = Field(default=28, ge=7)
    abnormal_min_days: int = Field(default=14, ge=3)
    abnormal_sigmas: float = Field(default=3.0, gt=0)


class Depot(_Strict):
    """Where collection rounds start and end."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class WasteSettings(_Strict):
    """Waste containers: when to empty, what a collection looks like, collection rounds."""

    empty_above_pct: float = Field(default=80.0, gt=0, le=100)
    full_pct: float = Field(default=100.0, gt=0, le=100)
    collection_drop_pct: float = Field(
        default=30.0, gt=0, le=100, description="a fall of at least this many points"
    )
    round_days: list[Weekday] = Field(
        default_factory=lambda: list(WEEKDAYS[:5]), description="weekdays with a round"
    )
    rate_days: int = Field(default=7, ge=1, description="readings used for the fill rate")
    depot: Depot | None = Field(
        default=None, description="start and end of the rounds; none: no round is planned")
    road_distances: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_./-]*\.csv$",
        description="CSV of road distances (from;to;metres, ids `depot` or DevEUIs), a path"
                    " relative to the tenants directory; other legs are straight lines",
    )


class AirSettings(_Strict):
    """Indoor air: CO2 thresholds and occupancy calendars per building."""

    low_ppm: float = Field(default=800.0, gt=0)
    high_ppm: float = Field(default=1500.0, gt=0)
    calendar: Calendar = Field(default_factory=Calendar)
    buildings: dict[str, Calendar] = Field(
        default_factory=dict, description="calendar per building (location.building)"
    )

    @model_validator(mode="after")
    def _ordered(self) -> AirSettings:
        if self.low_ppm >= self.high_ppm:
            raise ValueError("low_ppm must be below high_ppm")
        return self

    def calendar_of(self, building: str | None) -> Calendar:
        return self.buildings.get(building or "", self.calendar)


class HealthSettings(_Strict):
    """Device and network health thresholds."""

    battery_low_pct: float = Field(default=20.0, ge=0, le=100)
    silent_factor: float = Field(
        default=3.0, gt=1, description="silent after this many usual intervals without uplink"
    )
    gateway_silent_minutes: int = Field(default=60, ge=1)
    window_days: int = Field(default=7, ge=1, description="window of loss rates and trends")


class AnalyticsSettings(_Strict):
    """The `analytics:` section of a tenant file: calendars and thresholds."""

    timezone: str = Field(default="Europe/Paris", description="zone of days and months")
    water: WaterSettings = Field(default_factory=WaterSettings)
    waste: WasteSettings = Field(default_factory=WasteSettings)
    air: AirSettings = Field(default_factory=AirSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _zone(value)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class MemberAnalytics(AnalyticsSettings):
    """Everything analytics and alerts need to know about one member: its `analytics:`
    section and its `alerts:` rules. Stored as JSON in the member's `analytics_settings`
    table, self-described by `version`, `kind` and `name`."""

    version: Literal["v1"] = "v1"
    kind: Literal["analytics"] = "analytics"
    name: str = Field(default="", description="the member's slug")
    alerts: AlertRules = Field(default_factory=list)


def _describe(error: ValidationError) -> Iterator[str]:
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(file)"
        yield f"  {where}: {item['msg']}"


def parse(raw: Any, where: str) -> MemberAnalytics:
    try:
        return MemberAnalytics.model_validate(raw or {})
    except ValidationError as exc:
        problems = "\n".join(_describe(exc))
        raise ConfigError(f"{where}: invalid analytics settings\n{problems}") from None


def for_member(slug: str, spec: dict[str, Any] | None) -> MemberAnalytics:
    """The member's settings, from its tenant spec as stored in hv.members.spec (the
    defaults for what it does not declare, or for a spec applied before these fields)."""
    spec = spec or {}
    body = {**(spec.get("analytics") or {}), "alerts": spec.get("alerts") or [], "name": slug}
    return parse(body, f"member {slug} (hv.members.spec, from tenants/{slug}.yaml)")

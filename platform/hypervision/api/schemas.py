"""The API's request and response bodies, as they appear in the OpenAPI document."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

Right = Literal["read", "export", "admin"]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(Body):
    email: EmailStr = Field(max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    code: str | None = Field(
        default=None, min_length=6, max_length=32, pattern=r"^[A-Za-z0-9 -]+$",
        description="Second factor, for an account that has one: a TOTP code or an unused"
                    " recovery code.")


class PasswordChange(Body):
    current: str = Field(min_length=1, max_length=1024)
    new: str = Field(min_length=12, max_length=1024)


class TotpEnrolment(BaseModel):
    secret: str = Field(description="Base32; send it back with a first code to confirm.")
    uri: str = Field(description="otpauth:// URI, for an authenticator app's QR code.")


class TotpConfirm(Body):
    secret: str = Field(min_length=32, max_length=64, pattern=r"^(?:[A-Z2-7]{8})+$")
    code: str = Field(min_length=6, max_length=8, pattern=r"^[0-9 ]+$")


class RecoveryCodes(BaseModel):
    recovery_codes: list[str] = Field(description="Shown once; each works once.")


class IssuedToken(BaseModel):
    token: str = Field(description="Shown once; keep it secret.")
    token_id: int
    member: str
    rights: list[Right]
    expires_at: datetime | None


class TokenRequest(Body):
    rights: list[Right] | None = Field(default=None, min_length=1, max_length=3,
                                       description="Default: all of the account's rights.")
    expires_days: int = Field(default=90, ge=1, le=730)
    label: str = Field(default="", max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")


class TokenInfo(BaseModel):
    id: int
    email: str
    member: str
    rights: list[str]
    label: str
    state: Literal["active", "expired", "revoked"]
    kind: Literal["personal", "login", "session", "superset"] = "personal"
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class Me(BaseModel):
    email: str
    name: str
    member: str
    rights: list[str]
    operator: bool
    token_id: int
    second_factor: bool = Field(description="The sign-in behind this token passed one.")
    mfa_enrolled: bool
    mfa_required: bool


class Member(BaseModel):
    slug: str
    name: str
    kind: str
    siren: str | None
    suspended: bool
    devices: int
    dpo: dict[str, Any] | None = None
    retention: dict[str, int] = Field(default_factory=dict)


class Device(BaseModel):
    dev_eui: str
    name: str
    model: str
    data_class: str
    active: bool
    purpose: str = ""
    installed_on: date | None = None
    location: dict[str, Any] | None = None
    state: dict[str, Any] | None = Field(
        default=None, description="The latest known state (last seen, RSSI, battery...).")


class Measurement(BaseModel):
    time: datetime = Field(description="The reading's time, or the bucket's start.")
    dev_eui: str
    metric: str
    value: float | None
    unit: str
    count: int = Field(description="Readings in the bucket (1 without a bucket).")


class Measurements(BaseModel):
    member: str
    start: datetime
    end: datetime
    bucket: str | None
    agg: str | None
    rows: list[Measurement]
    truncated: bool = Field(description="True when `limit` cut the result short.")
    withheld_devices: int = Field(
        default=0, description="Devices of personal data classes left out for lack of a grant.")


class Uplink(BaseModel):
    time: datetime
    received_at: datetime
    dev_eui: str
    deduplication_id: str
    f_cnt: int
    f_port: int
    dr: int | None
    rssi: int | None
    snr: float | None
    gateway_count: int
    data_hex: str
    object: Any = None
    codec: str | None
    decode_error: str | None
    event: dict[str, Any] | None = Field(default=None,
                                         description="The event as ChirpStack sent it.")


class Uplinks(BaseModel):
    member: str
    items: list[Uplink]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class DeadLetter(BaseModel):
    id: int
    received_at: datetime
    recorded_at: datetime
    origin: str
    event_type: str | None
    dev_eui: str | None
    member: str | None
    reason: str
    detail: str
    payload_bytes: int


class DeadLetters(BaseModel):
    items: list[DeadLetter]
    next_cursor: str | None


class UsageDay(BaseModel):
    day: date
    member: str
    uplinks: int = Field(description="Uplinks stored (decoded or not).")
    events: int = Field(description="Every event received for the member, duplicates included.")
    bytes: int = Field(description="Bytes of those events as received.")
    active_devices: int = Field(description="Devices that sent at least one uplink that day.")
    storage_bytes: int | None = Field(
        description="Storage used by the member's tables (measured daily; live for today).")


class Usage(BaseModel):
    start: date
    end: date
    days: list[UsageDay]


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    member: str | None
    action: str
    target: str
    params: dict[str, Any]
    rows: int | None
    source: str
    remote_addr: str | None
    request_id: str | None
    before: Any = None
    after: Any = None
    hash: str


class AuditTrail(BaseModel):
    member: str
    items: list[AuditEntry]
    next_cursor: str | None


class GrantRequest(Body):
    operator_email: EmailStr = Field(max_length=254)
    hours: int = Field(ge=1, le=24 * 31)
    reason: str = Field(min_length=3, max_length=500, pattern=r"^[^\x00]*$")


class Grant(BaseModel):
    id: int
    operator_email: str
    member: str
    reason: str
    starts_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    active: bool


class Problem(BaseModel):
    detail: str


# Analytics (hypervision.analytics; routes/analytics.py) --------------------------------

WITHHELD = "Devices of personal data classes left out for lack of a grant."


class WaterVolume(BaseModel):
    start: datetime = Field(description="The bucket's start: a UTC hour, or the member's"
                                        " local midnight or first day of the month.")
    volume_l: float | None = Field(description="Litres; negative for backflow.")
    estimated: bool = Field(description="Part of the volume was spread over a gap between"
                                        " readings.")
    hours: int = Field(description="Hours of the bucket holding a volume.")


class WaterConsumption(BaseModel):
    member: str
    dev_eui: str
    start: datetime
    end: datetime
    bucket: Literal["hour", "day", "month"]
    timezone: str = Field(description="The member's zone: days and months are local.")
    total_l: float | None
    estimated: bool
    rows: list[WaterVolume]


class IndexReading(BaseModel):
    time: datetime
    index_l: float | None


class WaterIndex(BaseModel):
    member: str
    dev_eui: str
    at: datetime
    index_l: float | None = Field(description="Null when the meter has no reading before `at`.")
    estimated: bool
    method: Literal["measured", "interpolated", "last-reading", "replaced-between",
                    "no-reading"]
    before: IndexReading | None = Field(description="The last reading at or before `at`.")
    after: IndexReading | None = Field(description="The first reading at or after `at`.")


class WaterLeak(BaseModel):
    dev_eui: str
    name: str
    nights: int
    first_night: date
    last_night: date
    min_flow_l_h: float | None = Field(description="The smallest hourly volume of those nights.")


class WaterLeaks(BaseModel):
    member: str
    night: date = Field(description="The last night looked at (the date it ends on).")
    nights: int = Field(description="Nights in a row without zero flow that make a leak.")
    items: list[WaterLeak]
    withheld_devices: int = Field(default=0, description=WITHHELD)


class WaterEvent(BaseModel):
    time: datetime = Field(description="The reading that ended the step.")
    dev_eui: str
    kind: Literal["rollover", "replacement", "backflow", "gap"]
    previous_time: datetime
    index_before: float | None
    index_after: float | None
    volume_l: float | None


class WaterEvents(BaseModel):
    member: str
    start: datetime
    end: datetime
    items: list[WaterEvent]
    truncated: bool = Field(description="True when `limit` cut the result short.")
    withheld_devices: int = Field(default=0, description=WITHHELD)


class WaterDay(BaseModel):
    dev_eui: str
    day: date
    volume_l: float | None
    history_days: int = Field(description="Previous days the day was compared with.")
    mean_l: float | None
    stdev_l: float | None
    abnormal: bool


class WaterAbnormal(BaseModel):
    member: str
    start: date
    end: date
    items: list[WaterDay]
    withheld_devices: int = Field(default=0, description=WITHHELD)


class WasteContainer(BaseModel):
    dev_eui: str
    name: str
    level_pct: float | None
    measured_at: datetime
    rate_pct_per_day: float | None = Field(description="Fill rate since the last collection.")
    days_until_full: float | None
    full_at: datetime | None
    last_collection: datetime | None
    next_round: date | None
    to_empty: bool
    reason: Literal["level", "forecast", ""] = Field(
        description="Why it is on today's list: its level, or full before the next round.")


class WasteContainers(BaseModel):
    member: str
    at: datetime
    items: list[WasteContainer]
    withheld_devices: int = Field(default=0, description=WITHHELD)


class WasteRoundStop(BaseModel):
    position: int = Field(description="0 and the last: the depot.")
    dev_eui: str | None = Field(description="None for the depot.")
    name: str
    lat: float
    lon: float
    level_pct: float | None
    leg_m: float = Field(description="From the previous stop, in metres.")
    cumulative_m: float


class WasteRound(BaseModel):
    member: str
    planned_at: datetime
    containers: int
    distance_m: float
    distances: Literal["road", "straight-line"] = Field(
        description="road when every leg came from the member's road distance file.")
    stops: list[WasteRoundStop]
    not_placed: list[str] = Field(
        description="DevEUIs of containers to collect that have no coordinates.")
    withheld_devices: int = Field(default=0, description=WITHHELD)


class WasteCollection(BaseModel):
    time: datetime
    dev_eui: str
    level_before: float | None
    level_after: float | None


class WasteCollections(BaseModel):
    member: str
    start: datetime
    end: datetime
    items: list[WasteCollection]
    withheld_devices: int = Field(default=0, description=WITHHELD)


class AirRoom(BaseModel):
    building: str
    room: str
    occupied_s: int = Field(description="Occupied seconds observed by the room's sensors.")
    above_low_s: int = Field(description="Occupied seconds above `low_ppm` (worst sensor).")
    above_high_s: int = Field(description="Occupied seconds above `high_ppm` (worst sensor).")
    above_low_share: float | None
    above_high_share: float | None
    n0: int = Field(description="Occupied readings below 1000 ppm.")
    n1: int = Field(description="Occupied readings from 1000 to 1700 ppm.")
    n2: int = Field(description="Occupied readings above 1700 ppm.")
    icone: int | None = Field(description="ICONE confinement index, 0 to 5.")
    icone_label: str | None


class AirRooms(BaseModel):
    member: str
    start: datetime
    end: datetime
    low_ppm: float = Field(description="The member's current thresholds (the hours keep those"
                                       " in force when they were computed).")
    high_ppm: float
    rooms: list[AirRoom]


class AirRoomHour(BaseModel):
    building: str
    room: str
    hour: datetime
    co2_avg: float | None
    co2_max: float | None
    temperature_avg: float | None
    humidity_avg: float | None
    occupied_s: int
    above_low_s: int
    above_high_s: int


class AirRoomHours(BaseModel):
    member: str
    start: datetime
    end: datetime
    rows: list[AirRoomHour]
    truncated: bool = Field(description="True when `limit` cut the result short.")


class DeviceHealth(BaseModel):
    dev_eui: str
    name: str
    model: str
    category: str
    last_seen: datetime | None
    typical_interval_s: int
    silent: bool
    battery_pct: float | None
    battery_low: bool
    uplinks: int = Field(description="Uplinks received over the window.")
    expected_uplinks: int = Field(description="Uplinks sent, from the frame counters.")
    loss_rate: float | None
    rssi_avg: float | None
    snr_avg: float | None
    rssi_slope_per_day: float | None
    snr_slope_per_day: float | None


class DevicesHealth(BaseModel):
    member: str
    at: datetime
    window_days: int
    items: list[DeviceHealth]
    withheld_devices: int = Field(default=0, description=WITHHELD)


class GatewayHealth(BaseModel):
    gateway_id: str
    last_heard: datetime | None
    uplinks_24h: int
    devices_24h: int
    silent: bool


class GatewaysHealth(BaseModel):
    member: str
    at: datetime
    items: list[GatewayHealth]


# Alerts (hypervision.alerts; routes/alerts.py) ------------------------------------------


class Alert(BaseModel):
    id: int
    rule: str
    dev_eui: str
    condition: Literal["above", "below", "silent", "leak"]
    metric: str | None
    threshold: float | None
    severity: Literal["info", "warning", "critical"]
    state: Literal["open", "acknowledged", "closed"]
    message: str
    value: float | None
    since: datetime = Field(description="When the condition began to hold.")
    opened_at: datetime
    last_value: float | None
    checked_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    closed_at: datetime | None
    closed_by: str | None
    close_reason: str | None


class Alerts(BaseModel):
    member: str
    items: list[Alert]
    withheld_devices: int = Field(default=0, description=WITHHELD)


class CloseAlertRequest(Body):
    reason: str = Field(min_length=1, max_length=500, pattern=r"^[^\x00]*$",
                        description="Why the alert is closed; kept with the alert.")

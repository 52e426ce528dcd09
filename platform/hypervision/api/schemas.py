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

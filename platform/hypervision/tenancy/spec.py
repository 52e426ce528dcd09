"""The pydantic model of `tenants/<slug>.yaml`: one member collectivité, declared as code.

Every field is documented in tenants/README.md. Files are self-describing (`version: v1`,
`kind: tenant`, `name: <slug>`) and validated strictly: an unknown or misspelt field is an
error naming the file and the field, never silently ignored.

The member's analytics settings and alert rules (`analytics:`, `alerts:`) are validated
with the models of hypervision.analytics.config and hypervision.alerts.rules, which
import nothing from this package: the import graph goes one way, tenancy → analytics →
alerts.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hypervision.alerts.rules import AlertRule, AlertRules
from hypervision.analytics.config import AnalyticsSettings
from hypervision.roles import RoleKind, member_role

SLUG = r"^[a-z][a-z0-9_]{1,39}$"
Right = Literal["read", "export", "admin"]
DEV_EUI = re.compile(r"^[0-9a-f]{16}$")



class SpecError(Exception):
    """A tenant file is invalid; the message names the file, the field and the problem."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Identity(Strict):
    name: str = Field(min_length=2, description="Official name, e.g. 'Ville de Quimper'.")
    kind: Literal["syndicate", "commune", "intercommunality"]
    siren: str | None = Field(default=None, pattern=r"^[0-9]{9}$")


class Contact(Strict):
    name: str
    email: EmailStr | None = None
    phone: str | None = None


class Contacts(Strict):
    dpo: Contact = Field(
        description="Data protection officer (délégué à la protection des données)."
    )
    technical: Contact | None = None


class User(Strict):
    name: str
    email: EmailStr
    rights: list[Right] = Field(default_factory=lambda: list[Right](["read"]))
    operator: bool = Field(
        default=False,
        description="Syndicate operator: manages the network across members (syndicate only).",
    )
    mfa: Literal["required", "optional"] = Field(
        default="optional",
        description="Second factor: 'required' makes it mandatory for this user (it always"
        " is for admin rights and operators).",
    )
    suspended: bool = Field(
        default=False,
        description="A suspended user cannot sign in anywhere (API, console, Superset); their"
        " sessions and tokens are revoked at the next `tenants apply`.",
    )
    sso_subject: str | None = Field(
        default=None, min_length=1, max_length=255,
        description="The identity provider's `sub` for this person, when single sign-on"
        " matches on it (HV_OIDC_MATCH=sub) rather than on the verified e-mail.",
    )


class Location(Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    address: str | None = None
    building: str | None = None
    room: str | None = None


DataClass = Literal[
    "water-consumption", "waste-fill", "indoor-air", "energy", "lighting", "technical"
]


class Device(Strict):
    dev_eui: Annotated[str, Field(description="16 hex digits, as in ChirpStack.")]
    name: str = Field(min_length=1)
    model: str = Field(description="A device model id from `hypervision models`.")
    purpose: str = Field(default="", description="Why this device is installed (public).")
    data_class: DataClass = "technical"
    installed_on: dt.date | None = None
    location: Location | None = None
    public_description: str = ""
    legal_basis: str | None = Field(
        default=None,
        description="GDPR legal basis for this device: public-task, contract, legal-obligation,"
        " consent, or free text; default: the member's for the data class, else public-task.",
    )
    area: str | None = Field(
        default=None, description="Commune or district grouping open aggregates (k-suppressed)."
    )
    variables: dict[str, str] = Field(
        default_factory=dict, description="Per-device codec variables, e.g. litres_per_pulse."
    )

    @field_validator("dev_eui", mode="before")
    @classmethod
    def _normalise_dev_eui(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower().replace(":", "").replace("-", "")
            if not DEV_EUI.match(value):
                raise ValueError("must be 16 hexadecimal digits")
        return value


class Recipient(Strict):
    name: str
    email: EmailStr | None = None
    third_party: bool = Field(default=True, description="Third parties get pseudonymised exports.")
    coarsen: Literal["hour", "day"] | None = Field(
        default=None, description="Round this recipient's timestamps down to the hour or day."
    )
    drop: list[Literal["location", "data", "object", "radio", "event"]] = Field(
        default_factory=list, description="Fields left out of this recipient's exports."
    )


SHARE_NAME = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"


class Partner(Strict):
    """An organisation outside the platform (a water delegate, a university): it receives
    deliveries only, never a database role."""

    name: str = Field(min_length=2)
    email: EmailStr | None = None


class SftpTarget(Strict):
    host: str
    port: int = Field(default=22, ge=1, le=65535)
    user: str
    path: str = Field(default=".", description="Folder on the server the files land in.")
    host_key: str = Field(description="The server's public host key, as in known_hosts"
                          " ('ssh-ed25519 AAAA...'): a delivery to another key is refused.")


class Delivery(Strict):
    """Files pushed to the recipient on a schedule, each holding what is new since the
    last delivery (see docs/sharing.md, "Deliveries")."""

    schedule: Literal["daily", "weekly"] = "daily"
    format: Literal["csv", "parquet", "jsonl"] = "csv"
    sftp: SftpTarget | None = None
    url: str | None = Field(default=None, pattern=r"^https?://",
                            description="POSTed with an HMAC-SHA256 signature header.")

    @model_validator(mode="after")
    def _one_target(self) -> Delivery:
        if (self.url is None) == (self.sftp is None):
            raise ValueError("a delivery goes either by `sftp` or to a `url`, one of them")
        return self


class Share(Strict):
    """A sharing agreement: this member lets a recipient read part of its data, for a
    purpose, on a legal basis, between two dates. Enforced by the database (views
    granted to the recipient's reader role); see docs/sharing.md."""

    name: str = Field(pattern=SHARE_NAME, max_length=24,
                      description="Unique within the member, e.g. 'waste-to-epci'.")
    recipient: str | None = Field(default=None, pattern=SLUG,
                                  description="The recipient member's slug.")
    partner: Partner | None = Field(default=None,
                                    description="Or an external partner (deliveries only).")
    data_classes: list[DataClass] = Field(default_factory=list)
    devices: list[str] = Field(default_factory=list, description="DevEUIs shared as well.")
    metrics: list[str] = Field(default_factory=list, description="Empty: every metric.")
    data_from: dt.date | None = Field(default=None, description="Oldest data shared.")
    data_until: dt.date | None = Field(default=None, description="Data before this day.")
    purpose: str = Field(min_length=10, description="Why the recipient reads the data.")
    legal_basis: str = Field(min_length=3, description="e.g. public-task, contract.")
    pseudonymise: bool = Field(default=False, description="Devices appear under keyed"
                               " pseudonyms, without name nor location.")
    starts: dt.date
    ends: dt.date = Field(description="The agreement ends at 00:00 UTC on this day.")
    delivery: Delivery | None = None

    @field_validator("devices", mode="before")
    @classmethod
    def _normalise(cls, value: object) -> object:
        if isinstance(value, list):
            return [Device._normalise_dev_eui(v) for v in value]
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Share:
        if (self.recipient is None) == (self.partner is None):
            raise ValueError("name either a `recipient` member or a `partner`, one of them")
        if not self.data_classes and not self.devices:
            raise ValueError("share some `data_classes` or `devices`")
        if self.ends <= self.starts:
            raise ValueError("`ends` must come after `starts`")
        if self.partner is not None and self.delivery is None:
            raise ValueError("a partner has no database access: give it a `delivery`")
        return self

    @property
    def starts_at(self) -> dt.datetime:
        return dt.datetime.combine(self.starts, dt.time(), dt.UTC)

    @property
    def ends_at(self) -> dt.datetime:
        return dt.datetime.combine(self.ends, dt.time(), dt.UTC)


class OpenDataset(Strict):
    """An open dataset: the member's k-suppressed daily aggregates (hypervision.opendata),
    published with its DCAT-AP catalogue entry and Table Schema (docs/sharing.md)."""

    kind: Literal["water", "fill"] = Field(description="water: litres per area and day;"
                                           " fill: mean container fill level.")
    title: str = Field(min_length=3)
    description: str = ""
    licence: str = Field(default="etalab-2.0", description="etalab-2.0 (Licence Ouverte"
                         " 2.0), odbl-1.0, cc-by-4.0, or the licence's URL.")
    days: int = Field(default=90, ge=1, le=3660, description="Days published, to yesterday.")
    keywords: list[str] = Field(default_factory=list)


class TenantSpec(Strict):
    """One member collectivité."""

    version: Literal["v1"]
    kind: Literal["tenant"]
    name: str = Field(pattern=SLUG, description="Slug: schema tenant_<name>, roles <name>_*.")
    identity: Identity
    contacts: Contacts
    suspended: bool = False
    server: str | None = Field(
        default=None, pattern=r"^[a-z][a-z0-9_]{0,39}$",
        description="The database server holding the member's schema, by its name in"
                    " HV_DATABASE_SERVERS_FILE; default: the primary. Moving a member"
                    " later is `hypervision tenants move`.")
    users: list[User] = Field(default_factory=list)
    retention: dict[DataClass | Literal["raw"], int] = Field(
        default_factory=dict, description="Days to keep, per data class ('raw' for uplinks)."
    )
    legal_bases: dict[DataClass, str] = Field(
        default_factory=dict, description="GDPR legal basis per data class (see Device)."
    )
    export_recipients: list[Recipient] = Field(default_factory=list)
    devices: list[Device] = Field(default_factory=list)
    shares: list[Share] = Field(
        default_factory=list, description="Sharing agreements this member grants.")
    opendata: list[OpenDataset] = Field(
        default_factory=list, description="Open datasets published by the platform.")
    # After `devices`: their validators check the DevEUIs and buildings they name.
    analytics: AnalyticsSettings = Field(
        default_factory=AnalyticsSettings,
        description="Calendars and thresholds of analytics; every field has a default.",
    )
    alerts: AlertRules = Field(
        default_factory=list, description="Alert rules; names are unique within the member."
    )

    @field_validator("name")
    @classmethod
    def _not_a_platform_name(cls, name: str) -> str:
        """The platform's own roles are `hv_*` (hv_api, hv_ingest, hv_operator_reader...):
        a member named `hv` or `hv_*` would get roles among them."""
        if name == "hv" or name.startswith("hv_"):
            raise ValueError(f"{name!r}: slugs `hv` and `hv_*` are reserved for the platform")
        return name

    @field_validator("devices")
    @classmethod
    def _unique_devices(cls, devices: list[Device]) -> list[Device]:
        seen: set[str] = set()
        for device in devices:
            if device.dev_eui in seen:
                raise ValueError(f"DevEUI {device.dev_eui} is declared twice")
            seen.add(device.dev_eui)
        return devices

    @field_validator("shares")
    @classmethod
    def _known_shared_devices(cls, shares: list[Share], info: ValidationInfo) -> list[Share]:
        devices = info.data.get("devices")
        names: set[str] = set()
        for share in shares:
            if share.name in names:
                raise ValueError(f"share {share.name} is declared twice")
            names.add(share.name)
            if share.recipient == info.data.get("name"):
                raise ValueError(f"share {share.name}: a member does not share with itself")
            # Its schema, share_<member>__<name>, must fit PostgreSQL's 63-byte names.
            schema = f"share_{info.data.get('name', '')}__{share.name}"
            if len(schema) > 63:
                raise ValueError(f"share {share.name}: name too long for this member"
                                 f" ({schema!r} is over 63 characters)")
            if devices is not None:
                euis = {d.dev_eui for d in devices}
                for eui in share.devices:
                    if eui not in euis:
                        raise ValueError(f"share {share.name}: device {eui} is not in"
                                         " `devices`")
        return shares

    @field_validator("analytics")
    @classmethod
    def _known_buildings(
        cls, analytics: AnalyticsSettings, info: ValidationInfo
    ) -> AnalyticsSettings:
        buildings = _buildings(info)
        if buildings is not None:
            for name in analytics.air.buildings:
                if name not in buildings:
                    raise ValueError(f"air.buildings: {_no_building(name, buildings)}")
        return analytics

    @field_validator("alerts")
    @classmethod
    def _known_targets(cls, rules: list[AlertRule], info: ValidationInfo) -> list[AlertRule]:
        """A rule names devices and buildings of this member: a typo would silently make
        it watch nothing."""
        buildings = _buildings(info)
        devices = info.data.get("devices")
        if buildings is None or devices is None:
            return rules  # the devices are invalid: that error is reported already
        euis = {d.dev_eui for d in devices}
        identity = info.data.get("identity")
        for rule in rules:
            if rule.condition == "gateway_offline" and identity is not None \
                    and identity.kind != "syndicate":
                raise ValueError(f"rule {rule.name}: gateways are the syndicate's: only its"
                                 " operators (identity.kind: syndicate) may watch them")
            for eui in rule.devices:
                if eui not in euis:
                    raise ValueError(f"rule {rule.name}: device {eui} is not in `devices`")
            for name in rule.buildings:
                if name not in buildings:
                    raise ValueError(f"rule {rule.name}: {_no_building(name, buildings)}")
        return rules

    @property
    # The member's schema name; it hides pydantic's deprecated `BaseModel.schema()`
    # (the JSON schema, now `model_json_schema()`), which nothing here calls.
    def schema(self) -> str:  # type: ignore[override]
        return f"tenant_{self.name}"

    def role(self, kind: RoleKind) -> str:
        return member_role(self.name, kind)


def _buildings(info: ValidationInfo) -> set[str] | None:
    """The buildings of the member's devices (`location.building`); None when the devices
    did not validate."""
    devices: list[Device] | None = info.data.get("devices")
    if devices is None:
        return None
    return {d.location.building for d in devices if d.location and d.location.building}


def _no_building(name: str, buildings: set[str]) -> str:
    known = ", ".join(repr(b) for b in sorted(buildings)) or "none"
    return f"no device is in building {name!r} (location.building of the devices: {known})"


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(file)"
        lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)


def load_file(path: Path) -> TenantSpec:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping with version, kind, name")
    try:
        spec = TenantSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(f"{path}: invalid tenant\n{_describe(exc)}") from exc
    if path.stem != spec.name:
        raise SpecError(f"{path}: name '{spec.name}' must match the file name '{path.stem}'")
    return spec


def load_dir(folder: Path) -> list[TenantSpec]:
    """Every `*.yaml` in a folder; a DevEUI declared by two members is an error."""
    specs = [load_file(p) for p in sorted(folder.glob("*.yaml"))]
    return check_together(specs)


def check_together(specs: Iterable[TenantSpec]) -> list[TenantSpec]:
    owners: dict[str, str] = {}
    result = list(specs)
    names = {spec.name for spec in result}
    for spec in result:
        for share in spec.shares:
            if share.recipient is not None and share.recipient not in names:
                raise SpecError(f"tenants/{spec.name}.yaml: share {share.name}: recipient"
                                f" '{share.recipient}' is not a declared member")
    for spec in result:
        for device in spec.devices:
            other = owners.setdefault(device.dev_eui, spec.name)
            if other != spec.name:
                raise SpecError(
                    f"DevEUI {device.dev_eui} is declared by both '{other}' and '{spec.name}'"
                )
    return result

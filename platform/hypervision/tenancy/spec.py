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
)

from hypervision.alerts.rules import AlertRule, AlertRules
from hypervision.analytics.config import AnalyticsSettings

SLUG = r"^[a-z][a-z0-9_]{1,39}$"
DEV_EUI = re.compile(r"^[0-9a-f]{16}$")


RoleKind = Literal["owner", "writer", "reader"]


def member_role(slug: str, kind: RoleKind) -> str:
    """The database role of a member: `<slug>_owner`, `<slug>_writer` or `<slug>_reader`."""
    return f"{slug}_{kind}"


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
    rights: list[Literal["read", "export", "admin"]] = Field(default_factory=lambda: ["read"])
    operator: bool = Field(
        default=False,
        description="Syndicate operator: manages the network across members (syndicate only).",
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


class TenantSpec(Strict):
    """One member collectivité."""

    version: Literal["v1"]
    kind: Literal["tenant"]
    name: str = Field(pattern=SLUG, description="Slug: schema tenant_<name>, roles <name>_*.")
    identity: Identity
    contacts: Contacts
    suspended: bool = False
    users: list[User] = Field(default_factory=list)
    retention: dict[DataClass | Literal["raw"], int] = Field(
        default_factory=dict, description="Days to keep, per data class ('raw' for uplinks)."
    )
    legal_bases: dict[DataClass, str] = Field(
        default_factory=dict, description="GDPR legal basis per data class (see Device)."
    )
    export_recipients: list[Recipient] = Field(default_factory=list)
    devices: list[Device] = Field(default_factory=list)
    # After `devices`: their validators check the DevEUIs and buildings they name.
    analytics: AnalyticsSettings = Field(
        default_factory=AnalyticsSettings,
        description="Calendars and thresholds of analytics; every field has a default.",
    )
    alerts: AlertRules = Field(
        default_factory=list, description="Alert rules; names are unique within the member."
    )

    @field_validator("devices")
    @classmethod
    def _unique_devices(cls, devices: list[Device]) -> list[Device]:
        seen: set[str] = set()
        for device in devices:
            if device.dev_eui in seen:
                raise ValueError(f"DevEUI {device.dev_eui} is declared twice")
            seen.add(device.dev_eui)
        return devices

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
        for rule in rules:
            for eui in rule.devices:
                if eui not in euis:
                    raise ValueError(f"rule {rule.name}: device {eui} is not in `devices`")
            for name in rule.buildings:
                if name not in buildings:
                    raise ValueError(f"rule {rule.name}: {_no_building(name, buildings)}")
        return rules

    @property
    def schema(self) -> str:
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
    for spec in result:
        for device in spec.devices:
            other = owners.setdefault(device.dev_eui, spec.name)
            if other != spec.name:
                raise SpecError(
                    f"DevEUI {device.dev_eui} is declared by both '{other}' and '{spec.name}'"
                )
    return result

"""What the platform declares in ChirpStack besides tenants/*.yaml, and the devices' keys.

`infra/chirpstack/network.yaml` (setting `chirpstack_network_file`, documented in
infra/chirpstack/README.md) holds what a member file does not: the LoRaWAN region and MAC
version of the profiles, per-model profile options (class C for a lighting controller),
per-device join EUIs and application names, and the syndicate's gateways. It holds no
secret. The AppKeys are in a separate YAML file outside the repository (setting
`chirpstack_keys_file`): `<dev_eui>: <app_key>`, 32 hex digits each.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from chirpstack_api import common
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hypervision.settings import REPO_ROOT

EUI = re.compile(r"^[0-9a-f]{16}$")
KEY = re.compile(r"^[0-9a-f]{32}$")


class NetworkError(Exception):
    """The network file or the keys file is invalid; the message names file and field."""


def _eui(value: object) -> object:
    if isinstance(value, str):
        value = value.strip().lower().replace(":", "").replace("-", "")
        if not EUI.match(str(value)):
            raise ValueError("must be 16 hexadecimal digits")
    return value


def _enum_name(enum: Any, value: str, what: str) -> str:
    """A name of one of chirpstack_api's enums, e.g. EU868 for common.Region."""
    names = list(enum.keys())
    if value not in names:
        raise ValueError(f"unknown {what}; one of {', '.join(names)}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProfileOptions(_Strict):
    """Per-model device-profile options (the rest comes from the device catalogue)."""

    supports_class_c: bool = False
    class_c_timeout: int = Field(default=5, ge=0, description="s to wait for a confirmed ack")
    device_status_req_interval: int = Field(
        default=1, ge=0, description="DevStatusReq per day (battery, margin)"
    )


class DeviceOptions(_Strict):
    """Non-secret LoRaWAN identity and placement of one device."""

    join_eui: Annotated[str, Field(description="JoinEUI (AppEUI) printed with the device")] = (
        "0000000000000000"
    )
    application: str | None = Field(
        default=None, description="ChirpStack application name (default: the member's)"
    )

    _check = field_validator("join_eui", mode="before")(_eui)


class MemberOptions(_Strict):
    application: str | None = Field(
        default=None, description="name of the member's ChirpStack application (default: slug)"
    )


class Location(_Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    altitude: float = 0.0


class GatewaySpec(_Strict):
    """One gateway of the network, owned in ChirpStack by the `gateways.owner` member."""

    gateway_id: str
    name: str = Field(min_length=1)
    description: str = ""
    location: Location | None = None
    stats_interval: int = Field(default=30, ge=1, description="s between gateway stats")
    tags: dict[str, str] = Field(default_factory=dict)

    _check = field_validator("gateway_id", mode="before")(_eui)


class Gateways(_Strict):
    owner: str = Field(description="member slug whose ChirpStack tenant holds the gateways")
    items: list[GatewaySpec] = Field(default_factory=list)

    @field_validator("items")
    @classmethod
    def _unique(cls, items: list[GatewaySpec]) -> list[GatewaySpec]:
        ids = [g.gateway_id for g in items]
        if len(set(ids)) != len(ids):
            raise ValueError("a gateway_id is declared twice")
        return items


class Network(_Strict):
    """The whole network file."""

    version: Literal["v1"]
    kind: Literal["chirpstack-network"]
    region: str = "EU868"
    region_config_id: str = Field(default="", description="ChirpStack region id, e.g. eu868")
    mac_version: str = "LORAWAN_1_0_3"
    reg_params_revision: str = "A"
    adr_algorithm_id: str = "default"
    models: dict[str, ProfileOptions] = Field(default_factory=dict)
    members: dict[str, MemberOptions] = Field(default_factory=dict)
    devices: dict[str, DeviceOptions] = Field(default_factory=dict)
    gateways: Gateways | None = None

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        return _enum_name(common.Region, value, "region")

    @field_validator("mac_version")
    @classmethod
    def _mac(cls, value: str) -> str:
        return _enum_name(common.MacVersion, value, "MAC version")

    @field_validator("reg_params_revision")
    @classmethod
    def _revision(cls, value: str) -> str:
        return _enum_name(common.RegParamsRevision, value, "regional parameters revision")

    @field_validator("devices", mode="before")
    @classmethod
    def _device_keys(cls, value: object) -> object:
        if isinstance(value, dict):
            return {_eui(str(k)): v for k, v in value.items()}
        return value

    def application_of(self, member: str, dev_eui: str | None = None) -> str:
        """The ChirpStack application name of a member's device (or the member's default)."""
        device = self.devices.get(dev_eui) if dev_eui else None
        if device is not None and device.application:
            return device.application
        options = self.members.get(member)
        return options.application if options and options.application else member

    def device(self, dev_eui: str) -> DeviceOptions:
        return self.devices.get(dev_eui) or DeviceOptions()

    def profile(self, model_id: str) -> ProfileOptions:
        return self.models.get(model_id) or ProfileOptions()


EMPTY = Network(version="v1", kind="chirpstack-network")


def load_network(path: Path) -> Network:
    """Read the network file; a missing file means no gateways and default options."""
    if not path.exists():
        return EMPTY
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise NetworkError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Network.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors()
        ]
        raise NetworkError(f"{path}: invalid network file\n" + "\n".join(lines)) from exc


def load_keys(path: Path | None) -> dict[str, str]:
    """The AppKeys by DevEUI. Refuses a file inside the repository or readable by others:
    keys are secrets and must never be committed or shared by accident."""
    if path is None:
        return {}
    path = path.resolve()
    if path.is_relative_to(REPO_ROOT):
        raise NetworkError(
            f"{path}: the keys file is inside the repository; keep AppKeys outside it"
        )
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NetworkError(f"{path}: cannot read the keys file: {exc.strerror}") from None
    if mode & stat.S_IROTH:
        raise NetworkError(f"{path}: the keys file is readable by everyone; chmod 600 it")
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        # The parser's message may quote the file's content: a key must not be printed.
        raise NetworkError(f"{path}: the keys file is not valid YAML") from None
    if not isinstance(raw, dict):
        raise NetworkError(f"{path}: expected a mapping `dev_eui: app_key`")
    keys: dict[str, str] = {}
    for dev_eui, key in raw.items():
        if not isinstance(dev_eui, str) or not isinstance(key, str):
            # YAML reads some hex strings as numbers: only quoted values are unambiguous.
            raise NetworkError(f"{path}: quote every DevEUI and AppKey (entry {dev_eui!r})")
        eui = dev_eui.strip().lower()
        value = key.strip().lower()
        if not EUI.match(eui):
            raise NetworkError(f"{path}: {dev_eui!r} is not a DevEUI (16 hex digits)")
        if not KEY.match(value):
            raise NetworkError(f"{path}: the AppKey of {eui} is not 32 hex digits")
        keys[eui] = value
    return keys

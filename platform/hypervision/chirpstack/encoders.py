"""Downlink encoders: a named command with parameters → (fPort, bytes), per device model.

Encoders are pure functions, the mirror of the decoders in ingest/decode/codecs/: no I/O,
parameters validated by a pydantic model, an `EncodeError` for anything invalid. A model
without an encoder cannot receive downlinks from the platform. Add a model by writing its
command models and encode functions from the vendor's documentation, and registering them
in `ENCODERS`. See infra/chirpstack/README.md, "Downlinks".
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class EncodeError(Exception):
    """A command is unknown for the model, or its parameters are invalid."""


@dataclass(frozen=True, slots=True)
class Encoded:
    f_port: int
    data: bytes


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class Command:
    """One downlink command of a model: its parameters and how they become bytes."""

    name: str
    description: str
    params: type[Params]
    encode: Callable[[Any], Encoded]


@dataclass(frozen=True, slots=True)
class ModelEncoder:
    model_id: str
    documentation: tuple[str, ...]
    commands: dict[str, Command]

    def encode(self, command: str, params: dict[str, Any]) -> tuple[Encoded, dict[str, Any]]:
        """The frame for `command`, and the validated parameters (for the record)."""
        found = self.commands.get(command)
        if found is None:
            known = ", ".join(sorted(self.commands))
            raise EncodeError(f"{self.model_id} has no command {command!r}; commands: {known}")
        try:
            validated = found.params.model_validate(params)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or command}:"
                f" {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            )
            raise EncodeError(f"{self.model_id} {command}: {problems}") from None
        return found.encode(validated), validated.model_dump(mode="json")


# Milesight WS558 smart light controller (8 switched lighting circuits) -------------------
#
# Downlinks on fPort 85, as Milesight's channel/type records, from the WS558 user guide
# (section "Downlink Commands") and Milesight's WS558 payload table:
# - switch circuits: 0x08, then a control byte (bit n: circuit n+1 is addressed) and a
#   state byte (bit n: circuit n+1 on); circuits not addressed keep their state;
# - reporting interval: 0xFF 0x03, uint16 little-endian seconds;
# - reboot: 0xFF 0x10 0xFF.

WS558_FPORT = 85


class Ws558Switch(Params):
    """Switch lighting circuits on or off."""

    circuits: list[int] | Literal["all"] = Field(
        description="circuits 1 to 8 (a list, '1,3', or 'all')"
    )
    state: Literal["on", "off"]

    @field_validator("circuits", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str) and value != "all":
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, int):
            return [value]
        return value

    @field_validator("circuits")
    @classmethod
    def _range(cls, value: list[int] | str) -> list[int] | str:
        if isinstance(value, list):
            if not value:
                raise ValueError("name at least one circuit")
            if any(not 1 <= c <= 8 for c in value):
                raise ValueError("circuits are numbered 1 to 8")
            return sorted(set(value))
        return value


class Ws558Interval(Params):
    """Change how often the controller reports (seconds)."""

    seconds: int = Field(ge=60, le=65535)


class NoParams(Params):
    pass


def _ws558_switch(p: Ws558Switch) -> Encoded:
    circuits = range(1, 9) if p.circuits == "all" else p.circuits
    mask = 0
    for circuit in circuits:
        mask |= 1 << (circuit - 1)
    state = mask if p.state == "on" else 0
    return Encoded(WS558_FPORT, bytes([0x08, mask, state]))


def _ws558_interval(p: Ws558Interval) -> Encoded:
    return Encoded(WS558_FPORT, b"\xff\x03" + struct.pack("<H", p.seconds))


def _ws558_reboot(_: NoParams) -> Encoded:
    return Encoded(WS558_FPORT, b"\xff\x10\xff")


WS558 = ModelEncoder(
    model_id="milesight-ws558",
    documentation=(
        "https://www.milesight.com/iot/product/lorawan-sensor/ws558 (WS558 user guide,"
        " 'Downlink Commands')",
        "https://github.com/Milesight-IoT/SensorDecoders/blob/main/ws-series/ws558/README.md",
    ),
    commands={
        "switch": Command("switch", "switch lighting circuits on or off", Ws558Switch,
                          _ws558_switch),
        "reporting_interval": Command("reporting_interval", "set the reporting interval",
                                      Ws558Interval, _ws558_interval),
        "reboot": Command("reboot", "restart the controller", NoParams, _ws558_reboot),
    },
)

ENCODERS: dict[str, ModelEncoder] = {WS558.model_id: WS558}


def encoder_for(model_id: str) -> ModelEncoder:
    found = ENCODERS.get(model_id)
    if found is None:
        models = ", ".join(sorted(ENCODERS))
        raise EncodeError(f"model {model_id} has no downlink encoder (models with one: {models})")
    return found

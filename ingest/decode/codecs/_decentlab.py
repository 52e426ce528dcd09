"""Shared reading of Decentlab's sensor frames (not a device model itself).

Decentlab devices send, big-endian: protocol version (1 byte, 2), device id (uint16),
a flags word (uint16) whose bit i says sensor i is present, then for each present sensor
a fixed number of uint16 words. Each model lists its sensors, the words they use and how
each word converts into a value with a display name and a unit; the output keeps
Decentlab's {displayName, unit, value} shape. Layout from Decentlab's datasheets and the
payload examples Decentlab publishes in The Things Network device repository.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ingest.decode.errors import DecodeError

PROTOCOL_VERSION = 2


@dataclass(frozen=True, slots=True)
class Value:
    """One value computed from a sensor's words."""

    key: str
    display_name: str
    unit: str | None
    convert: Callable[[Sequence[int]], float]


@dataclass(frozen=True, slots=True)
class Sensor:
    """A block of `words` uint16 values, present when its flag bit is set."""

    words: int
    values: tuple[Value, ...]


def decode_frame(data: bytes, sensors: Sequence[Sensor]) -> dict[str, Any]:
    """Decode a Decentlab frame given the model's sensor table."""
    if len(data) < 5:
        raise DecodeError("frame shorter than the 5-byte header")
    if data[0] != PROTOCOL_VERSION:
        raise DecodeError(f"protocol version {data[0]} is not supported")
    out: dict[str, Any] = {
        "protocol_version": data[0],
        "device_id": int.from_bytes(data[1:3], "big"),
    }
    flags = int.from_bytes(data[3:5], "big")
    i = 5
    for bit, sensor in enumerate(sensors):
        if not flags >> bit & 1:
            continue
        end = i + 2 * sensor.words
        if end > len(data):
            raise DecodeError(f"frame truncated in sensor {bit} at byte {i}")
        words = [int.from_bytes(data[j : j + 2], "big") for j in range(i, end, 2)]
        for value in sensor.values:
            out[value.key] = {
                "displayName": value.display_name,
                "unit": value.unit,
                "value": value.convert(words),
            }
        i = end
    if i != len(data):
        raise DecodeError(f"{len(data) - i} unexpected bytes after the flagged sensors")
    return out

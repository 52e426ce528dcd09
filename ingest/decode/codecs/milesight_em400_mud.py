"""Milesight EM400-MUD multifunctional ultrasonic distance sensor (waste bins, tanks).

Frame layout (fPort 85), from Milesight's EM400-MUD user guide, section "Uplink Data", and
the public EM400-MUD payload table (github.com/Milesight-IoT/SensorDecoders,
em-series/em400-mud/README.md):

| channel | type | value                                  | output key                   |
|---------|------|----------------------------------------|------------------------------|
| 0x01    | 0x75 | uint8, %                               | battery                      |
| 0x03    | 0x67 | int16 LE, 0.1 °C                       | temperature                  |
| 0x04    | 0x82 | uint16 LE, mm                          | distance                     |
| 0x05    | 0x00 | 0 normal, 1 tilt                       | position                     |
| 0x83    | 0x67 | temperature + alarm byte               | temperature, temperature_alarm |
| 0x84    | 0x82 | distance + alarm byte                  | distance, distance_alarm     |
| 0xFF    | ...  | device attributes                      |                              |
"""

from __future__ import annotations

from typing import Any

from ingest.decode.codecs._milesight import (
    FPORT,
    U16,
    encode_temperature,
    need,
    read_attribute,
    temperature,
)
from ingest.decode.errors import DecodeError

_POSITIONS = {0: "normal", 1: "tilt"}
_ALARMS = {0: "threshold_alarm_release", 1: "threshold_alarm"}
_POSITION_CODES = {v: k for k, v in _POSITIONS.items()}
_ALARM_CODES = {v: k for k, v in _ALARMS.items()}


def decode(f_port: int, data: bytes) -> dict[str, Any]:
    """Decode one uplink into the keys Milesight's own codec puts in `data`."""
    out: dict[str, Any] = {}
    i, n = 0, len(data)
    while i < n:
        need(data, i, 2, "channel header")
        channel, kind = data[i], data[i + 1]
        i += 2
        if channel == 0x01 and kind == 0x75:
            need(data, i, 1, "battery")
            out["battery"] = data[i]
            i += 1
        elif channel == 0x03 and kind == 0x67:
            need(data, i, 2, "temperature")
            out["temperature"] = temperature(data, i)
            i += 2
        elif channel == 0x04 and kind == 0x82:
            need(data, i, 2, "distance")
            out["distance"] = U16.unpack_from(data, i)[0]
            i += 2
        elif channel == 0x05 and kind == 0x00:
            need(data, i, 1, "position")
            out["position"] = _POSITIONS.get(data[i], "unknown")
            i += 1
        elif channel == 0x83 and kind == 0x67:
            need(data, i, 3, "temperature alarm")
            out["temperature"] = temperature(data, i)
            out["temperature_alarm"] = _ALARMS.get(data[i + 2], "unknown")
            i += 3
        elif channel == 0x84 and kind == 0x82:
            need(data, i, 3, "distance alarm")
            out["distance"] = U16.unpack_from(data, i)[0]
            out["distance_alarm"] = _ALARMS.get(data[i + 2], "unknown")
            i += 3
        elif channel == 0xFF:
            i = read_attribute(kind, data, i, out, hex_versions=True)
        else:
            raise DecodeError(f"unknown channel 0x{channel:02x} 0x{kind:02x} at byte {i - 2}")
    return out


def encode(values: dict[str, Any]) -> tuple[int, bytes]:
    """Build a frame for `values` shaped like decode's output (for the simulator).

    Supported keys: battery, temperature (+ temperature_alarm), distance (+ distance_alarm),
    position. With an alarm key the value is sent on the alarm channel, as the device does.
    """
    frame = bytearray()
    if "battery" in values:
        frame += bytes((0x01, 0x75, int(values["battery"])))
    if "temperature" in values and "temperature_alarm" not in values:
        frame += b"\x03\x67" + encode_temperature(values["temperature"])
    if "distance" in values and "distance_alarm" not in values:
        frame += b"\x04\x82" + U16.pack(int(values["distance"]))
    if "position" in values:
        frame += bytes((0x05, 0x00, _POSITION_CODES[values["position"]]))
    if "temperature_alarm" in values:
        frame += b"\x83\x67" + encode_temperature(values["temperature"])
        frame += bytes((_ALARM_CODES[values["temperature_alarm"]],))
    if "distance_alarm" in values:
        frame += b"\x84\x82" + U16.pack(int(values["distance"]))
        frame += bytes((_ALARM_CODES[values["distance_alarm"]],))
    return FPORT, bytes(frame)

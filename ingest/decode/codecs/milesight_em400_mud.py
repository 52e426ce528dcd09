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
    BATTERY,
    FPORT,
    TEMPERATURE,
    Channel,
    decode_channels,
    named,
    pack_temperature,
    pack_uint8,
    pack_uint16,
    temperature,
    uint16,
)

_POSITIONS = {0: "normal", 1: "tilt"}
_ALARMS = {0: "threshold_alarm_release", 1: "threshold_alarm"}
_POSITION_CODES = {v: k for k, v in _POSITIONS.items()}
_ALARM_CODES = {v: k for k, v in _ALARMS.items()}


def _temperature_alarm(data: bytes, i: int) -> dict[str, Any]:
    return {
        "temperature": temperature(data, i),
        "temperature_alarm": _ALARMS.get(data[i + 2], "unknown"),
    }


def _distance_alarm(data: bytes, i: int) -> dict[str, Any]:
    return {"distance": uint16(data, i), "distance_alarm": _ALARMS.get(data[i + 2], "unknown")}


_CHANNELS = {
    (0x01, 0x75): BATTERY,
    (0x03, 0x67): TEMPERATURE,
    (0x04, 0x82): Channel("distance", 2, uint16),
    (0x05, 0x00): Channel("position", 1, named(_POSITIONS)),
    (0x83, 0x67): Channel("temperature_alarm", 3, _temperature_alarm, merges=True),
    (0x84, 0x82): Channel("distance_alarm", 3, _distance_alarm, merges=True),
}


def decode(f_port: int, data: bytes) -> dict[str, Any]:
    """Decode one uplink into the keys Milesight's own codec puts in `data`."""
    return decode_channels(data, _CHANNELS, hex_versions=True)


def encode(values: dict[str, Any]) -> tuple[int, bytes]:
    """Build a frame for `values` shaped like decode's output (for the simulator).

    Supported keys: battery, temperature (+ temperature_alarm), distance (+ distance_alarm),
    position. With an alarm key the value is sent on the alarm channel, as the device does;
    that choice between two channels is why this frame is written here and not from the
    channel table.
    """
    frame = bytearray()
    if "battery" in values:
        frame += b"\x01\x75" + pack_uint8(values["battery"])
    if "temperature" in values and "temperature_alarm" not in values:
        frame += b"\x03\x67" + pack_temperature(values["temperature"])
    if "distance" in values and "distance_alarm" not in values:
        frame += b"\x04\x82" + pack_uint16(values["distance"])
    if "position" in values:
        frame += bytes((0x05, 0x00, _POSITION_CODES[values["position"]]))
    if "temperature_alarm" in values:
        frame += b"\x83\x67" + pack_temperature(values["temperature"])
        frame += bytes((_ALARM_CODES[values["temperature_alarm"]],))
    if "distance_alarm" in values:
        frame += b"\x84\x82" + pack_uint16(values["distance"])
        frame += bytes((_ALARM_CODES[values["distance_alarm"]],))
    return FPORT, bytes(frame)

"""Elsys sensors (ERS, ERS CO2, ERS Lite, ERS Sound, ERS VOC, EMS, EMS Desk, ELT...).

One decoder for the whole family: Elsys frames are a sequence of `type (1 byte) | value`
records, big-endian, shared by all Elsys sensors; each model only sends the types its
sensors have, so the model files differ by their metric mappings, not by their decoder.
A type repeated in a frame overwrites the earlier value, as Elsys' codec does. Types and
sizes from Elsys' "LoRaWAN payload" document:

| type | size | value                          | type | size | value                        |
|------|------|--------------------------------|------|------|------------------------------|
| 0x01 | 2    | temperature int16 / 10, °C     | 0x0D | 1    | external digital input       |
| 0x02 | 1    | relative humidity, %           | 0x0E | 2    | external distance, mm        |
| 0x03 | 3    | acceleration x, y, z (int8)    | 0x0F | 1    | acceleration motion count    |
| 0x04 | 2    | light, lux                     | 0x10 | 4    | IR internal/external temp    |
| 0x05 | 1    | motion (PIR) count             | 0x11 | 1    | occupancy                    |
| 0x06 | 2    | CO2, ppm                       | 0x12 | 1    | water leak                   |
| 0x07 | 2    | battery voltage (VDD), mV      | 0x14 | 4    | pressure uint32 / 1000, hPa  |
| 0x08 | 2    | analog input 1, mV             | 0x15 | 2    | sound peak, sound average    |
| 0x0A | 2    | pulse count (relative)         | 0x16 | 2    | pulse count 2 (relative)     |
| 0x0B | 4    | pulse count (absolute)         | 0x17 | 4    | pulse count 2 (absolute)     |
| 0x0C | 2    | external temperature int16/10  | 0x1C | 2    | TVOC, ppb                    |
"""

from __future__ import annotations

from typing import Any

from ingest.decode.errors import DecodeError


def _i16(data: bytes, i: int) -> int:
    return int.from_bytes(data[i : i + 2], "big", signed=True)


def _u(data: bytes, i: int, n: int) -> int:
    return int.from_bytes(data[i : i + n], "big")


def _i8(byte: int) -> int:
    return byte - 0x100 if byte > 0x7F else byte


_SIZES = {
    0x01: 2, 0x02: 1, 0x03: 3, 0x04: 2, 0x05: 1, 0x06: 2, 0x07: 2, 0x08: 2, 0x0A: 2,
    0x0B: 4, 0x0C: 2, 0x0D: 1, 0x0E: 2, 0x0F: 1, 0x10: 4, 0x11: 1, 0x12: 1, 0x14: 4,
    0x15: 2, 0x16: 2, 0x17: 4, 0x1C: 2,
}  # fmt: skip
# Types holding one unsigned big-endian number, by output key.
_UNSIGNED = {
    0x02: "humidity", 0x04: "light", 0x05: "motion", 0x06: "co2", 0x07: "vdd",
    0x08: "analog1", 0x0A: "pulse1", 0x0B: "pulseAbs", 0x0D: "digital", 0x0E: "distance",
    0x0F: "accMotion", 0x11: "occupancy", 0x12: "waterleak", 0x16: "pulse2",
    0x17: "pulseAbs2", 0x1C: "tvoc",
}  # fmt: skip


def decode(f_port: int, data: bytes) -> dict[str, Any]:
    """Decode one uplink into the keys Elsys' own codec puts in `data`."""
    out: dict[str, Any] = {}
    i, n = 0, len(data)
    while i < n:
        kind = data[i]
        size = _SIZES.get(kind)
        if size is None:
            raise DecodeError(f"unknown data type 0x{kind:02x} at byte {i}")
        if i + 1 + size > n:
            raise DecodeError(f"frame truncated in type 0x{kind:02x} at byte {i}")
        v = i + 1
        if kind in _UNSIGNED:
            out[_UNSIGNED[kind]] = _u(data, v, size)
        elif kind == 0x01:
            out["temperature"] = _i16(data, v) / 10
        elif kind == 0x0C:
            out["externalTemperature"] = _i16(data, v) / 10
        elif kind == 0x03:
            out["x"], out["y"], out["z"] = (_i8(b) for b in data[v : v + 3])
        elif kind == 0x10:
            out["irInternalTemperature"] = _i16(data, v) / 10
            out["irExternalTemperature"] = _i16(data, v + 2) / 10
        elif kind == 0x14:
            out["pressure"] = _u(data, v, 4) / 1000
        elif kind == 0x15:
            out["soundPeak"], out["soundAvg"] = data[v], data[v + 1]
        i = v + size
    return out

"""Milesight AM103 / AM103L indoor ambiance sensor: CO2, temperature, humidity, battery.

Frame layout (fPort 85), from Milesight's AM103 user guide, section "Device Payload", and
the public AM103 payload table (github.com/Milesight-IoT/SensorDecoders,
am-series/am103/README.md):

| channel | type | value                                               | output key    |
|---------|------|-----------------------------------------------------|---------------|
| 0x01    | 0x75 | uint8, %                                            | battery       |
| 0x03    | 0x67 | int16 LE, 0.1 °C                                    | temperature   |
| 0x04    | 0x68 | uint8, 0.5 %RH                                      | humidity      |
| 0x07    | 0x7D | uint16 LE, ppm                                      | co2           |
| 0x20    | 0xCE | uint32 LE epoch s, temperature, humidity, co2       | history[]     |
| 0xFF    | 0x18 | reserved byte + sensor enable bits (0 temp, 1 hum, 4 CO2) | sensor_enable |
| 0xFF    | ...  | device attributes (versions, serial number, class)  |               |
"""

from __future__ import annotations

from typing import Any

from ingest.decode.codecs._milesight import (
    FPORT,
    U16,
    U32,
    encode_temperature,
    need,
    read_attribute,
    temperature,
)
from ingest.decode.errors import DecodeError

_SENSOR_BITS = {"temperature": 0, "humidity": 1, "co2": 4}


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
        elif channel == 0x04 and kind == 0x68:
            need(data, i, 1, "humidity")
            out["humidity"] = data[i] / 2
            i += 1
        elif channel == 0x07 and kind == 0x7D:
            need(data, i, 2, "co2")
            out["co2"] = U16.unpack_from(data, i)[0]
            i += 2
        elif channel == 0x20 and kind == 0xCE:
            need(data, i, 9, "history")
            out.setdefault("history", []).append(
                {
                    "timestamp": U32.unpack_from(data, i)[0],
                    "temperature": temperature(data, i + 4),
                    "humidity": data[i + 6] / 2,
                    "co2": U16.unpack_from(data, i + 7)[0],
                }
            )
            i += 9
        elif channel == 0xFF and kind == 0x18:
            need(data, i, 2, "sensor status")
            bits = data[i + 1]
            out["sensor_enable"] = {
                name: "enable" if bits >> bit & 1 else "disable"
                for name, bit in _SENSOR_BITS.items()
            }
            i += 2
        elif channel == 0xFF:
            i = read_attribute(kind, data, i, out, hex_versions=True)
        else:
            raise DecodeError(f"unknown channel 0x{channel:02x} 0x{kind:02x} at byte {i - 2}")
    return out


def encode(values: dict[str, Any]) -> tuple[int, bytes]:
    """Build the periodic frame for `values` shaped like decode's output (for the simulator).

    Supported keys: battery, temperature, humidity, co2, history.
    """
    frame = bytearray()
    if "battery" in values:
        frame += bytes((0x01, 0x75, int(values["battery"])))
    if "temperature" in values:
        frame += b"\x03\x67" + encode_temperature(values["temperature"])
    if "humidity" in values:
        frame += bytes((0x04, 0x68, round(values["humidity"] * 2)))
    if "co2" in values:
        frame += b"\x07\x7d" + U16.pack(int(values["co2"]))
    for point in values.get("history", []):
        frame += b"\x20\xce" + U32.pack(int(point["timestamp"]))
        frame += encode_temperature(point["temperature"])
        frame += bytes((round(point["humidity"] * 2),)) + U16.pack(int(point["co2"]))
    return FPORT, bytes(frame)

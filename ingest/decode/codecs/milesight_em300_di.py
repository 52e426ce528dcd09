"""Milesight EM300-DI pulse counter (here: reading a water meter's pulse output).

Frame layout (fPort 85), from Milesight's EM300 series user guide ("Sensor Data") and the
public EM300-DI payload table (github.com/Milesight-IoT/SensorDecoders,
em-series/em300-di/README.md):

| channel | type | value                                              | output key        |
|---------|------|----------------------------------------------------|-------------------|
| 0x01    | 0x75 | uint8, %                                           | battery           |
| 0x03    | 0x67 | int16 LE, 0.1 °C                                   | temperature       |
| 0x04    | 0x68 | uint8, 0.5 %RH                                     | humidity          |
| 0x05    | 0x00 | digital input, 0 low / 1 high                      | gpio              |
| 0x05    | 0xC8 | uint32 LE pulse count                              | pulse             |
| 0x05    | 0xE1 | u16 LE /10, u16 LE /10, float32 LE | water_conv, pulse_conv, water |
| 0x85    | 0x00 | gpio + alarm byte                                  | gpio, gpio_alarm  |
| 0x85    | 0xE1 | as 0x05 0xE1 + alarm byte                          | ..., water_alarm  |
| 0x20    | 0xCE | uint32 LE epoch s, temperature, humidity, mode     | history[]         |
|         |      | (1 gpio, 2 pulse), gpio byte, uint32 LE pulse      |                   |
| 0xFF    | ...  | device attributes                                  |                   |
"""

from __future__ import annotations

from typing import Any

from ingest.decode.codecs._milesight import (
    F32,
    FPORT,
    U16,
    U32,
    encode_temperature,
    need,
    read_attribute,
    temperature,
)
from ingest.decode.errors import DecodeError

_GPIO = {0: "low", 1: "high"}
_GPIO_CODES = {v: k for k, v in _GPIO.items()}
_GPIO_ALARM = {0: "gpio alarm release", 1: "gpio alarm"}
_WATER_ALARM = {
    1: "water outage timeout alarm",
    2: "water outage timeout alarm release",
    3: "water flow timeout alarm",
    4: "water flow timeout alarm release",
}


def _water(data: bytes, i: int, out: dict[str, Any]) -> None:
    out["water_conv"] = U16.unpack_from(data, i)[0] / 10
    out["pulse_conv"] = U16.unpack_from(data, i + 2)[0] / 10
    out["water"] = F32.unpack_from(data, i + 4)[0]


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
        elif channel == 0x05 and kind == 0x00:
            need(data, i, 1, "gpio")
            out["gpio"] = _GPIO.get(data[i], "unknown")
            i += 1
        elif channel == 0x05 and kind == 0xC8:
            need(data, i, 4, "pulse counter")
            out["pulse"] = U32.unpack_from(data, i)[0]
            i += 4
        elif channel == 0x05 and kind == 0xE1:
            need(data, i, 8, "water")
            _water(data, i, out)
            i += 8
        elif channel == 0x85 and kind == 0x00:
            need(data, i, 2, "gpio alarm")
            out["gpio"] = _GPIO.get(data[i], "unknown")
            out["gpio_alarm"] = _GPIO_ALARM.get(data[i + 1], "unknown")
            i += 2
        elif channel == 0x85 and kind == 0xE1:
            need(data, i, 9, "water alarm")
            _water(data, i, out)
            out["water_alarm"] = _WATER_ALARM.get(data[i + 8], "unknown")
            i += 9
        elif channel == 0x20 and kind == 0xCE:
            need(data, i, 13, "history")
            point: dict[str, Any] = {
                "timestamp": U32.unpack_from(data, i)[0],
                "temperature": temperature(data, i + 4),
                "humidity": data[i + 6] / 2,
            }
            mode = data[i + 7]
            if mode == 1:
                point["gpio"] = _GPIO.get(data[i + 8], "unknown")
            elif mode == 2:
                point["pulse"] = U32.unpack_from(data, i + 9)[0]
            else:
                raise DecodeError(f"unknown history mode {mode} at byte {i + 7}")
            out.setdefault("history", []).append(point)
            i += 13
        elif channel == 0xFF:
            i = read_attribute(kind, data, i, out, hex_versions=False)
        else:
            raise DecodeError(f"unknown channel 0x{channel:02x} 0x{kind:02x} at byte {i - 2}")
    return out


def encode(values: dict[str, Any]) -> tuple[int, bytes]:
    """Build a frame for `values` shaped like decode's output (for the simulator).

    Supported keys: battery, temperature, humidity, gpio, pulse, history (items with
    timestamp, temperature, humidity and either pulse or gpio).
    """
    frame = bytearray()
    if "battery" in values:
        frame += bytes((0x01, 0x75, int(values["battery"])))
    if "temperature" in values:
        frame += b"\x03\x67" + encode_temperature(values["temperature"])
    if "humidity" in values:
        frame += bytes((0x04, 0x68, round(values["humidity"] * 2)))
    if "gpio" in values:
        frame += bytes((0x05, 0x00, _GPIO_CODES[values["gpio"]]))
    if "pulse" in values:
        frame += b"\x05\xc8" + U32.pack(int(values["pulse"]))
    for point in values.get("history", []):
        frame += b"\x20\xce" + U32.pack(int(point["timestamp"]))
        frame += encode_temperature(point["temperature"])
        frame += bytes((round(point["humidity"] * 2),))
        if "pulse" in point:
            frame += b"\x02\x00" + U32.pack(int(point["pulse"]))
        else:
            frame += bytes((0x01, _GPIO_CODES[point["gpio"]])) + b"\x00\x00\x00\x00"
    return FPORT, bytes(frame)

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
    BATTERY,
    FPORT,
    HUMIDITY,
    TEMPERATURE,
    Channel,
    decode_channels,
    encode_channels,
    float32,
    half_percent,
    named,
    pack_half_percent,
    pack_named,
    pack_temperature,
    pack_uint32,
    temperature,
    uint16_tenths,
    uint32,
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


def _water(data: bytes, i: int) -> dict[str, Any]:
    return {
        "water_conv": uint16_tenths(data, i),
        "pulse_conv": uint16_tenths(data, i + 2),
        "water": float32(data, i + 4),
    }


def _gpio_alarm(data: bytes, i: int) -> dict[str, Any]:
    return {
        "gpio": _GPIO.get(data[i], "unknown"),
        "gpio_alarm": _GPIO_ALARM.get(data[i + 1], "unknown"),
    }


def _water_alarm(data: bytes, i: int) -> dict[str, Any]:
    return {**_water(data, i), "water_alarm": _WATER_ALARM.get(data[i + 8], "unknown")}


def _history(data: bytes, i: int) -> dict[str, Any]:
    point: dict[str, Any] = {
        "timestamp": uint32(data, i),
        "temperature": temperature(data, i + 4),
        "humidity": half_percent(data, i + 6),
    }
    mode = data[i + 7]
    if mode == 1:
        point["gpio"] = _GPIO.get(data[i + 8], "unknown")
    elif mode == 2:
        point["pulse"] = uint32(data, i + 9)
    else:
        raise DecodeError(f"unknown history mode {mode} at byte {i + 7}")
    return point


def _write_history(point: dict[str, Any]) -> bytes:
    frame = (
        pack_uint32(point["timestamp"])
        + pack_temperature(point["temperature"])
        + pack_half_percent(point["humidity"])
    )
    if "pulse" in point:
        return frame + b"\x02\x00" + pack_uint32(point["pulse"])
    return frame + bytes((0x01, _GPIO_CODES[point["gpio"]])) + b"\x00\x00\x00\x00"


# In the order `encode` writes them.
_CHANNELS = {
    (0x01, 0x75): BATTERY,
    (0x03, 0x67): TEMPERATURE,
    (0x04, 0x68): HUMIDITY,
    (0x05, 0x00): Channel("gpio", 1, named(_GPIO), pack_named(_GPIO)),
    (0x05, 0xC8): Channel("pulse", 4, uint32, pack_uint32),
    (0x05, 0xE1): Channel("water", 8, _water, merges=True),
    (0x85, 0x00): Channel("gpio_alarm", 2, _gpio_alarm, merges=True),
    (0x85, 0xE1): Channel("water_alarm", 9, _water_alarm, merges=True),
    (0x20, 0xCE): Channel("history", 13, _history, _write_history, repeats=True),
}


def decode(f_port: int, data: bytes) -> dict[str, Any]:
    """Decode one uplink into the keys Milesight's own codec puts in `data`."""
    return decode_channels(data, _CHANNELS, hex_versions=False)


def encode(values: dict[str, Any]) -> tuple[int, bytes]:
    """Build a frame for `values` shaped like decode's output (for the simulator).

    Supported keys: battery, temperature, humidity, gpio, pulse, history (items with
    timestamp, temperature, humidity and either pulse or gpio).
    """
    return FPORT, encode_channels(values, _CHANNELS)

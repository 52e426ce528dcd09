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
    BATTERY,
    FPORT,
    HUMIDITY,
    TEMPERATURE,
    Channel,
    decode_channels,
    encode_channels,
    half_percent,
    pack_half_percent,
    pack_temperature,
    pack_uint16,
    pack_uint32,
    temperature,
    uint16,
    uint32,
)

_SENSOR_BITS = {"temperature": 0, "humidity": 1, "co2": 4}


def _history(data: bytes, i: int) -> dict[str, Any]:
    return {
        "timestamp": uint32(data, i),
        "temperature": temperature(data, i + 4),
        "humidity": half_percent(data, i + 6),
        "co2": uint16(data, i + 7),
    }


def _write_history(point: dict[str, Any]) -> bytes:
    return (
        pack_uint32(point["timestamp"])
        + pack_temperature(point["temperature"])
        + pack_half_percent(point["humidity"])
        + pack_uint16(point["co2"])
    )


def _sensor_enable(data: bytes, i: int) -> dict[str, str]:
    bits = data[i + 1]
    return {name: "enable" if bits >> bit & 1 else "disable" for name, bit in _SENSOR_BITS.items()}


# In the order `encode` writes them.
_CHANNELS = {
    (0x01, 0x75): BATTERY,
    (0x03, 0x67): TEMPERATURE,
    (0x04, 0x68): HUMIDITY,
    (0x07, 0x7D): Channel("co2", 2, uint16, pack_uint16),
    (0x20, 0xCE): Channel("history", 9, _history, _write_history, repeats=True),
    (0xFF, 0x18): Channel("sensor_enable", 2, _sensor_enable),
}


def decode(f_port: int, data: bytes) -> dict[str, Any]:
    """Decode one uplink into the keys Milesight's own codec puts in `data`."""
    return decode_channels(data, _CHANNELS, hex_versions=True)


def encode(values: dict[str, Any]) -> tuple[int, bytes]:
    """Build the periodic frame for `values` shaped like decode's output (for the simulator).

    Supported keys: battery, temperature, humidity, co2, history.
    """
    return FPORT, encode_channels(values, _CHANNELS)

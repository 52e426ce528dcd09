"""Milesight sensors sharing the channel/type/value frame: one decoder, one table per model.

The frame walk is `_milesight.decode_channels`; each model (the codec's `variant`) only
declares its measurement records. Tables from Milesight's public payload tables and
decoders (github.com/Milesight-IoT/SensorDecoders, `<series>/<model>/README.md` and
`<model>-decoder.js`), fPort 85, little-endian:

| model     | channel, type: value (output key)                                                |
|-----------|----------------------------------------------------------------------------------|
| em300-th  | 01 75 battery %, 03 67 temperature int16/10 °C, 04 68 humidity uint8/2 %,        |
|           | 20 CE history: timestamp u32, temperature, humidity, reserved byte               |
| em310-udl | 01 75 battery, 03 82 distance u16 mm, 04 00 position (0 normal, 1 tilt)          |
| em400-udl | 01 75 battery, 03 67 temperature, 04 82 distance mm, 05 00 position,             |
|           | 83 67 temperature + alarm, 84 82 distance + alarm                                 |
| em500-co2 | 01 75 battery, 03 67 temperature, 04 68 humidity, 05 7D co2 u16 ppm,             |
|           | 06 73 pressure u16/10 hPa, 20 CE history: timestamp, co2, pressure, temperature, |
|           | humidity                                                                         |
| am307     | 01 75 battery, 03 67 temperature, 04 68 humidity, 05 00 pir (idle/trigger),      |
|           | 06 CB light_level, 07 7D co2, 08 7D tvoc u16/100 (IAQ), 08 E6 tvoc u16 (µg/m³),   |
|           | 09 73 pressure u16/10 hPa, 0E 01 buzzer_status, 20 CE / 21 CE history            |
| ws523     | 03 74 voltage u16/10 V, 04 80 active_power u32 W, 05 81 power_factor %,          |
|           | 06 83 power_consumption u32 Wh, 07 C9 current u16 mA, 08 70 socket_status        |
"""

from __future__ import annotations

from typing import Any

from ingest.decode.codecs._milesight import (
    BATTERY,
    HUMIDITY,
    TEMPERATURE,
    Channel,
    ChannelTable,
    decode_channels,
    half_percent,
    named,
    temperature,
    uint8,
    uint16,
    uint16_tenths,
    uint32,
)

_POSITION = named({0: "normal", 1: "tilt"})
_ALARM = named({0: "threshold_alarm_release", 1: "threshold_alarm"})
_PIR = named({0: "idle", 1: "trigger"})
_ON_OFF = named({0: "off", 1: "on"})


def _em300_th_history(data: bytes, i: int) -> dict[str, Any]:
    return {
        "timestamp": uint32(data, i),
        "temperature": temperature(data, i + 4),
        "humidity": half_percent(data, i + 6),
    }


def _em500_co2_history(data: bytes, i: int) -> dict[str, Any]:
    return {
        "timestamp": uint32(data, i),
        "co2": uint16(data, i + 4),
        "pressure": uint16_tenths(data, i + 6),
        "temperature": temperature(data, i + 8),
        "humidity": half_percent(data, i + 10),
    }


def _am307_history(tvoc_scale: float) -> Any:
    def read(data: bytes, i: int) -> dict[str, Any]:
        tvoc = uint16(data, i + 12)
        return {
            "timestamp": uint32(data, i),
            "temperature": temperature(data, i + 4),
            "humidity": uint16(data, i + 6) / 2,
            "pir": _PIR(data, i + 8),
            "light_level": data[i + 9],
            "co2": uint16(data, i + 10),
            "tvoc": tvoc / tvoc_scale if tvoc_scale != 1 else tvoc,
            "pressure": uint16_tenths(data, i + 14),
        }

    return read


def _with_alarm(key: str, read: Any) -> Any:
    def merged(data: bytes, i: int) -> dict[str, Any]:
        return {key: read(data, i), f"{key}_alarm": _ALARM(data, i + 2)}

    return merged


VARIANTS: dict[str, ChannelTable] = {
    "em300-th": {
        (0x01, 0x75): BATTERY,
        (0x03, 0x67): TEMPERATURE,
        (0x04, 0x68): HUMIDITY,
        (0x20, 0xCE): Channel("history", 8, _em300_th_history, repeats=True),
    },
    "em310-udl": {
        (0x01, 0x75): BATTERY,
        (0x03, 0x82): Channel("distance", 2, uint16),
        (0x04, 0x00): Channel("position", 1, _POSITION),
    },
    "em400-udl": {
        (0x01, 0x75): BATTERY,
        (0x03, 0x67): TEMPERATURE,
        (0x04, 0x82): Channel("distance", 2, uint16),
        (0x05, 0x00): Channel("position", 1, _POSITION),
        (0x83, 0x67): Channel("temperature", 3, _with_alarm("temperature", temperature),
                              merges=True),
        (0x84, 0x82): Channel("distance", 3, _with_alarm("distance", uint16), merges=True),
    },
    "em500-co2": {
        (0x01, 0x75): BATTERY,
        (0x03, 0x67): TEMPERATURE,
        (0x04, 0x68): HUMIDITY,
        (0x05, 0x7D): Channel("co2", 2, uint16),
        (0x06, 0x73): Channel("pressure", 2, uint16_tenths),
        (0x20, 0xCE): Channel("history", 11, _em500_co2_history, repeats=True),
    },
    "am307": {
        (0x01, 0x75): BATTERY,
        (0x03, 0x67): TEMPERATURE,
        (0x04, 0x68): HUMIDITY,
        (0x05, 0x00): Channel("pir", 1, _PIR),
        (0x06, 0xCB): Channel("light_level", 1, uint8),
        (0x07, 0x7D): Channel("co2", 2, uint16),
        (0x08, 0x7D): Channel("tvoc", 2, lambda data, i: uint16(data, i) / 100),
        (0x08, 0xE6): Channel("tvoc", 2, uint16),
        (0x09, 0x73): Channel("pressure", 2, uint16_tenths),
        (0x0E, 0x01): Channel("buzzer_status", 1, _ON_OFF),
        (0x20, 0xCE): Channel("history", 16, _am307_history(100), repeats=True),
        (0x21, 0xCE): Channel("history", 16, _am307_history(1), repeats=True),
    },
    "ws523": {
        (0x03, 0x74): Channel("voltage", 2, uint16_tenths),
        (0x04, 0x80): Channel("active_power", 4, uint32),
        (0x05, 0x81): Channel("power_factor", 1, uint8),
        (0x06, 0x83): Channel("power_consumption", 4, uint32),
        (0x07, 0xC9): Channel("current", 2, uint16),
        (0x08, 0x70): Channel("socket_status", 1, _ON_OFF),
    },
}


def decode(f_port: int, data: bytes, variant: str) -> dict[str, Any]:
    """Decode one uplink of model `variant` into the keys Milesight's own codec puts in `data`."""
    return decode_channels(data, VARIANTS[variant], hex_versions=True)

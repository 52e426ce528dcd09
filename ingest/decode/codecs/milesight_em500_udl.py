"""Milesight EM500-UDL ultrasonic distance/level sensor (tanks, containers, wells).

Frame layout (fPort 85), from Milesight's EM500-UDL payload structure document and the
public EM500-UDL payload table (github.com/Milesight-IoT/SensorDecoders,
em-series/em500-udl/README.md):

| channel | type | value                                                    | output key |
|---------|------|----------------------------------------------------------|------------|
| 0x01    | 0x75 | uint8, %                                                 | battery    |
| 0x03    | 0x82 | uint16 LE, mm                                            | distance   |
| 0x83    | 0xE9 | distance, uint16 LE mutation, alarm byte                 | distance_*        |
| 0x20    | 0xCE | uint32 LE epoch s, uint16 LE distance mm                 | history[]  |
| 0xFF    | ...  | device attributes                                        |            |
"""

from __future__ import annotations

from typing import Any

from ingest.decode.codecs._milesight import BATTERY, Channel, decode_channels, uint16, uint32

_ALARMS = {0: "threshold alarm release", 1: "threshold alarm", 2: "mutation alarm"}


def _distance_alarm(data: bytes, i: int) -> dict[str, Any]:
    return {
        "distance": uint16(data, i),
        "distance_mutation": uint16(data, i + 2),
        "distance_alarm": _ALARMS.get(data[i + 4], "unknown"),
    }


def _history(data: bytes, i: int) -> dict[str, Any]:
    return {"timestamp": uint32(data, i), "distance": uint16(data, i + 4)}


_CHANNELS = {
    (0x01, 0x75): BATTERY,
    (0x03, 0x82): Channel("distance", 2, uint16),
    (0x83, 0xE9): Channel("distance_alarm", 5, _distance_alarm, merges=True),
    (0x20, 0xCE): Channel("history", 6, _history, repeats=True),
}


def decode(f_port: int, data: bytes) -> dict[str, Any]:
    """Decode one uplink into the keys Milesight's own codec puts in `data`."""
    return decode_channels(data, _CHANNELS, hex_versions=True)

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

from ingest.decode.codecs._milesight import U16, U32, need, read_attribute
from ingest.decode.errors import DecodeError

_ALARMS = {0: "threshold alarm release", 1: "threshold alarm", 2: "mutation alarm"}


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
        elif channel == 0x03 and kind == 0x82:
            need(data, i, 2, "distance")
            out["distance"] = U16.unpack_from(data, i)[0]
            i += 2
        elif channel == 0x83 and kind == 0xE9:
            need(data, i, 5, "distance alarm")
            out["distance"] = U16.unpack_from(data, i)[0]
            out["distance_mutation"] = U16.unpack_from(data, i + 2)[0]
            out["distance_alarm"] = _ALARMS.get(data[i + 4], "unknown")
            i += 5
        elif channel == 0x20 and kind == 0xCE:
            need(data, i, 6, "history")
            out.setdefault("history", []).append(
                {
                    "timestamp": U32.unpack_from(data, i)[0],
                    "distance": U16.unpack_from(data, i + 4)[0],
                }
            )
            i += 6
        elif channel == 0xFF:
            i = read_attribute(kind, data, i, out, hex_versions=True)
        else:
            raise DecodeError(f"unknown channel 0x{channel:02x} 0x{kind:02x} at byte {i - 2}")
    return out

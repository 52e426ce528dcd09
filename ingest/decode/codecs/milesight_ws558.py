"""Milesight WS558 LoRaWAN smart light controller: 8 switched lighting circuits, metering.

Frame layout (fPort 85), from Milesight's WS558 user guide and the public WS558 payload
table (github.com/Milesight-IoT/SensorDecoders, ws-series/ws558/README.md):

| channel | type | value                                                    | output key        |
|---------|------|----------------------------------------------------------|-------------------|
| 0x03    | 0x74 | uint16 LE / 10, V                                        | voltage           |
| 0x04    | 0x80 | uint32 LE, W                                             | active_power      |
| 0x05    | 0x81 | uint8, %                                                 | power_factor      |
| 0x06    | 0x83 | uint32 LE, Wh (cumulative)                               | power_consumption |
| 0x07    | 0xC9 | uint16 LE, mA                                            | total_current     |
| 0x08    | 0x31 | change mask byte, then state byte: bit n = switch n+1 on | switch_1..switch_8 |
| 0xFF    | ...  | device attributes                                        |                   |
"""

from __future__ import annotations

from typing import Any

from ingest.decode.codecs._milesight import U16, U32, need, read_attribute
from ingest.decode.errors import DecodeError


def decode(f_port: int, data: bytes) -> dict[str, Any]:
    """Decode one uplink into the keys Milesight's own codec puts in `data`."""
    out: dict[str, Any] = {}
    i, n = 0, len(data)
    while i < n:
        need(data, i, 2, "channel header")
        channel, kind = data[i], data[i + 1]
        i += 2
        if channel == 0x03 and kind == 0x74:
            need(data, i, 2, "voltage")
            out["voltage"] = U16.unpack_from(data, i)[0] / 10
            i += 2
        elif channel == 0x04 and kind == 0x80:
            need(data, i, 4, "active power")
            out["active_power"] = U32.unpack_from(data, i)[0]
            i += 4
        elif channel == 0x05 and kind == 0x81:
            need(data, i, 1, "power factor")
            out["power_factor"] = data[i]
            i += 1
        elif channel == 0x06 and kind == 0x83:
            need(data, i, 4, "power consumption")
            out["power_consumption"] = U32.unpack_from(data, i)[0]
            i += 4
        elif channel == 0x07 and kind == 0xC9:
            need(data, i, 2, "current")
            out["total_current"] = U16.unpack_from(data, i)[0]
            i += 2
        elif channel == 0x08 and kind == 0x31:
            need(data, i, 2, "switches")
            states = data[i + 1]
            for bit in range(8):
                out[f"switch_{bit + 1}"] = "on" if states >> bit & 1 else "off"
            i += 2
        elif channel == 0xFF:
            i = read_attribute(kind, data, i, out, hex_versions=True)
        else:
            raise DecodeError(f"unknown channel 0x{channel:02x} 0x{kind:02x} at byte {i - 2}")
    return out

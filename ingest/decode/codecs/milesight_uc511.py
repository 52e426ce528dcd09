"""Milesight UC511 solenoid valve controller with pulse inputs (water meter on each valve).

Frame layout (fPort 85), from Milesight's UC511 user guide and the public UC511 payload
table (github.com/Milesight-IoT/SensorDecoders, uc-series/uc511/README.md):

| channel | type | value                                   | output key            |
|---------|------|-----------------------------------------|-----------------------|
| 0x01    | 0x75 | uint8, %                                | battery               |
| 0x03    | 0x01 | valve 1, 0 close / 1 open               | valve_1               |
| 0x04    | 0xC8 | uint32 LE pulses counted on valve 1     | valve_1_pulse         |
| 0x05    | 0x01 | valve 2                                 | valve_2               |
| 0x06    | 0xC8 | uint32 LE pulses counted on valve 2     | valve_2_pulse         |
| 0x07    | 0x01 | GPIO 1, 0 off / 1 on                    | gpio_1                |
| 0x08    | 0x01 | GPIO 2                                  | gpio_2                |
| 0x09    | 0x7B | uint16 LE pipe pressure, kPa            | pressure              |
| 0x20    | 0xCE | uint32 LE epoch s, status byte (bit 0 open,  | history[]             |
|         |      | bit 4 valve 2), uint32 LE pulses        |                       |
| 0xFF    | ...  | device attributes                       |                       |

For stored records this decoder always reports the valve state and its pulse count; the
vendor's codec switches between pulse and GPIO fields on a mode bit whose published
example contradicts its table, so that field is not interpreted here.
"""

from __future__ import annotations

from typing import Any

from ingest.decode.codecs._milesight import U16, U32, need, read_attribute
from ingest.decode.errors import DecodeError

_VALVE = {0: "close", 1: "open"}
_GPIO = {0: "off", 1: "on"}
# (channel, type) -> (output key, size, reader)
_SIMPLE = {
    (0x03, 0x01): ("valve_1", 1, lambda d, i: _VALVE.get(d[i], "unknown")),
    (0x04, 0xC8): ("valve_1_pulse", 4, lambda d, i: U32.unpack_from(d, i)[0]),
    (0x05, 0x01): ("valve_2", 1, lambda d, i: _VALVE.get(d[i], "unknown")),
    (0x06, 0xC8): ("valve_2_pulse", 4, lambda d, i: U32.unpack_from(d, i)[0]),
    (0x07, 0x01): ("gpio_1", 1, lambda d, i: _GPIO.get(d[i], "unknown")),
    (0x08, 0x01): ("gpio_2", 1, lambda d, i: _GPIO.get(d[i], "unknown")),
    (0x09, 0x7B): ("pressure", 2, lambda d, i: U16.unpack_from(d, i)[0]),
    (0x01, 0x75): ("battery", 1, lambda d, i: d[i]),
}


def decode(f_port: int, data: bytes) -> dict[str, Any]:
    """Decode one uplink into the keys Milesight's own codec puts in `data`."""
    out: dict[str, Any] = {}
    i, n = 0, len(data)
    while i < n:
        need(data, i, 2, "channel header")
        channel, kind = data[i], data[i + 1]
        i += 2
        simple = _SIMPLE.get((channel, kind))
        if simple is not None:
            key, size, read = simple
            need(data, i, size, key)
            out[key] = read(data, i)
            i += size
        elif channel == 0x20 and kind == 0xCE:
            need(data, i, 9, "history")
            flags = data[i + 4]
            valve = 2 if flags >> 4 & 1 else 1
            out.setdefault("history", []).append(
                {
                    "timestamp": U32.unpack_from(data, i)[0],
                    f"valve_{valve}": _VALVE[flags & 1],
                    f"valve_{valve}_pulse": U32.unpack_from(data, i + 5)[0],
                }
            )
            i += 9
        elif channel == 0xFF:
            i = read_attribute(kind, data, i, out, hex_versions=True)
        else:
            raise DecodeError(f"unknown channel 0x{channel:02x} 0x{kind:02x} at byte {i - 2}")
    return out

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

from ingest.decode.codecs._milesight import BATTERY, Channel, decode_channels, named, uint16, uint32

_VALVE = {0: "close", 1: "open"}
_GPIO = {0: "off", 1: "on"}


def _history(data: bytes, i: int) -> dict[str, Any]:
    flags = data[i + 4]
    valve = 2 if flags >> 4 & 1 else 1
    return {
        "timestamp": uint32(data, i),
        f"valve_{valve}": _VALVE[flags & 1],
        f"valve_{valve}_pulse": uint32(data, i + 5),
    }


_CHANNELS = {
    (0x01, 0x75): BATTERY,
    (0x03, 0x01): Channel("valve_1", 1, named(_VALVE)),
    (0x04, 0xC8): Channel("valve_1_pulse", 4, uint32),
    (0x05, 0x01): Channel("valve_2", 1, named(_VALVE)),
    (0x06, 0xC8): Channel("valve_2_pulse", 4, uint32),
    (0x07, 0x01): Channel("gpio_1", 1, named(_GPIO)),
    (0x08, 0x01): Channel("gpio_2", 1, named(_GPIO)),
    (0x09, 0x7B): Channel("pressure", 2, uint16),
    (0x20, 0xCE): Channel("history", 9, _history, repeats=True),
}


def decode(f_port: int, data: bytes) -> dict[str, Any]:
    """Decode one uplink into the keys Milesight's own codec puts in `data`."""
    return decode_channels(data, _CHANNELS, hex_versions=True)

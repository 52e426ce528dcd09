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

from ingest.decode.codecs._milesight import (
    FPORT,
    Channel,
    decode_channels,
    pack_uint8,
    pack_uint16,
    pack_uint32,
    uint8,
    uint16,
    uint16_tenths,
    uint32,
)

# The eight switch values of every possible state byte, built once rather than per uplink
# (it more than halves this model's decode time). Bit n is switch n + 1.
_SWITCH_STATES = tuple(
    {f"switch_{bit + 1}": "on" if states >> bit & 1 else "off" for bit in range(8)}
    for states in range(256)
)


def _switches(data: bytes, i: int) -> dict[str, str]:
    """The state byte comes after the change mask."""
    return _SWITCH_STATES[data[i + 1]]


_CHANNELS = {
    (0x03, 0x74): Channel("voltage", 2, uint16_tenths),
    (0x04, 0x80): Channel("active_power", 4, uint32),
    (0x05, 0x81): Channel("power_factor", 1, uint8),
    (0x06, 0x83): Channel("power_consumption", 4, uint32),
    (0x07, 0xC9): Channel("total_current", 2, uint16),
    (0x08, 0x31): Channel("switches", 2, _switches, merges=True),
}


def decode(f_port: int, data: bytes) -> dict[str, Any]:
    """Decode one uplink into the keys Milesight's own codec puts in `data`."""
    return decode_channels(data, _CHANNELS, hex_versions=True)


# Records in the order of the vendor's example frame, which `encode` reproduces.
_ENCODE_ORDER = (
    ((0x05, 0x81), "power_factor", pack_uint8),
    ((0x07, 0xC9), "total_current", pack_uint16),
    ((0x03, 0x74), "voltage", lambda v: pack_uint16(round(v * 10))),
    ((0x06, 0x83), "power_consumption", pack_uint32),
    ((0x04, 0x80), "active_power", pack_uint32),
)


def encode(values: dict[str, Any]) -> tuple[int, bytes]:
    """Build a periodic report for `values` shaped like decode's output (for the simulator).

    Supported keys: switch_1..switch_8 ("on"/"off"; the state byte follows a change mask
    of 0, as in the vendor's example), power_factor, total_current, voltage,
    power_consumption, active_power.
    """
    frame = bytearray()
    switches = [f"switch_{bit + 1}" for bit in range(8)]
    if any(key in values for key in switches):
        state = sum(1 << bit for bit, key in enumerate(switches) if values.get(key) == "on")
        frame += bytes((0x08, 0x31, 0x00, state))
    for (channel, kind), key, pack in _ENCODE_ORDER:
        if key in values:
            frame += bytes((channel, kind)) + pack(values[key])
    return FPORT, bytes(frame)

"""Shared reading of Milesight's channel/type/value frames (not a device model itself).

Milesight sensors send a sequence of `channel (1 byte) | type (1 byte) | value` records,
little-endian, on fPort 85. The 0xFF channel carries device attributes (versions, serial
number, class) in the same way for every model; the per-model modules handle the
measurement channels. Layout from Milesight's user guides and its public payload tables
(github.com/Milesight-IoT/SensorDecoders, README of each model).
"""

from __future__ import annotations

import struct

from ingest.decode.errors import DecodeError

FPORT = 85

_CLASSES = {0: "Class A", 1: "Class B", 2: "Class C", 3: "Class CtoB"}
# Length of the value of each attribute record (channel 0xFF), by type.
ATTRIBUTE_LENGTHS = {0x01: 1, 0x09: 2, 0x0A: 2, 0xFF: 2, 0x16: 8, 0x0F: 1, 0xFE: 1, 0x0B: 1}

U16 = struct.Struct("<H")
I16 = struct.Struct("<h")
U32 = struct.Struct("<I")
F32 = struct.Struct("<f")


def need(data: bytes, start: int, length: int, what: str) -> None:
    """Raise DecodeError when the frame ends before `length` bytes from `start`."""
    if start + length > len(data):
        raise DecodeError(f"frame truncated in {what} at byte {start}")


def read_attribute(kind: int, data: bytes, i: int, out: dict, hex_versions: bool) -> int:
    """Decode one 0xFF attribute record whose value starts at `i`; return the next offset.

    `hex_versions`: some models print version bytes in hexadecimal, others in decimal.
    """
    length = ATTRIBUTE_LENGTHS.get(kind)
    if length is None:
        raise DecodeError(f"unknown attribute 0xff 0x{kind:02x} at byte {i - 2}")
    need(data, i, length, f"attribute 0x{kind:02x}")
    if kind == 0x01:
        out["ipso_version"] = f"v{data[i] >> 4}.{data[i] & 0x0F}"
    elif kind == 0x09:
        major = f"{data[i]:x}" if hex_versions else str(data[i])
        out["hardware_version"] = f"v{major}.{data[i + 1] >> 4}"
    elif kind == 0x0A:
        if hex_versions:
            out["firmware_version"] = f"v{data[i]:x}.{data[i + 1]:x}"
        else:
            out["firmware_version"] = f"v{data[i]}.{data[i + 1]}"
    elif kind == 0xFF:
        out["tsl_version"] = f"v{data[i]}.{data[i + 1]}"
    elif kind == 0x16:
        out["sn"] = data[i : i + 8].hex()
    elif kind == 0x0F:
        out["lorawan_class"] = _CLASSES.get(data[i], "unknown")
    elif kind == 0xFE:
        out["reset_event"] = "reset"
    elif kind == 0x0B:
        out["device_status"] = "on"
    return i + length


def temperature(data: bytes, i: int) -> float:
    """Signed 16-bit tenths of a degree Celsius."""
    return I16.unpack_from(data, i)[0] / 10


def encode_temperature(value: float) -> bytes:
    return I16.pack(round(value * 10))

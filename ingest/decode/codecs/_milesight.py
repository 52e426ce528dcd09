"""Shared reading of Milesight's channel/type/value frames (not a device model itself).

Milesight sensors send a sequence of `channel (1 byte) | type (1 byte) | value` records,
little-endian, on fPort 85. The 0xFF channel carries device attributes (versions, serial
number, class) in the same way for every model. Each model module declares its measurement
records as a table `(channel, type) -> Channel` and hands it to `decode_channels`, the one
loop that walks a frame; `encode_channels` walks the same table backwards for the
simulator. Layout from Milesight's user guides and its public payload tables
(github.com/Milesight-IoT/SensorDecoders, README of each model).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ingest.decode.errors import DecodeError

FPORT = 85

_CLASSES = {0: "Class A", 1: "Class B", 2: "Class C", 3: "Class CtoB"}
# Length of the value of each attribute record (channel 0xFF), by type.
ATTRIBUTE_LENGTHS = {0x01: 1, 0x09: 2, 0x0A: 2, 0xFF: 2, 0x16: 8, 0x0F: 1, 0xFE: 1, 0x0B: 1}

U16 = struct.Struct("<H")
I16 = struct.Struct("<h")
U32 = struct.Struct("<I")
F32 = struct.Struct("<f")

# A reader gets the frame and the offset of a record's value, which is known to hold the
# record's size in bytes; a writer gives the value's bytes back.
Reader = Callable[[bytes, int], Any]
Writer = Callable[[Any], bytes]


@dataclass(frozen=True, slots=True)
class Channel:
    """How to read (and optionally write) one kind of measurement record.

    `name` is the output key and names the record in DecodeError messages. `repeats`: every
    record appends its value to a list under `name` (stored history points). `merges`: the
    reader returns a dict of several output keys (a reading with its alarm byte, a bit
    mask), copied into the output, so that dict may be a shared, precomputed one; `name`
    then only names the record. `write`, when set, lets `encode_channels` build the record
    from `values[name]` (from each item of it for a repeating record).
    """

    name: str
    size: int
    read: Reader
    write: Writer | None = None
    repeats: bool = False
    merges: bool = False


ChannelTable = Mapping[tuple[int, int], Channel]


def need(data: bytes, start: int, length: int, what: str) -> None:
    """Raise DecodeError when the frame ends before `length` bytes from `start`."""
    if start + length > len(data):
        raise DecodeError(f"frame truncated in {what} at byte {start}")


def decode_channels(data: bytes, channels: ChannelTable, *, hex_versions: bool) -> dict[str, Any]:
    """Decode a whole frame with a model's table of measurement records.

    A (channel, type) pair found in `channels` wins over the 0xFF attributes, so a model can
    declare its own 0xFF records. `hex_versions` is passed on to `read_attribute`.
    """
    out: dict[str, Any] = {}
    i, n = 0, len(data)
    while i < n:
        # `need` is written out here: this loop runs for every record of every uplink.
        if i + 2 > n:
            raise DecodeError(f"frame truncated in channel header at byte {i}")
        channel, kind = data[i], data[i + 1]
        i += 2
        record = channels.get((channel, kind))
        if record is not None:
            if i + record.size > n:
                raise DecodeError(f"frame truncated in {record.name} at byte {i}")
            value = record.read(data, i)
            if record.merges:
                out.update(value)
            elif record.repeats:
                out.setdefault(record.name, []).append(value)
            else:
                out[record.name] = value
            i += record.size
        elif channel == 0xFF:
            i = read_attribute(kind, data, i, out, hex_versions)
        else:
            raise DecodeError(f"unknown channel 0x{channel:02x} 0x{kind:02x} at byte {i - 2}")
    return out


def encode_channels(values: Mapping[str, Any], channels: ChannelTable) -> bytes:
    """The frame carrying `values` (shaped like decode's output), records in table order.

    Only records with a writer take part; a repeating record is written once per item.
    """
    frame = bytearray()
    for (channel, kind), record in channels.items():
        if record.write is None or record.name not in values:
            continue
        items = values[record.name] if record.repeats else (values[record.name],)
        for item in items:
            frame += bytes((channel, kind)) + record.write(item)
    return bytes(frame)


def read_attribute(kind: int, data: bytes, i: int, out: dict[str, Any], hex_versions: bool) -> int:
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


# Readers shared by the models: `(data, offset) -> value`.


def uint8(data: bytes, i: int) -> int:
    return data[i]


def uint16(data: bytes, i: int) -> int:
    return int(U16.unpack_from(data, i)[0])


def uint16_tenths(data: bytes, i: int) -> float:
    return float(U16.unpack_from(data, i)[0] / 10)


def uint32(data: bytes, i: int) -> int:
    return int(U32.unpack_from(data, i)[0])


def float32(data: bytes, i: int) -> float:
    return float(F32.unpack_from(data, i)[0])


def half_percent(data: bytes, i: int) -> float:
    """Unsigned byte in steps of 0.5 % (relative humidity)."""
    return data[i] / 2


def temperature(data: bytes, i: int) -> float:
    """Signed 16-bit tenths of a degree Celsius."""
    return float(I16.unpack_from(data, i)[0] / 10)


def named(names: Mapping[int, str]) -> Reader:
    """A reader of one byte that is a code in `names`; an unlisted code reads "unknown"."""

    def read(data: bytes, i: int) -> str:
        return names.get(data[i], "unknown")

    return read


# Writers, the inverse of the readers above.


def pack_uint8(value: float) -> bytes:
    return bytes((int(value),))


def pack_uint16(value: float) -> bytes:
    return U16.pack(int(value))


def pack_uint32(value: float) -> bytes:
    return U32.pack(int(value))


def pack_half_percent(value: float) -> bytes:
    return bytes((round(value * 2),))


def pack_temperature(value: float) -> bytes:
    return I16.pack(round(value * 10))


def pack_named(names: Mapping[int, str]) -> Writer:
    """The writer of a `named(names)` byte; an unlisted name raises KeyError."""
    codes = {name: code for code, name in names.items()}

    def write(value: str) -> bytes:
        return bytes((codes[value],))

    return write


# Records with the same channel, type and meaning in every model that has them.
BATTERY = Channel("battery", 1, uint8, pack_uint8)  # 0x01 0x75, %
TEMPERATURE = Channel("temperature", 2, temperature, pack_temperature)  # 0x03 0x67
HUMIDITY = Channel("humidity", 1, half_percent, pack_half_percent)  # 0x04 0x68

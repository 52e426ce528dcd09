"""Shared parts of Adeunis frames (not a device model itself).

Adeunis devices start every frame with a frame code and a status byte; the status byte
carries a 3-bit frame counter (bits 7-5), "timestamp present" (bit 2), "low battery"
(bit 1) and "configuration done" (bit 0). When the timestamp bit is set the frame ends
with a uint32 big-endian count of seconds since 2013-01-01T00:00:00 UTC, which Adeunis'
codec prints as an ISO time without zone. From Adeunis' technical reference manuals and
the frame examples Adeunis publishes in The Things Network device repository.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ingest.decode.errors import DecodeError

EPOCH_2013 = datetime(2013, 1, 1, tzinfo=UTC)


def status(byte: int) -> dict[str, Any]:
    """The status flags, as Adeunis' codec names them (hardware error is not reported)."""
    return {
        "frameCounter": (byte & 0xE0) >> 5,
        "hardwareError": False,
        "lowBattery": bool(byte & 0x02),
        "configurationDone": bool(byte & 0x01),
    }


def has_timestamp(byte: int) -> bool:
    return bool(byte & 0x04)


def timestamp(data: bytes) -> str:
    """The trailing timestamp as '2023-12-28T19:22:17.000' (UTC, no zone, like Adeunis)."""
    if len(data) < 6:
        raise DecodeError("frame too short for its timestamp")
    seconds = int.from_bytes(data[-4:], "big")
    when = EPOCH_2013 + timedelta(seconds=seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%S.000")

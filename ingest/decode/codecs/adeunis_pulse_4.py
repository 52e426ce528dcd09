"""Adeunis PULSE 4 (LoRaWAN): two-channel pulse reader for water, gas or electricity meters.

Data frames, from Adeunis' PULSE 4 technical reference manual (all big-endian):

| code | content                                                                      |
|------|------------------------------------------------------------------------------|
| 0x5A | channel A: status, uint32 absolute counter at t=0, then uint16 differences   |
|      | to the previous samples (t-1, t-2, ...), then the timestamp if flagged       |
| 0x5B | the same for channel B                                                       |

Other frame codes (configuration, keep-alive, alarms) carry no index and are reported as
an error rather than guessed.
"""

from __future__ import annotations

from typing import Any

from ingest.decode.codecs import _adeunis
from ingest.decode.errors import DecodeError

_CHANNELS = {0x5A: "A", 0x5B: "B"}


def decode(f_port: int, data: bytes) -> dict[str, Any]:
    """Decode one uplink into the keys Adeunis' own codec puts in `data`."""
    if len(data) < 6:
        raise DecodeError("frame shorter than 6 bytes")
    channel = _CHANNELS.get(data[0])
    if channel is None:
        raise DecodeError(f"frame code 0x{data[0]:02x} is not a PULSE 4 data frame")
    flags = data[1]
    content: dict[str, Any] = {
        "type": f"0x{data[0]:02x} Pulse 4 data - channel {channel}",
        "status": _adeunis.status(flags) | {"timestamp": _adeunis.has_timestamp(flags)},
    }
    end = len(data)
    if _adeunis.has_timestamp(flags):
        content["timestamp"] = _adeunis.timestamp(data)
        end -= 4
    if end < 6 or (end - 6) % 2:
        raise DecodeError("counter history is not a whole number of 2-byte differences")
    value = int.from_bytes(data[2:6], "big")
    values = [value]
    for i in range(6, end, 2):
        value -= int.from_bytes(data[i : i + 2], "big")
        values.append(value)
    content["decodingInfo"] = "counterValues: [t=0, t-1, t-2, ...]"
    content["counterValues"] = values
    return {"bytes": content}

"""Adeunis COMFORT sensors (COMFORT 2, COMFORT CO2): one data frame, two sample layouts.

Data frames from Adeunis' technical reference manuals (big-endian): frame code, status
byte, then samples from the newest (t=0) to the oldest; the timestamp follows when flagged
(_adeunis.py). Status bit 3 reports a configuration inconsistency.

| variant       | code | sample                                                       |
|---------------|------|--------------------------------------------------------------|
| `comfort`     | 0x4C | int16 temperature in tenths of °C, uint8 relative humidity % |
| `comfort-co2` | 0x6A | the same, then a uint16 CO2 in ppm                           |
"""

from __future__ import annotations

from typing import Any

from ingest.decode.codecs import _adeunis
from ingest.decode.errors import DecodeError

# variant: (frame code, frame type as Adeunis' codec names it, bytes per sample)
VARIANTS = {
    "comfort": (0x4C, "0x4c Comfort 2 data", 3),
    "comfort-co2": (0x6A, "0x6a Comfort CO2 data", 5),
}


def decode(f_port: int, data: bytes, variant: str) -> dict[str, Any]:
    """Decode one uplink into the keys Adeunis' own codec puts in `data`."""
    code, name, size = VARIANTS[variant]
    if len(data) < 2 or data[0] != code:
        raise DecodeError(f"not a {name} frame (code 0x{code:02x})")
    flags = data[1]
    content: dict[str, Any] = {
        "type": name,
        "status": _adeunis.status(flags)
        | {
            "configurationInconsistency": bool(flags & 0x08),
            "timestamp": _adeunis.has_timestamp(flags),
        },
    }
    end = len(data)
    if _adeunis.has_timestamp(flags):
        content["timestamp"] = _adeunis.timestamp(data)
        end -= 4
    if end <= 2 or (end - 2) % size:
        raise DecodeError(f"samples are not a whole number of {size}-byte records")
    temperatures, humidities, co2 = [], [], []
    for i in range(2, end, size):
        temperatures.append(int.from_bytes(data[i : i + 2], "big", signed=True) / 10)
        humidities.append(data[i + 2])
        if size == 5:
            co2.append(int.from_bytes(data[i + 3 : i + 5], "big"))
    content["decodingInfo"] = "values: [t=0, t-1, t-2, ...]"
    content["temperature"] = {"unit": "°C", "values": temperatures}
    content["humidity"] = {"unit": "%", "values": humidities}
    if size == 5:
        content["co2"] = {"unit": "ppm", "values": co2}
    return {"bytes": content}

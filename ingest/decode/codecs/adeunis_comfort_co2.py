"""Adeunis COMFORT CO2 (LoRaWAN): indoor CO2, temperature and humidity.

Data frame 0x6A, from Adeunis' COMFORT CO2 technical reference manual (big-endian):
status byte, then samples from the newest (t=0) to the oldest, each made of an int16
temperature in tenths of °C, a uint8 relative humidity in % and a uint16 CO2 in ppm; the
timestamp follows when flagged. Status bit 3 reports a configuration inconsistency.
"""

from __future__ import annotations

from typing import Any

from ingest.decode.codecs import _adeunis
from ingest.decode.errors import DecodeError

_SAMPLE = 5


def decode(f_port: int, data: bytes) -> dict[str, Any]:
    """Decode one uplink into the keys Adeunis' own codec puts in `data`."""
    if len(data) < 2 or data[0] != 0x6A:
        raise DecodeError("not a COMFORT CO2 data frame (code 0x6a)")
    flags = data[1]
    content: dict[str, Any] = {
        "type": "0x6a Comfort CO2 data",
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
    if end <= 2 or (end - 2) % _SAMPLE:
        raise DecodeError("samples are not a whole number of 5-byte records")
    temperatures, humidities, co2 = [], [], []
    for i in range(2, end, _SAMPLE):
        temperatures.append(int.from_bytes(data[i : i + 2], "big", signed=True) / 10)
        humidities.append(data[i + 2])
        co2.append(int.from_bytes(data[i + 3 : i + 5], "big"))
    content["decodingInfo"] = "values: [t=0, t-1, t-2, ...]"
    content["temperature"] = {"unit": "°C", "values": temperatures}
    content["humidity"] = {"unit": "%", "values": humidities}
    content["co2"] = {"unit": "ppm", "values": co2}
    return {"bytes": content}

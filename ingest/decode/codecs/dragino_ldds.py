"""Dragino LDDS ultrasonic distance sensors (LDDS20, LDDS45, LDDS75): one 8-byte frame.

Frames come on fPort 2, big-endian. Layout from Dragino's LDDS user manuals ("Uplink
Payload") and the example Dragino publishes in The Things Network device repository
(vendor/dragino/ldds45-codec.yaml):

| bytes | value                                                          | output key      |
|-------|----------------------------------------------------------------|-----------------|
| 0-1   | battery voltage, mV (low 14 bits)                              | Bat (V)         |
| 2-3   | distance to the surface, mm; 0 when no sensor is connected     | Distance        |
| 4     | interrupt flag                                                 | Interrupt_flag  |
| 5-6   | DS18B20 external probe temperature, int16 / 10 °C              | TempC_DS18B20   |
| 7     | sensor flag                                                    | Sensor_flag     |

As in Dragino's codec, the distance and temperature are text with their unit or two
decimals ("2799 mm", "0.00"); the mapping reads the unit from the text.
"""

from __future__ import annotations

from typing import Any

from ingest.decode.errors import DecodeError

FPORT = 2
VARIANTS = {"ldds20": "LDDS20", "ldds45": "LDDS45", "ldds75": "LDDS75"}


def decode(f_port: int, data: bytes, variant: str) -> dict[str, Any]:
    """Decode one uplink into the keys Dragino's LDDS codec puts in `data`."""
    if f_port != FPORT:
        raise DecodeError(f"unknown fPort {f_port} (LDDS sensors send on fPort {FPORT})")
    if len(data) != 8:
        raise DecodeError(f"frame of {len(data)} bytes; LDDS frames have 8")
    distance = int.from_bytes(data[2:4], "big")
    temperature = int.from_bytes(data[5:7], "big", signed=True) / 10
    return {
        "Bat": (int.from_bytes(data[0:2], "big") & 0x3FFF) / 1000,
        "Distance": f"{distance} mm" if distance else "No Sensor",
        "Interrupt_flag": data[4],
        "TempC_DS18B20": f"{temperature:.2f}",
        "Sensor_flag": data[7],
    }

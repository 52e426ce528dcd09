"""Decentlab DL-MBX ultrasonic distance sensor (level of containers, tanks, rivers).

Decentlab frame (see _decentlab.py) with two sensors, from the DL-MBX datasheet:

| flag bit | words | values                                                     |
|----------|-------|------------------------------------------------------------|
| 0        | 2     | distance (mm), number of valid samples                     |
| 1        | 1     | battery voltage (word / 1000, V)                           |
"""

from __future__ import annotations

from typing import Any

from ingest.decode.codecs._decentlab import Sensor, Value, decode_frame

SENSORS = (
    Sensor(
        2,
        (
            Value("distance", "Distance", "mm", lambda w: w[0]),
            Value("number_of_valid_samples", "Number of valid samples", None, lambda w: w[1]),
        ),
    ),
    Sensor(1, (Value("battery_voltage", "Battery voltage", "V", lambda w: w[0] / 1000),)),
)


def decode(f_port: int, data: bytes) -> dict[str, Any]:
    """Decode one uplink into the keys Decentlab's own codec puts in `data`."""
    return decode_frame(data, SENSORS)

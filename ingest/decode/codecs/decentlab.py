"""Decentlab sensors (DL-MBX, DL-LP8P, DL-IAM...): one decoder, one sensor table per model.

Decentlab devices send, big-endian: protocol version (1 byte, 2), device id (uint16),
a flags word (uint16) whose bit i says sensor i is present, then for each present sensor
a fixed number of uint16 words. Each model lists its sensors, the words they use and how
each word converts into a value with a display name and a unit; the output keeps
Decentlab's {displayName, unit, value} shape (no `unit` key for a unitless value, as in
Decentlab's codec). The model is the codec's `variant` (`VARIANTS` below). Layout from
Decentlab's datasheets and the payload examples Decentlab publishes in The Things Network
device repository.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ingest.decode.errors import DecodeError

PROTOCOL_VERSION = 2


@dataclass(frozen=True, slots=True)
class Value:
    """One value computed from a sensor's words."""

    key: str
    display_name: str
    unit: str | None
    convert: Callable[[Sequence[int]], float]


@dataclass(frozen=True, slots=True)
class Sensor:
    """A block of `words` uint16 values, present when its flag bit is set."""

    words: int
    values: tuple[Value, ...]


def decode_frame(data: bytes, sensors: Sequence[Sensor]) -> dict[str, Any]:
    """Decode a Decentlab frame given the model's sensor table."""
    if len(data) < 5:
        raise DecodeError("frame shorter than the 5-byte header")
    if data[0] != PROTOCOL_VERSION:
        raise DecodeError(f"protocol version {data[0]} is not supported")
    out: dict[str, Any] = {
        "protocol_version": data[0],
        "device_id": int.from_bytes(data[1:3], "big"),
    }
    flags = int.from_bytes(data[3:5], "big")
    i = 5
    for bit, sensor in enumerate(sensors):
        if not flags >> bit & 1:
            continue
        end = i + 2 * sensor.words
        if end > len(data):
            raise DecodeError(f"frame truncated in sensor {bit} at byte {i}")
        words = [int.from_bytes(data[j : j + 2], "big") for j in range(i, end, 2)]
        for value in sensor.values:
            item: dict[str, Any] = {"displayName": value.display_name}
            if value.unit is not None:
                item["unit"] = value.unit
            item["value"] = value.convert(words)
            out[value.key] = item
        i = end
    if i != len(data):
        raise DecodeError(f"{len(data) - i} unexpected bytes after the flagged sensors")
    return out


# DL-MBX ultrasonic distance sensor (containers, tanks, rivers), from its datasheet.
DL_MBX = (
    Sensor(
        2,
        (
            Value("distance", "Distance", "mm", lambda w: w[0]),
            Value("number_of_valid_samples", "Number of valid samples", None, lambda w: w[1]),
        ),
    ),
    Sensor(1, (Value("battery_voltage", "Battery voltage", "V", lambda w: w[0] / 1000),)),
)

# DL-LP8P indoor CO2, temperature, humidity and barometric pressure, from its datasheet.
DL_LP8P = (
    Sensor(
        2,
        (
            Value(
                "air_temperature", "Air temperature", "°C", lambda w: 175.72 * w[0] / 65536 - 46.85
            ),
            Value("air_humidity", "Air humidity", "%", lambda w: 125 * w[1] / 65536 - 6),
        ),
    ),
    Sensor(
        2,
        (
            Value(
                "barometer_temperature",
                "Barometer temperature",
                "°C",
                lambda w: (w[0] - 5000) / 100,
            ),
            Value("barometric_pressure", "Barometric pressure", "Pa", lambda w: w[1] * 2),
        ),
    ),
    Sensor(
        8,
        (
            Value("co2_concentration", "CO2 concentration", "ppm", lambda w: w[0] - 32768),
            Value("co2_concentration_lpf", "CO2 concentration LPF", "ppm", lambda w: w[1] - 32768),
            Value(
                "co2_sensor_temperature",
                "CO2 sensor temperature",
                "°C",
                lambda w: (w[2] - 32768) / 100,
            ),
            Value("capacitor_voltage_1", "Capacitor voltage 1", "V", lambda w: w[3] / 1000),
            Value("capacitor_voltage_2", "Capacitor voltage 2", "V", lambda w: w[4] / 1000),
            Value("co2_sensor_status", "CO2 sensor status", None, lambda w: w[5]),
            Value("raw_ir_reading", "Raw IR reading", None, lambda w: w[6]),
            Value("raw_ir_reading_lpf", "Raw IR reading LPF", None, lambda w: w[7]),
        ),
    ),
    Sensor(1, (Value("battery_voltage", "Battery voltage", "V", lambda w: w[0] / 1000),)),
)


def _illuminance(w: Sequence[int]) -> float:
    """Lux from the visible+infrared and infrared channels (DL-IAM datasheet formula)."""
    return max(max(1.0 * w[0] - 1.64 * w[1], 0.59 * w[0] - 0.86 * w[1]), 0) * 1.5504


# DL-IAM indoor ambiance monitor: temperature, humidity, pressure, light, CO2, motion, TVOC.
DL_IAM = (
    Sensor(1, (Value("battery_voltage", "Battery voltage", "V", lambda w: w[0] / 1000),)),
    Sensor(
        2,
        (
            Value("air_temperature", "Air temperature", "°C", lambda w: 175 * w[0] / 65535 - 45),
            Value("air_humidity", "Air humidity", "%", lambda w: 100 * w[1] / 65535),
        ),
    ),
    Sensor(1, (Value("barometric_pressure", "Barometric pressure", "Pa", lambda w: w[0] * 2),)),
    Sensor(
        2,
        (
            Value(
                "ambient_light_visible_infrared",
                "Ambient light (visible + infrared)",
                None,
                lambda w: w[0],
            ),
            Value("ambient_light_infrared", "Ambient light (infrared)", None, lambda w: w[1]),
            Value("illuminance", "Illuminance", "lx", _illuminance),
        ),
    ),
    Sensor(
        3,
        (
            Value("co2_concentration", "CO2 concentration", "ppm", lambda w: w[0] - 32768),
            Value("co2_sensor_status", "CO2 sensor status", None, lambda w: w[1]),
            Value("raw_ir_reading", "Raw IR reading", None, lambda w: w[2]),
        ),
    ),
    Sensor(1, (Value("activity_counter", "Activity counter", None, lambda w: w[0]),)),
    Sensor(1, (Value("total_voc", "Total VOC", "ppb", lambda w: w[0]),)),
)

VARIANTS: dict[str, tuple[Sensor, ...]] = {
    "dl-mbx": DL_MBX,
    "dl-lp8p": DL_LP8P,
    "dl-iam": DL_IAM,
}


def decode(f_port: int, data: bytes, variant: str) -> dict[str, Any]:
    """Decode one uplink of model `variant` into the keys Decentlab's own codec puts in `data`."""
    return decode_frame(data, VARIANTS[variant])

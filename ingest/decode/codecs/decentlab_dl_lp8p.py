"""Decentlab DL-LP8P indoor CO2, temperature, humidity and barometric pressure sensor.

Decentlab frame (see _decentlab.py) with four sensors, from the DL-LP8P datasheet:

| bit | words | values                                                                   |
|-----|-------|--------------------------------------------------------------------------|
| 0   | 2     | air temperature 175.72*w/65536-46.85 °C, air humidity 125*w/65536-6 %    |
| 1   | 2     | barometer temperature (w-5000)/100 °C, barometric pressure w*2 Pa        |
| 2   | 8     | CO2 w-32768 ppm, CO2 low-pass w-32768 ppm, CO2 sensor temperature         |
|     |       | (w-32768)/100 °C, capacitor voltages w/1000 V (x2), sensor status, raw   |
|     |       | IR reading, raw IR reading low-pass                                      |
| 3   | 1     | battery voltage w/1000 V                                                 |
"""

from __future__ import annotations

from typing import Any

from ingest.decode.codecs._decentlab import Sensor, Value, decode_frame

SENSORS = (
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


def decode(f_port: int, data: bytes) -> dict[str, Any]:
    """Decode one uplink into the keys Decentlab's own codec puts in `data`."""
    return decode_frame(data, SENSORS)

"""Canonical metrics and units: the only names a decoded reading may carry.

Device models map their codec's output onto these metrics (ingest/decode/README.md). Every
metric has one canonical unit; codec values in other units are converted with the table
below, so that a water index is always in litres and a distance always in millimetres.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Metric:
    """A canonical metric: its name, unit, physical dimension and a short description."""

    name: str
    unit: str
    dimension: str
    description: str
    cumulative: bool = False


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("water.index", "L", "volume", "cumulative water meter index", cumulative=True),
        Metric("water.flow", "L/h", "flow", "water flow rate"),
        Metric("fill.distance", "mm", "length", "distance from the sensor to the surface"),
        Metric("fill.level", "%", "ratio", "container fill level"),
        Metric("air.co2", "ppm", "concentration", "indoor CO2 concentration"),
        Metric("air.temperature", "°C", "temperature", "air temperature"),
        Metric("air.humidity", "%", "ratio", "relative humidity"),
        Metric("battery.level", "%", "ratio", "battery level"),
        Metric("battery.voltage", "V", "voltage", "battery voltage"),
        Metric("energy.active", "Wh", "energy", "cumulative active energy", cumulative=True),
        Metric("power.active", "W", "power", "active power"),
        Metric("lamp.dim", "%", "ratio", "lamp dimming level"),
        Metric("lamp.on", "bool", "bool", "lamp switched on (1) or off (0)"),
    )
}


@dataclass(frozen=True, slots=True)
class Unit:
    """A unit and its conversion to the canonical unit: canonical = value * factor + offset."""

    dimension: str
    factor: float
    offset: float = 0.0


_UNITS: dict[str, Unit] = {
    # volume, canonical litre
    "L": Unit("volume", 1.0),
    "l": Unit("volume", 1.0),
    "dm3": Unit("volume", 1.0),
    "m3": Unit("volume", 1000.0),
    "m³": Unit("volume", 1000.0),
    "mL": Unit("volume", 0.001),
    # flow, canonical litre per hour
    "L/h": Unit("flow", 1.0),
    "l/h": Unit("flow", 1.0),
    "L/min": Unit("flow", 60.0),
    "l/min": Unit("flow", 60.0),
    "L/s": Unit("flow", 3600.0),
    "m3/h": Unit("flow", 1000.0),
    "m³/h": Unit("flow", 1000.0),
    # length, canonical millimetre
    "mm": Unit("length", 1.0),
    "cm": Unit("length", 10.0),
    "m": Unit("length", 1000.0),
    # ratios, canonical percent
    "%": Unit("ratio", 1.0),
    "%RH": Unit("ratio", 1.0),
    "%rh": Unit("ratio", 1.0),
    "%r.h.": Unit("ratio", 1.0),
    "RH%": Unit("ratio", 1.0),
    "%.r.h": Unit("ratio", 1.0),
    "ratio": Unit("ratio", 100.0),
    # concentration, canonical ppm
    "ppm": Unit("concentration", 1.0),
    # temperature, canonical degree Celsius
    "°C": Unit("temperature", 1.0),
    "℃": Unit("temperature", 1.0),
    "C": Unit("temperature", 1.0),
    "degC": Unit("temperature", 1.0),
    "°F": Unit("temperature", 5.0 / 9.0, -32.0 * 5.0 / 9.0),
    "K": Unit("temperature", 1.0, -273.15),
    # voltage, canonical volt
    "V": Unit("voltage", 1.0),
    "mV": Unit("voltage", 0.001),
    # energy, canonical watt-hour
    "Wh": Unit("energy", 1.0),
    "kWh": Unit("energy", 1000.0),
    "MWh": Unit("energy", 1_000_000.0),
    # power, canonical watt
    "W": Unit("power", 1.0),
    "kW": Unit("power", 1000.0),
    # switch states
    "bool": Unit("bool", 1.0),
}
_UNITS_FOLDED: dict[str, Unit] = {}
for _name, _unit in _UNITS.items():
    _UNITS_FOLDED.setdefault(_name.casefold().replace(" ", ""), _unit)


def unit(name: str) -> Unit | None:
    """Look a unit up by its usual spellings ("m3", "m³", "% RH"); None if unknown."""
    found = _UNITS.get(name)
    if found is None:
        found = _UNITS_FOLDED.get(name.casefold().replace(" ", ""))
    return found


def conversion(source: str, metric: Metric) -> tuple[float, float] | None:
    """(factor, offset) turning a value in `source` into the metric's canonical unit.

    None when the units measure different things (metres are not litres).
    """
    found = unit(source)
    if found is None or found.dimension != metric.dimension:
        return None
    return found.factor, found.offset


_NUMBER_WITH_UNIT = re.compile(
    r"^\s*([-+]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$"
)


def parse_quantity(text: str) -> tuple[float, str] | None:
    """Split "2000 mm" or "21,5°C" into (2000.0, "mm") / (21.5, "°C"); unit "" if none."""
    match = _NUMBER_WITH_UNIT.match(text)
    if match is None:
        return None
    return float(match.group(1).replace(",", ".")), match.group(2)

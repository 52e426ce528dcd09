"""Apply a device model's metric mappings to a codec output (or ChirpStack's `object`).

Mappings are compiled once per model (paths split, unit factors and time zones resolved) so
that the hot path only walks dicts and multiplies floats. See ingest/decode/README.md for
the mapping fields.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ingest.decode.metrics import METRICS, conversion, parse_quantity
from ingest.decode.records import Reading
from ingest.decode.spec import DeviceModel, MetricMapping

_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_MISSING = object()

# A path segment: the dict key, and the list index when the segment is a number.
Segment = tuple[str, int | None]


class _Skip(Exception):
    """A value is present but unusable; the message becomes a warning."""


def compile_path(path: str) -> tuple[Segment, ...]:
    """Split 'history[0].pulse' or 'history.0.pulse' into segments."""
    segments: list[Segment] = []
    for name, index in _SEGMENT.findall(path):
        key = name or index
        segments.append((key, int(key) if key.isdigit() else None))
    return tuple(segments)


def lookup(obj: Any, segments: tuple[Segment, ...]) -> Any:
    """Walk dicts and lists; return _MISSING when any step is absent or null."""
    for key, index in segments:
        if isinstance(obj, dict):
            obj = obj.get(key, _MISSING)
        elif isinstance(obj, list) and index is not None and index < len(obj):
            obj = obj[index]
        else:
            return _MISSING
        if obj is None or obj is _MISSING:
            return _MISSING
    return obj


class CompiledMetric:
    """One metric mapping, ready to apply."""

    __slots__ = (
        "convert",
        "depth_default",
        "depth_variable",
        "is_identity",
        "metric",
        "offset",
        "path",
        "path_text",
        "scale",
        "series",
        "source_unit",
        "time",
        "time_format",
        "unit",
        "values",
        "var_default",
        "var_name",
        "where",
        "zone",
    )

    def __init__(self, mapping: MetricMapping, model: DeviceModel) -> None:
        metric = METRICS[mapping.metric]
        self.metric = metric.name
        self.unit = metric.unit
        self.path = compile_path(mapping.path)
        self.path_text = f"{mapping.series}[*].{mapping.path}" if mapping.series else mapping.path
        self.series = compile_path(mapping.series) if mapping.series else None
        self.where = dict(mapping.where) if mapping.where else None
        self.time = compile_path(mapping.time) if mapping.time else None
        self.time_format = mapping.time_format
        self.zone = ZoneInfo(mapping.timezone or model.timezone)
        self.scale = mapping.scale
        self.offset = mapping.offset
        self.values = dict(mapping.values) if mapping.values else None
        self.var_name = mapping.scale_variable
        self.var_default = (
            model.variables[mapping.scale_variable].default if mapping.scale_variable else None
        )
        self.depth_variable: str | None = None
        self.depth_default: float | None = None
        if mapping.fill_from_depth is not None:
            # The source is a distance; it is converted to mm, then to a percentage.
            self.depth_variable = mapping.fill_from_depth.depth_variable
            self.depth_default = model.variables[self.depth_variable].default
            self.source_unit = mapping.unit or "mm"
            conv = conversion(self.source_unit, METRICS["fill.distance"])
        else:
            self.source_unit = mapping.unit or metric.unit
            conv = conversion(self.source_unit, metric)
        assert conv is not None  # checked when the model file was validated
        self.convert = conv
        self.is_identity = (
            conv == (1.0, 0.0) and self.scale == 1.0 and self.offset == 0.0 and not self.var_name
        )

    def extract(
        self,
        output: Mapping[str, Any],
        recv_time: datetime,
        variables: Mapping[str, str],
        readings: list[Reading],
        warnings: list[str],
    ) -> None:
        """Append this metric's readings (none if its path is absent) to `readings`."""
        if self.series is None:
            raw = lookup(output, self.path)
            if raw is _MISSING:
                return
            try:
                value = self._value(raw, variables)
                when = self._time(output, recv_time) if self.time else None
            except _Skip as exc:
                warnings.append(f"{self.metric} ({self.path_text}): {exc}")
                return
            if value is not None:
                readings.append(Reading(self.metric, value, self.unit, when))
            return
        items = lookup(output, self.series)
        if items is _MISSING:
            return
        if not isinstance(items, list):
            warnings.append(f"{self.metric} ({self.path_text}): series is not a list")
            return
        where = self.where
        for item in items:
            if where is not None and not (
                isinstance(item, Mapping) and all(item.get(k) == v for k, v in where.items())
            ):
                continue
            raw = lookup(item, self.path)
            if raw is _MISSING:
                continue
            try:
                value = self._value(raw, variables)
                when = self._time(item, recv_time) if self.time else None
            except _Skip as exc:
                warnings.append(f"{self.metric} ({self.path_text}): {exc}")
                continue
            if value is not None:
                readings.append(Reading(self.metric, value, self.unit, when))

    def _number(self, raw: Any) -> tuple[float, tuple[float, float]]:
        """The raw value as a float, with the (factor, offset) to the canonical unit."""
        if self.values is not None and not isinstance(raw, bool | int | float):
            key = str(raw)
            if key in self.values:
                return self.values[key], (1.0, 0.0)
            raise _Skip(f"value {raw!r} is not one of {sorted(self.values)}")
        if isinstance(raw, bool):
            return (1.0 if raw else 0.0), (1.0, 0.0)
        if isinstance(raw, int | float):
            return float(raw), self.convert
        if isinstance(raw, str):
            parsed = parse_quantity(raw)
            if parsed is None:
                raise _Skip(f"{raw!r} is not a number")
            number, text_unit = parsed
            if not text_unit or text_unit == self.source_unit:
                return number, self.convert
            target = METRICS["fill.distance" if self.depth_variable else self.metric]
            conv = conversion(text_unit, target)
            if conv is None:
                raise _Skip(f"unit {text_unit!r} in {raw!r} does not convert to {target.unit}")
            return number, conv
        raise _Skip(f"unexpected {type(raw).__name__} value {raw!r}")

    def _variable(self, variables: Mapping[str, str], name: str, default: float | None) -> float:
        text = variables.get(name)
        if text is None:
            if default is None:
                raise _Skip(f"device variable {name!r} is not set")
            return default
        try:
            value = float(text)
        except ValueError:
            raise _Skip(f"device variable {name}={text!r} is not a number") from None
        if not math.isfinite(value):
            raise _Skip(f"device variable {name}={text!r} is not finite")
        return value

    def _value(self, raw: Any, variables: Mapping[str, str]) -> float | None:
        if self.is_identity and (type(raw) is float or type(raw) is int):
            value = float(raw)
        else:
            number, (factor, offset) = self._number(raw)
            scale = self.scale
            if self.var_name is not None:
                scale *= self._variable(variables, self.var_name, self.var_default)
            value = (number * scale + self.offset) * factor + offset
            # Unit factors such as m3 -> L leave binary noise (1.234 * 1000 = 1234.0000000000002).
            value = round(value, 9)
        if self.depth_variable is not None:
            if self.depth_default is None and self.depth_variable not in variables:
                # Without a container depth there is no fill level: not an anomaly.
                return None
            depth = self._variable(variables, self.depth_variable, self.depth_default)
            if depth <= 0:
                raise _Skip(f"device variable {self.depth_variable} must be positive")
            value = round(min(100.0, max(0.0, (depth - value) / depth * 100.0)), 2)
        if not math.isfinite(value):
            raise _Skip(f"value {raw!r} is not finite")
        return value

    def _time(self, item: Any, recv_time: datetime) -> datetime:
        assert self.time is not None
        raw = lookup(item, self.time)
        if raw is _MISSING:
            raise _Skip("timestamp missing")
        fmt = self.time_format
        try:
            if fmt == "iso":
                if not isinstance(raw, str):
                    raise _Skip(f"timestamp {raw!r} is not an ISO 8601 string")
                when = datetime.fromisoformat(raw)
                if when.tzinfo is None:
                    when = when.replace(tzinfo=self.zone)
                return when.astimezone(UTC)
            seconds = float(raw)
            if fmt == "epoch_ms":
                seconds /= 1000.0
            if fmt == "age_s":
                return (recv_time - timedelta(seconds=seconds)).astimezone(UTC)
            return datetime.fromtimestamp(seconds, UTC)
        except (ValueError, TypeError, OverflowError, OSError) as exc:
            raise _Skip(f"bad timestamp {raw!r}: {exc}") from None


class CompiledMapping:
    """All metric mappings of one model."""

    __slots__ = ("metrics",)

    def __init__(self, model: DeviceModel) -> None:
        self.metrics = tuple(CompiledMetric(m, model) for m in model.metrics)

    def apply(
        self, output: Mapping[str, Any], recv_time: datetime, variables: Mapping[str, str]
    ) -> tuple[list[Reading], list[str]]:
        readings: list[Reading] = []
        warnings: list[str] = []
        for metric in self.metrics:
            metric.extract(output, recv_time, variables, readings, warnings)
        return readings, warnings


def _keyed(readings: list[Reading]) -> dict[str, float]:
    keyed: dict[str, float] = {}
    for r in readings:
        key = r.metric if r.time is None else f"{r.metric}@{r.time.isoformat()}"
        keyed[key] = r.value
    return keyed


def disagreement(platform: list[Reading],
                 chirpstack: list[Reading]) -> dict[str, Any] | None:
    """{"metric": [platform_value, chirpstack_value]} where they differ; None if they agree.

    Readings with their own time are keyed "metric@time". A value missing on one side is None.
    """
    mine, theirs = _keyed(platform), _keyed(chirpstack)
    diff: dict[str, list[float | None]] = {}
    for key in mine.keys() | theirs.keys():
        a, b = mine.get(key), theirs.get(key)
        if a is None or b is None or not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9):
            diff[key] = [a, b]
    return dict(sorted(diff.items())) or None

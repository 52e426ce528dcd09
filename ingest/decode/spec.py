"""The device model file format: pydantic specs for `ingest/decode/models/<id>.yaml`.

Every field is documented in ingest/decode/README.md. Files are self-describing
(`version: v1`, `kind: device-model`, `id:`) and validated here; `load_model_file` turns
validation errors into one line per problem naming the file and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ingest.decode.errors import CatalogueError
from ingest.decode.metrics import METRICS, conversion, unit

Category = Literal["water", "waste", "air", "energy", "lighting"]
TimeFormat = Literal["epoch_s", "epoch_ms", "iso", "age_s"]

_PATH = re.compile(r"^[A-Za-z0-9_$-]+(\[\d+\])*(\.[A-Za-z0-9_$-]+(\[\d+\])*)*$")
_MODULE = re.compile(r"^[a-z][a-z0-9_]*$")


def _check_path(value: str | None) -> str | None:
    if value is not None and not _PATH.match(value):
        raise ValueError(f"{value!r} is not a dotted path such as 'history[0].pulse' or 'a.b.0'")
    return value


def _check_zone(value: str | None) -> str | None:
    if value is not None:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CodecSpec(_Strict):
    """Which platform codec decodes the frames: a built-in Python module or a JS file."""

    builtin: str | None = Field(
        default=None, description="module name in ingest/decode/codecs/, e.g. milesight_am103"
    )
    js: str | None = Field(
        default=None,
        description="JS file relative to ingest/decode/codecs/js/ (or to the model file when it "
        "starts with ./ or ../), exposing decodeUplink(input)",
    )
    variant: str | None = Field(
        default=None,
        description="model within a family decoder (one decoder per vendor frame format), "
        "e.g. dl-iam for builtin: decentlab; only with builtin",
    )
    version: str = Field(description="codec version stored with every decoded uplink")
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the JS file (set by `hypervision models add`); the catalogue "
        "refuses a file changed without a new version",
    )

    @field_validator("builtin")
    @classmethod
    def _module_name(cls, value: str | None) -> str | None:
        if value is not None and not _MODULE.match(value):
            raise ValueError(f"{value!r} is not a Python module name")
        return value

    @field_validator("js")
    @classmethod
    def _js_file(cls, value: str | None) -> str | None:
        if value is not None and (not value.endswith(".js") or value.startswith("/")):
            raise ValueError(f"{value!r} must be a relative path to a .js file")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> CodecSpec:
        if (self.builtin is None) == (self.js is None):
            raise ValueError("give exactly one of 'builtin' or 'js'")
        if self.variant is not None and self.builtin is None:
            raise ValueError("'variant' selects a model of a built-in family decoder")
        return self

    @property
    def name(self) -> str:
        """The codec name stored with decoded uplinks: builtin:<module>[:<variant>] or js:<path>."""
        if self.builtin is None:
            return f"js:{self.js}"
        suffix = f":{self.variant}" if self.variant else ""
        return f"builtin:{self.builtin}{suffix}"


class VariableSpec(_Strict):
    """A per-device variable a member sets in its tenant file (e.g. litres per pulse)."""

    description: str
    default: float | None = Field(default=None, description="value used when the device sets none")


class FillFromDepth(_Strict):
    """Compute a fill level (%) from a distance and the container's depth."""

    depth_variable: str = Field(description="per-device variable holding the depth in mm")


class MetricMapping(_Strict):
    """How one canonical metric is found in the codec output."""

    metric: str = Field(description="canonical metric name, see ingest/decode/metrics.py")
    path: str = Field(description="dotted path to the value (relative to each item in a series)")
    series: str | None = Field(
        default=None, description="dotted path to a list: one reading per item"
    )
    where: dict[str, str] | None = Field(
        default=None,
        description="with `series`: only the items whose fields have these values, e.g. "
        "{Type: Volume}",
    )
    unit: str | None = Field(
        default=None,
        description="unit of bare numbers in the codec output (default: the canonical unit); "
        "strings such as '2000 mm' carry their own unit",
    )
    scale: float = Field(default=1.0, description="multiplier applied before unit conversion")
    offset: float = Field(default=0.0, description="added after scaling")
    scale_variable: str | None = Field(
        default=None, description="per-device variable that multiplies the value"
    )
    values: dict[str, float] | None = Field(
        default=None, description="numbers for text values, e.g. {on: 1, off: 0}"
    )
    time: str | None = Field(default=None, description="dotted path to the reading's timestamp")
    time_format: TimeFormat = Field(
        default="epoch_s",
        description="epoch_s, epoch_ms, iso (naive times are in `timezone`) or age_s "
        "(seconds before the uplink)",
    )
    timezone: str | None = Field(default=None, description="zone of naive ISO timestamps")
    fill_from_depth: FillFromDepth | None = None

    @field_validator("path", "series", "time")
    @classmethod
    def _dotted(cls, value: str | None) -> str | None:
        return _check_path(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return _check_zone(value)

    @field_validator("metric")
    @classmethod
    def _canonical(cls, value: str) -> str:
        if value not in METRICS:
            known = ", ".join(sorted(METRICS))
            raise ValueError(f"unknown metric {value!r}; canonical metrics are: {known}")
        return value

    @model_validator(mode="after")
    def _units_fit(self) -> MetricMapping:
        if self.where is not None and self.series is None:
            raise ValueError("'where' selects items of a 'series'")
        metric = METRICS[self.metric]
        if self.fill_from_depth is not None:
            if self.metric != "fill.level":
                raise ValueError("fill_from_depth only produces the metric fill.level")
            source = unit(self.unit or "mm")
            if source is None or source.dimension != "length":
                raise ValueError("fill_from_depth needs a distance (unit mm, cm or m)")
        elif self.unit is not None and conversion(self.unit, metric) is None:
            raise ValueError(
                f"unit {self.unit!r} cannot be converted to {metric.unit!r} for {self.metric}"
            )
        return self


class DeviceModel(_Strict):
    """A device model of the catalogue: identity, codec and metric mappings."""

    version: Literal["v1"]
    kind: Literal["device-model"]
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    vendor: str
    model: str
    category: Category
    description: str = Field(description="what the device measures, shown on public pages")
    documentation: list[str] = Field(
        default_factory=list, description="vendor documents the codec was written from"
    )
    codec: CodecSpec | None = Field(
        default=None, description="platform codec; none = use ChirpStack's decoded object"
    )
    typical_interval_s: int = Field(gt=0, description="usual interval between uplinks")
    timezone: str = Field(default="Europe/Paris", description="zone of naive timestamps")
    variables: dict[str, VariableSpec] = Field(default_factory=dict)
    metrics: list[MetricMapping] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        _check_zone(value)
        return value

    @model_validator(mode="after")
    def _variables_declared(self) -> DeviceModel:
        for i, mapping in enumerate(self.metrics):
            used = [mapping.scale_variable]
            if mapping.fill_from_depth is not None:
                used.append(mapping.fill_from_depth.depth_variable)
            for name in used:
                if name is not None and name not in self.variables:
                    raise ValueError(f"metrics[{i}] uses undeclared variable {name!r}")
        return self

    @property
    def codec_name(self) -> str:
        """Codec name stored with decoded uplinks; 'chirpstack-object' without a codec."""
        return self.codec.name if self.codec else "chirpstack-object"

    @property
    def codec_version(self) -> str | None:
        return self.codec.version if self.codec else None


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"function-after", "function-before"} or part.startswith("function-"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(file)"


def load_model_file(path: Path) -> DeviceModel:
    """Read and validate one model file; raise CatalogueError naming file, field and problem."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogueError([f"{path}: cannot read YAML: {exc}"]) from exc
    if not isinstance(raw, dict):
        raise CatalogueError([f"{path}: expected a mapping at the top level"])
    try:
        model = DeviceModel.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{path}: {_location(err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        ]
        raise CatalogueError(problems) from exc
    if path.stem != model.id:
        raise CatalogueError([f"{path}: id: {model.id!r} must match the file name {path.stem!r}"])
    return model

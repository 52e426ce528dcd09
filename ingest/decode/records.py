"""The records exchanged between the pipeline and the decode stage.

`UplinkToDecode` goes in, `Decoded` (with its `Reading`s) comes out; see
ingest/decode/README.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Reading:
    """One canonical measurement taken from an uplink."""

    metric: str  # canonical metric, e.g. "water.index"
    value: float
    unit: str  # canonical unit, e.g. "L"
    time: datetime | None  # None = the uplink's own time; otherwise an aware UTC datetime


@dataclass(frozen=True, slots=True)
class UplinkToDecode:
    """What the pipeline knows about an uplink when it asks for decoding."""

    model_id: str
    f_port: int
    data: bytes
    object: dict[str, Any] | None  # ChirpStack's decoded `object` (numbers are floats) or None
    recv_time: datetime  # the uplink's time (aware)
    variables: Mapping[str, str]  # per-device variables, e.g. {"litres_per_pulse": "10"}


@dataclass(frozen=True, slots=True)
class Decoded:
    """The outcome of decoding one uplink.

    `error` is None when the uplink was decoded (possibly into no readings, e.g. a frame that
    only carries device information); otherwise a short reason. `disagreement` maps a metric
    to `[platform_value, chirpstack_value]` when both decoded and they differ.
    """

    readings: list[Reading]
    codec: str | None
    codec_version: str | None
    error: str | None
    warnings: list[str]
    disagreement: dict[str, Any] | None

"""The simulator's encoders are the exact inverse of the built-in decoders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from ingest.decode.codecs import (
    milesight_am103,
    milesight_em300_di,
    milesight_em400_mud,
    milesight_ws558,
)

VECTORS = Path(__file__).parents[1] / "payloads" / "vectors"

ROUND_TRIPS: list[tuple[ModuleType, dict[str, Any]]] = [
    (milesight_am103, {"battery": 87, "temperature": 21.4, "humidity": 45.5, "co2": 1203}),
    (milesight_am103, {"temperature": -4.2, "co2": 0}),
    (
        milesight_am103,
        {
            "co2": 650,
            "history": [
                {"timestamp": 1714980000, "temperature": 19.9, "humidity": 40.0, "co2": 612},
                {"timestamp": 1714980600, "temperature": 20.1, "humidity": 40.5, "co2": 655},
            ],
        },
    ),
    (
        milesight_em400_mud,
        {"battery": 99, "temperature": 12.3, "distance": 845, "position": "normal"},
    ),
    (milesight_em400_mud, {"distance": 65535, "position": "tilt"}),
    (
        milesight_em400_mud,
        {
            "battery": 50,
            "temperature": -10.5,
            "temperature_alarm": "threshold_alarm_release",
            "distance": 120,
            "distance_alarm": "threshold_alarm",
        },
    ),
    (milesight_em300_di, {"battery": 100, "temperature": 8.5, "humidity": 90.0, "pulse": 123456}),
    (milesight_em300_di, {"gpio": "high", "pulse": 4294967295}),
    (
        milesight_em300_di,
        {
            "pulse": 1000,
            "history": [
                {"timestamp": 1714980000, "temperature": 11.0, "humidity": 80.5, "pulse": 990},
                {"timestamp": 1714983600, "temperature": 11.2, "humidity": 81.0, "gpio": "low"},
            ],
        },
    ),
    (
        milesight_ws558,
        {"voltage": 231.4, "active_power": 2140, "power_factor": 96, "total_current": 9630,
         "power_consumption": 1873512,
         **{f"switch_{n}": "on" if n in (1, 2) else "off" for n in range(1, 9)}},
    ),
]


@pytest.mark.parametrize(("codec", "values"), ROUND_TRIPS)
def test_decode_of_encode_gives_the_values_back(codec: ModuleType, values: dict) -> None:
    f_port, frame = codec.encode(values)
    assert f_port == 85
    assert codec.decode(f_port, frame) == values


@pytest.mark.parametrize(
    ("model_id", "encode"),
    [
        ("milesight-am103", milesight_am103.encode),
        ("milesight-em400-mud", milesight_em400_mud.encode),
        ("milesight-em300-di", milesight_em300_di.encode),
        ("milesight-ws558", milesight_ws558.encode),
    ],
)
def test_encoding_the_vendor_values_gives_the_vendor_frame(
    model_id: str, encode: Callable[[dict], tuple[int, bytes]]
) -> None:
    spec = yaml.safe_load((VECTORS / f"{model_id}.yaml").read_text(encoding="utf-8"))
    for vector in spec["vectors"]:
        f_port, frame = encode(vector["decoded"])
        assert (f_port, frame.hex()) == (vector["f_port"], vector["hex"].replace(" ", "").lower())

"""The catalogue contract: model files, mapping rules, ChirpStack objects, disagreements."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.decode import Catalogue, CatalogueError, Reading, UplinkToDecode
from ingest.decode.metrics import METRICS

PAYLOADS = Path(__file__).parents[1] / "payloads"
RECV = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def builtin() -> Catalogue:
    return Catalogue.load()


@pytest.fixture(scope="module")
def objects() -> Catalogue:
    return Catalogue.load(PAYLOADS / "models")


def _uplink(
    model: str, hex_: str = "", obj: dict | None = None, **variables: str
) -> UplinkToDecode:
    return UplinkToDecode(model, 85, bytes.fromhex(hex_), obj, RECV, variables)


def test_the_built_in_catalogue_loads_with_the_three_demo_models(builtin: Catalogue) -> None:
    for model_id in ("milesight-em300-di", "milesight-em400-mud", "milesight-am103"):
        model = builtin.get(model_id)
        assert model.typical_interval_s > 0
        assert model.description
    with pytest.raises(KeyError):
        builtin.get("no-such-model")


def test_every_model_maps_only_canonical_metrics(builtin: Catalogue) -> None:
    for model in builtin.models.values():
        assert {m.metric for m in model.metrics} <= set(METRICS)


def test_it_rejects_invalid_model_files_naming_file_field_and_problem() -> None:
    with pytest.raises(CatalogueError) as caught:
        Catalogue.load(PAYLOADS / "bad-models")
    text = str(caught.value)
    assert "bad-one.yaml: category:" in text
    assert "bad-one.yaml: typical_interval_s:" in text
    assert "bad-one.yaml: codec:" in text and "exactly one" in text
    assert "bad-one.yaml: metrics[0].metric:" in text and "water.volume" in text
    assert "bad-one.yaml: metrics[1]:" in text and "'L' cannot be converted" in text
    assert "other-name.yaml: id:" in text


def test_an_unknown_model_gives_an_error_not_an_exception(builtin: Catalogue) -> None:
    (decoded,) = builtin.decode_batch([_uplink("nope", "0175")])
    assert decoded.error == "unknown model"
    assert decoded.readings == []


def test_a_bad_frame_fails_only_its_own_uplink(builtin: Catalogue) -> None:
    good = _uplink("milesight-am103", "077DC501")
    bad = _uplink("milesight-am103", "077D")
    unknown = _uplink("milesight-am103", "AB12")
    results = builtin.decode_batch([good, bad, unknown, good])
    assert [r.error for r in results] == [
        None,
        "frame truncated in co2 at byte 2",
        "unknown channel 0xab 0x12 at byte 0",
        None,
    ]
    assert results[0].readings == [Reading("air.co2", 453.0, "ppm", None)]
    assert results[1].codec == "builtin:milesight_am103"
    assert results[1].codec_version == "1.0.0"


def test_a_crashing_decoder_fails_its_uplink_without_raising(
    builtin: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(f_port: int, data: bytes) -> dict:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(builtin._entries["milesight-am103"], "builtin", boom)
    (decoded,) = builtin.decode_batch([_uplink("milesight-am103", "077DC501")])
    assert decoded.error == "codec crashed: division by zero"


def test_the_pulse_count_is_scaled_by_the_litres_per_pulse_variable(builtin: Catalogue) -> None:
    frame = "05C8E8030000"  # 1000 pulses
    default, ten, wrong = builtin.decode_batch(
        [
            _uplink("milesight-em300-di", frame),
            _uplink("milesight-em300-di", frame, litres_per_pulse="10"),
            _uplink("milesight-em300-di", frame, litres_per_pulse="ten"),
        ]
    )
    assert default.readings == [Reading("water.index", 1000.0, "L", None)]
    assert ten.readings == [Reading("water.index", 10000.0, "L", None)]
    assert wrong.readings == []
    assert wrong.warnings == [
        "water.index (pulse): device variable litres_per_pulse='ten' is not a number"
    ]


def test_fill_level_needs_the_container_depth(builtin: Catalogue) -> None:
    frame = "0482E803"  # 1000 mm
    without, with_depth, overfull = builtin.decode_batch(
        [
            _uplink("milesight-em400-mud", frame),
            _uplink("milesight-em400-mud", frame, container_depth_mm="1250"),
            _uplink("milesight-em400-mud", frame, container_depth_mm="800"),
        ]
    )
    assert without.readings == [Reading("fill.distance", 1000.0, "mm", None)]
    assert without.warnings == []
    assert with_depth.readings[1] == Reading("fill.level", 20.0, "%", None)
    assert overfull.readings[1] == Reading("fill.level", 0.0, "%", None)


def test_the_platform_wins_and_a_chirpstack_disagreement_is_recorded(
    builtin: Catalogue,
) -> None:
    frame = "017564 03671801 04686D 077DC501".replace(" ", "")
    same = {"battery": 100.0, "co2": 453.0, "temperature": 28.0, "humidity": 54.5}
    other = dict(same, co2=460.0)
    agree, differ = builtin.decode_batch(
        [_uplink("milesight-am103", frame, same), _uplink("milesight-am103", frame, other)]
    )
    assert agree.disagreement is None
    assert differ.disagreement == {"air.co2": [453.0, 460.0]}
    assert Reading("air.co2", 453.0, "ppm", None) in differ.readings


def test_a_model_without_codec_maps_chirpstack_object(objects: Catalogue) -> None:
    obj = {
        "meter": {"index": "1.234 m³"},
        "hourly": [
            {"at": "2024-01-15T10:00:00", "volume": 1200.0},  # naive: Europe/Paris (UTC+1)
            {"at": "2024-07-15T10:00:00Z", "volume": "1300 L"},
        ],
        "readings": [{"flow": 0.5}],
        "distance": "2000 mm",
        "temp": "21.5 °C",
        "battery": [3600.0],
        "pulses": [{"ts": 1705316400000.0, "count": 5.0}],
        "previous": [{"age": 3600.0, "value": 99.0}],
        "ignored": 1.0,
    }
    (decoded,) = objects.decode_batch([_uplink("test-object-meter", obj=obj, litres_per_pulse="2")])
    assert decoded.error is None, decoded.error
    assert decoded.codec == "chirpstack-object"
    assert decoded.warnings == []
    assert decoded.readings == [
        Reading("water.index", 1234.0, "L", None),
        Reading("water.index", 1200.0, "L", datetime(2024, 1, 15, 9, 0, tzinfo=UTC)),
        Reading("water.index", 1300.0, "L", datetime(2024, 7, 15, 10, 0, tzinfo=UTC)),
        Reading("water.flow", 500.0, "L/h", None),
        Reading("fill.distance", 2000.0, "mm", None),
        Reading("air.temperature", 21.5, "°C", None),
        Reading("battery.voltage", 3.6, "V", None),
        Reading("water.index", 10.0, "L", datetime(2024, 1, 15, 11, 0, tzinfo=UTC)),
        Reading("water.index", 99.0, "L", datetime(2024, 1, 15, 11, 0, tzinfo=UTC)),
    ]
    for reading in decoded.readings:
        assert reading.time is None or reading.time.utcoffset() is not None


def test_strings_booleans_and_units_become_canonical(objects: Catalogue) -> None:
    on, off = objects.decode_batch(
        [
            _uplink("test-object-lamp", obj={"relay": "on", "dim": 0.4, "energy": 12.5}),
            _uplink("test-object-lamp", obj={"relay": False, "power": "1.5 kW"}),
        ]
    )
    assert on.readings == [
        Reading("lamp.on", 1.0, "bool", None),
        Reading("lamp.dim", 40.0, "%", None),
        Reading("energy.active", 12500.0, "Wh", None),
    ]
    assert off.readings == [
        Reading("lamp.on", 0.0, "bool", None),
        Reading("power.active", 1500.0, "W", None),
    ]


def test_unusable_values_become_warnings_not_errors(objects: Catalogue) -> None:
    (decoded,) = objects.decode_batch(
        [_uplink("test-object-lamp", obj={"relay": "blinking", "power": "12 mm", "dim": 50.0})]
    )
    assert decoded.error is None
    assert decoded.readings == [Reading("lamp.dim", 5000.0, "%", None)]
    assert decoded.warnings == [
        "lamp.on (relay): value 'blinking' is not one of ['off', 'on']",
        "power.active (power): unit 'mm' in '12 mm' does not convert to W",
    ]


def test_without_codec_and_without_object_it_is_an_error(objects: Catalogue) -> None:
    (decoded,) = objects.decode_batch([_uplink("test-object-lamp", "0102")])
    assert decoded.error == "no codec and no ChirpStack object"

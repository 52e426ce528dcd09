"""`hypervision models` and `hypervision decode`, through typer's test runner."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from hypervision.commands.catalogue import register

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_models_lists_the_catalogue() -> None:
    result = runner.invoke(_app(), ["models"])
    assert result.exit_code == 0, result.output
    for text in ("milesight-am103", "Milesight", "builtin:milesight_em400_mud", "water.index"):
        assert text in result.output


def test_decode_prints_the_codec_output_and_the_readings() -> None:
    result = runner.invoke(
        _app(),
        [
            "decode",
            "milesight-em300-di",
            "--fport",
            "85",
            "05c8e8030000",
            "--var",
            "litres_per_pulse=10",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["output"] == {"pulse": 1000}
    assert report["codec"] == "builtin:milesight_em300_di"
    assert report["readings"] == [
        {"metric": "water.index", "value": 10000.0, "unit": "L", "time": None}
    ]
    assert report["error"] is None


def test_decode_reports_a_disagreement_with_chirpstack() -> None:
    result = runner.invoke(
        _app(),
        ["decode", "milesight-am103", "--fport", "85", "077DC501", "--object", '{"co2": 450.0}'],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["disagreement"] == {"air.co2": [453.0, 450.0]}


def test_decode_exits_1_on_a_bad_frame() -> None:
    result = runner.invoke(_app(), ["decode", "milesight-am103", "--fport", "85", "077D"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"] == "frame truncated in co2 at byte 2"


def test_decode_exits_1_on_an_unknown_model_or_bad_input() -> None:
    for args in (
        ["decode", "nope", "--fport", "1", "00"],
        ["decode", "milesight-am103", "--fport", "85", "zz"],
        ["decode", "milesight-am103", "--fport", "85", "00", "--var", "novalue"],
    ):
        result = runner.invoke(_app(), args)
        assert result.exit_code == 1
        assert "error:" in result.output

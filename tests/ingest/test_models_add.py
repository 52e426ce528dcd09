"""`hypervision models add` / `models check` / `models` with an operator catalogue folder,
and the workers' catalogue reload (CatalogueSource)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from hypervision.commands.catalogue import register
from hypervision.settings import get_settings
from ingest.decode import Catalogue, CatalogueError
from ingest.decode.reload import CatalogueSource

TTN = Path(__file__).parents[1] / "payloads" / "ttn" / "elsys"
runner = CliRunner()
METRICS = ["--metric", "air.temperature=temperature", "--metric", "air.humidity=humidity:%"]


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty operator catalogue folder, set as HV_CATALOGUE_DIR for the CLI."""
    catalogue = tmp_path / "catalogue"
    monkeypatch.setenv("HV_CATALOGUE_DIR", str(catalogue))
    get_settings.cache_clear()
    yield catalogue
    get_settings.cache_clear()


def _add(source: Path, *extra: str) -> object:
    return runner.invoke(_app(), ["models", "add", str(source), "--category", "air",
                                  "--id", "acme-ers-lite", "--yes", *METRICS, *extra])


def test_a_ttn_device_becomes_an_operator_model_that_decodes(folder: Path) -> None:
    result = _add(TTN)
    assert result.exit_code == 0, result.output
    assert "+ acme-ers-lite version 1" in result.output
    model = yaml.safe_load((folder / "acme-ers-lite.yaml").read_text())
    assert model["codec"]["js"] == "./codecs/acme-ers-lite.v1.js"
    assert model["vendor"] == "Elsys" and model["model"] == "ERS Lite"
    assert (folder / "examples" / "acme-ers-lite.yaml").is_file()

    catalogue = Catalogue.load_with_operator(folder)
    assert catalogue.origin("acme-ers-lite") == "operator"
    assert catalogue.origin("elsys-ers-lite") == "built-in"

    listed = runner.invoke(_app(), ["models"])
    assert listed.exit_code == 0, listed.output
    assert "acme-ers-lite" in listed.output and "operator" in listed.output

    decoded = runner.invoke(_app(), ["decode", "acme-ers-lite", "--fport", "1", "0100E20229"])
    assert decoded.exit_code == 0, decoded.output
    report = json.loads(decoded.stdout)
    assert report["codec"] == "js:./codecs/acme-ers-lite.v1.js"
    assert report["codec_version"] == "1"
    assert [(r["metric"], r["value"]) for r in report["readings"]] == [
        ("air.temperature", 22.6), ("air.humidity", 41.0)]

    assert runner.invoke(_app(), ["models", "check"]).exit_code == 0


def test_a_model_whose_examples_do_not_decode_as_declared_is_refused(
    folder: Path, tmp_path: Path
) -> None:
    vendor = tmp_path / "vendor"
    shutil.copytree(TTN, vendor)
    codec = vendor / "ers-lite-codec.yaml"
    codec.write_text(codec.read_text().replace("humidity: 41", "humidity: 42"))
    result = _add(vendor)
    assert result.exit_code == 1
    assert "refused" in result.output and "0100e20229" in result.output
    assert '"humidity": 42' in result.output
    assert not folder.exists()


def test_a_metric_path_absent_from_every_example_is_refused(folder: Path) -> None:
    result = runner.invoke(_app(), ["models", "add", str(TTN), "--category", "air", "--id",
                                    "acme-ers-lite", "--yes", "--metric", "air.co2=co2"])
    assert result.exit_code == 1
    assert "metric air.co2 (path co2) is read from no example" in result.output


def test_a_built_in_id_cannot_be_taken(folder: Path) -> None:
    result = runner.invoke(_app(), ["models", "add", str(TTN), "--category", "air",
                                    "--yes", *METRICS])
    assert result.exit_code == 1
    assert "elsys-ers-lite is a built-in model" in result.output


def test_a_changed_codec_gets_a_new_version_and_the_old_one_is_kept(
    folder: Path, tmp_path: Path
) -> None:
    vendor = tmp_path / "vendor"
    shutil.copytree(TTN, vendor)
    assert _add(vendor).exit_code == 0
    again = _add(vendor)
    assert again.exit_code == 0 and "= acme-ers-lite version 1: unchanged" in again.output

    js = vendor / "elsys.js"
    js.write_text(js.read_text() + "\n// fixed by the vendor\n")
    changed = _add(vendor)
    assert changed.exit_code == 0, changed.output
    assert "~ acme-ers-lite version 2: codec changed" in changed.output
    assert "hypervision reprocess MEMBER --model acme-ers-lite" in changed.output
    assert (folder / "codecs" / "acme-ers-lite.v1.js").is_file()
    model = Catalogue.load_with_operator(folder).get("acme-ers-lite")
    assert model.codec_version == "2"
    assert model.codec_name == "js:./codecs/acme-ers-lite.v2.js"


def test_a_codec_edited_by_hand_is_refused_until_imported_again(folder: Path) -> None:
    assert _add(TTN).exit_code == 0
    js = folder / "codecs" / "acme-ers-lite.v1.js"
    js.write_text(js.read_text().replace("/ 10", "/ 100"))
    with pytest.raises(CatalogueError, match="changed since version 1 was recorded"):
        Catalogue.load_with_operator(folder)


def test_a_chirpstack_device_profile_export_is_imported(folder: Path, tmp_path: Path) -> None:
    examples = yaml.safe_load((TTN / "ers-lite-codec.yaml").read_text())["uplinkDecoder"]
    profile = {
        "deviceProfile": {
            "name": "Elsys ERS Lite",
            "description": "Indoor temperature and humidity",
            "payloadCodecRuntime": "JS",
            "payloadCodecScript": (TTN / "elsys.js").read_text(),
        },
        "examples": examples["examples"],
    }
    export = tmp_path / "ers-lite.json"
    export.write_text(json.dumps(profile))
    result = _add(export)
    assert result.exit_code == 0, result.output
    assert Catalogue.load_with_operator(folder).get("acme-ers-lite").vendor == "Elsys"


def test_the_worker_catalogue_is_reloaded_when_the_folder_changes(folder: Path) -> None:
    now = [0.0]
    source = CatalogueSource(folder, interval=10, clock=lambda: now[0])
    assert "acme-ers-lite" not in source.current().models
    assert _add(TTN).exit_code == 0
    now[0] = 5.0
    assert "acme-ers-lite" not in source.current().models  # not checked before the interval
    now[0] = 10.0
    assert "acme-ers-lite" in source.current().models
    assert source.reloads == 1

    # A model file broken by hand: logged, and the previous catalogue stays in use.
    (folder / "acme-ers-lite.yaml").write_text("kind: nonsense\n")
    now[0] = 20.0
    assert "acme-ers-lite" in source.current().models
    assert source.reloads == 1


def test_a_worker_starting_on_a_broken_folder_decodes_the_built_in_models(folder: Path) -> None:
    folder.mkdir()
    (folder / "half-written.yaml").write_text("kind: device-model\n")
    now = [0.0]
    source = CatalogueSource(folder, interval=1, clock=lambda: now[0])
    assert "milesight-am103" in source.current().models
    (folder / "half-written.yaml").unlink()
    assert _add(TTN).exit_code == 0
    now[0] = 1.0
    assert "acme-ers-lite" in source.current().models

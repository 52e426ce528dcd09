"""Every decoder against every vendor example frame (tests/payloads/vectors/<model>.yaml).

Each vector gives the frame, the values the vendor documents for it (`decoded`, compared
exactly with the codec output) and the canonical readings the catalogue must produce. The
built-in decoder of the model and every JS codec listed under `js_codecs` are checked on
the same vectors, so a JS port and its Python twin cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingest.decode import Catalogue, DecodeError, Reading, UplinkToDecode
from ingest.decode.catalogue import JS_DIR, load_builtin

VECTORS = Path(__file__).parents[1] / "payloads" / "vectors"
RECV_TIME = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
CATALOGUE = Catalogue.load()


def _cases() -> list[Any]:
    cases = []
    for path in sorted(VECTORS.glob("*.yaml")):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        model = CATALOGUE.get(spec["model"])
        codecs = [model.codec_name] + [f"js:{js}" for js in spec.get("js_codecs", [])]
        for n, vector in enumerate(spec["vectors"]):
            for codec in codecs:
                cases.append(pytest.param(model.id, codec, vector, id=f"{model.id}-{n}-{codec}"))
    return cases


def _run_codec(codec: str, vector: dict) -> dict:
    data = bytes.fromhex(vector["hex"].replace(" ", ""))
    if codec.startswith("builtin:"):
        return load_builtin(codec.removeprefix("builtin:"))(vector["f_port"], data)
    item = UplinkToDecode("", vector["f_port"], data, None, RECV_TIME, vector.get("variables", {}))
    result = CATALOGUE.js_codec((JS_DIR / codec.removeprefix("js:")).resolve()).decode_batch(
        [item]
    )[0]
    assert result.error is None, result.error
    return result.data


def _expected_readings(vector: dict) -> list[Reading]:
    return [
        Reading(
            r["metric"],
            float(r["value"]),
            r["unit"],
            datetime.fromisoformat(r["time"]) if "time" in r else None,
        )
        for r in vector["readings"]
    ]


def test_every_model_has_vendor_vectors() -> None:
    with_vectors = {p.stem for p in VECTORS.glob("*.yaml")}
    with_codec = {m.id for m in CATALOGUE.models.values() if m.codec is not None}
    assert with_codec <= with_vectors


def test_every_vector_file_names_its_origin_and_licence() -> None:
    for path in sorted(VECTORS.glob("*.yaml")):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert str(spec.get("origin", "")).startswith("https://"), path.name
        assert len(str(spec.get("licence", ""))) > 10, path.name


def test_the_models_page_lists_every_model() -> None:
    page = (Path(__file__).parents[2] / "docs" / "devices.md").read_text(encoding="utf-8")
    missing = [m for m in CATALOGUE.models if f"`{m}`" not in page]
    assert missing == []


def test_the_catalogue_covers_thirty_models_in_every_category() -> None:
    models = CATALOGUE.models.values()
    assert len(models) >= 30
    assert {m.category for m in models} == {"water", "waste", "air", "energy", "lighting"}


@pytest.mark.parametrize(("model_id", "codec", "vector"), _cases())
def test_codec_matches_the_vendor_example(model_id: str, codec: str, vector: dict) -> None:
    assert vector["source"].startswith("http")
    if "error" in vector:
        # The vendor's codec refuses this frame: ours must refuse it too, for that reason.
        assert codec.startswith("builtin:")
        with pytest.raises(DecodeError, match=vector["error"]):
            _run_codec(codec, vector)
        return
    assert _run_codec(codec, vector) == vector["decoded"]
    item = UplinkToDecode(
        model_id,
        vector["f_port"],
        bytes.fromhex(vector["hex"].replace(" ", "")),
        None,
        RECV_TIME,
        vector.get("variables", {}),
    )
    (decoded,) = CATALOGUE.decode_batch([item])
    assert decoded.error is None
    assert decoded.warnings == []
    assert decoded.readings == _expected_readings(vector)

"""The JS codec runtime: batching, hostile codecs, and its use through the catalogue."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.decode import Catalogue, Reading, UplinkToDecode
from ingest.decode.jsruntime import JsCodec, JsCodecError, JsResult, Limits

PAYLOADS = Path(__file__).parents[1] / "payloads"
JS = PAYLOADS / "js"
RECV = datetime(2024, 3, 1, 8, 30, tzinfo=UTC)


def _uplink(first: int, model: str = "x", **variables: str) -> UplinkToDecode:
    return UplinkToDecode(model, 7, bytes([first, 0]), None, RECV, variables)


def test_importing_and_loading_the_catalogue_starts_no_v8() -> None:
    code = (
        "import ingest.decode.jsruntime as r, ingest.decode as d;"
        "d.Catalogue.load();"
        "import sys; sys.exit(1 if r._SANDBOXES or 'py_mini_racer' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_a_batch_gets_chirpstack_inputs_and_keeps_its_order() -> None:
    codec = JsCodec(JS / "moody.js")
    results = codec.decode_batch([_uplink(1, litres_per_pulse="10"), _uplink(2), _uplink(3)])
    assert results[0] == JsResult(
        {"value": 1, "port": 7, "litres": "10", "received": "2024-03-01T08:30:00.000Z"},
        ["low battery"],
        None,
    )
    assert [r.data["value"] for r in results] == [1, 2, 3]


def test_an_endless_loop_fails_only_its_own_uplink() -> None:
    results = JsCodec(JS / "moody.js").decode_batch([_uplink(1), _uplink(0xFF), _uplink(2)])
    assert [r.error for r in results] == [None, "codec timed out after 100 ms", None]
    assert results[2].data["value"] == 2


# Filling 80 MB arrays takes tens of milliseconds: the allocation test gets enough time
# for the memory limit, not the time limit, to be what stops it.
SLOW = Limits(batch_base_s=3.0, single_item_s=3.0)


@pytest.mark.parametrize(
    ("codec", "limits", "reason"),
    [
        ("loop.js", Limits(), "codec timed out after 100 ms"),
        ("alloc.js", SLOW, "codec exceeded the 128 MB memory limit"),
        ("throw.js", Limits(), "codec threw: cannot read property 'x' of undefined"),
    ],
)
def test_a_hostile_codec_fails_its_uplinks_with_a_reason(
    codec: str, limits: Limits, reason: str
) -> None:
    results = JsCodec(JS / codec, limits).decode_batch([_uplink(1), _uplink(2)])
    assert [r.error for r in results] == [reason, reason]


def test_allocations_v8_cannot_stop_only_cost_the_sandbox() -> None:
    # 0x01 ends in a fatal V8 out-of-memory, 0x02 fills a 1 GB typed array.
    results = JsCodec(JS / "huge.js").decode_batch([_uplink(4), _uplink(1), _uplink(2), _uplink(3)])
    assert results[0].data == {"ok": 4}
    assert results[1].error is not None and "sandbox restarted" in results[1].error
    assert results[2].error is not None and "sandbox restarted" in results[2].error
    assert results[3].data == {"ok": 3}


def test_codec_errors_and_warnings_are_reported() -> None:
    (result,) = JsCodec(JS / "moody.js").decode_batch([_uplink(0xCC)])
    assert result == JsResult(None, ["w1"], "codec errors: unsupported frame")


def test_a_codec_that_does_not_compile_is_a_codec_error() -> None:
    with pytest.raises(JsCodecError, match="SyntaxError"):
        JsCodec(JS / "broken.js").decode_batch([_uplink(1)])


def test_the_catalogue_decodes_js_models_in_mixed_batches() -> None:
    catalogue = Catalogue.load(PAYLOADS / "js-models")
    am103 = UplinkToDecode(
        "test-js-am103", 85, bytes.fromhex("0367180104686D077DC501"), None, RECV, {}
    )
    results = catalogue.decode_batch(
        [
            _uplink(5, "test-js-moody", litres_per_pulse="2"),
            am103,
            _uplink(0xDD, "test-js-moody"),
            _uplink(1, "test-js-broken"),
            _uplink(6, "test-js-moody"),
        ]
    )
    assert results[0].readings == [Reading("water.index", 10.0, "L", None)]
    assert results[0].codec == "js:../js/moody.js"
    assert results[0].codec_version == "0.0.1"
    assert results[1].readings == [
        Reading("air.co2", 453.0, "ppm", None),
        Reading("air.temperature", 28.0, "°C", None),
    ]
    assert results[2].error == "codec threw: bad frame 221"
    assert results[3].error is not None and results[3].error.startswith("codec runtime failed")
    assert results[4].readings == [Reading("water.index", 6.0, "L", None)]


def test_a_forked_worker_starts_its_own_sandbox() -> None:
    import os

    codec = JsCodec(JS / "moody.js")
    assert codec.decode_batch([_uplink(1)])[0].error is None
    pid = os.fork()
    if pid == 0:  # the child, as a Celery prefork worker would be
        try:
            ok = codec.decode_batch([_uplink(2)])[0].data["value"] == 2
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert codec.decode_batch([_uplink(3)])[0].data["value"] == 3


def test_one_sandbox_runs_codec_after_codec_without_running_out_of_files(
    tmp_path: Path,
) -> None:
    # A worker's sandbox lives as long as the worker and meets a new codec file with each
    # operator model and each of its versions; a V8 context holds file descriptors, and the
    # sandbox may open few. Sixty files, one after the other, then the first one again.
    source = (JS / "moody.js").read_text(encoding="utf-8")
    files = []
    for n in range(60):
        path = tmp_path / f"codec-v{n}.js"
        path.write_text(source, encoding="utf-8")
        files.append(path)
    for path in [*files, files[0]]:
        [result] = JsCodec(path).decode_batch([_uplink(5)])
        assert result.error is None and result.data["value"] == 5, (path.name, result)

"""Decode cost per uplink: built-in decoders, the full catalogue path, and a JS codec.

Run: `.venv/bin/python -m bench.decode [--uplinks N] [--batch B]`. Prints a table and
writes bench/results/decode.json. The JS codec is measured through the sandbox the
workers use (one call per batch vs one call per uplink), and directly in V8 in this
process, to separate V8's own cost from the sandbox's pipe. See ingest/decode/README.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import yaml

from ingest.decode import Catalogue, UplinkToDecode
from ingest.decode.catalogue import JS_DIR, load_builtin
from ingest.decode.codecs import milesight_am103, milesight_em300_di, milesight_em400_mud
from ingest.decode.jsruntime import JsCodec

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "tests" / "payloads" / "vectors"
RESULTS = ROOT / "bench" / "results" / "decode.json"
RECV = datetime(2025, 1, 1, tzinfo=UTC)


def _frames(catalogue: Catalogue, n: int, rng: random.Random) -> list[UplinkToDecode]:
    """n uplinks over every built-in model: simulator frames and vendor example frames."""
    items: list[UplinkToDecode] = []
    makers: list[Callable[[], UplinkToDecode]] = [
        lambda: UplinkToDecode(
            "milesight-am103",
            *milesight_am103.encode(
                {
                    "battery": rng.randint(20, 100),
                    "temperature": rng.randint(150, 280) / 10,
                    "humidity": rng.randint(60, 140) / 2,
                    "co2": rng.randint(400, 2500),
                }
            ),
            None,
            RECV,
            {},
        ),
        lambda: UplinkToDecode(
            "milesight-em400-mud",
            *milesight_em400_mud.encode(
                {"battery": 90, "temperature": 12.5, "distance": rng.randint(100, 1500)}
            ),
            None,
            RECV,
            {"container_depth_mm": "1500"},
        ),
        lambda: UplinkToDecode(
            "milesight-em300-di",
            *milesight_em300_di.encode({"battery": 95, "pulse": rng.randint(0, 10**7)}),
            None,
            RECV,
            {"litres_per_pulse": "10"},
        ),
    ]
    for path in sorted(VECTORS.glob("*.yaml")):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        for vector in spec["vectors"]:
            data = bytes.fromhex(vector["hex"].replace(" ", ""))

            def make(m: str = spec["model"], v: dict = vector, d: bytes = data) -> UplinkToDecode:
                return UplinkToDecode(m, v["f_port"], d, None, RECV, v.get("variables", {}))

            makers.append(make)
    for i in range(n):
        items.append(makers[i % len(makers)]())
    return items


def _per_uplink_us(run: Callable[[], object], count: int, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uplinks", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--js-single", type=int, default=500, help="uplinks for one-call-each")
    args = parser.parse_args()
    rng = random.Random(42)
    catalogue = Catalogue.load()
    items = _frames(catalogue, args.uplinks, rng)
    batches = [items[i : i + args.batch] for i in range(0, len(items), args.batch)]
    results: dict[str, float] = {}

    decoders = {m.id: load_builtin(m.codec.builtin) for m in catalogue.models.values()
                if m.codec and m.codec.builtin}  # fmt: skip

    def builtin_only() -> None:
        for item in items:
            decoders[item.model_id](item.f_port, item.data)

    def catalogue_batches() -> None:
        for batch in batches:
            catalogue.decode_batch(batch)

    results["builtin_decode_us"] = _per_uplink_us(builtin_only, len(items))
    results["catalogue_decode_batch_us"] = _per_uplink_us(catalogue_batches, len(items))

    # JS: the AM103 port, on AM103 frames.
    am103 = [
        UplinkToDecode("x", i.f_port, i.data, None, RECV, {})
        for i in items
        if i.model_id == "milesight-am103"
    ]
    am103 = (am103 * (args.uplinks // max(1, len(am103)) + 1))[: args.uplinks]
    js_batches = [am103[i : i + args.batch] for i in range(0, len(am103), args.batch)]
    codec = JsCodec(JS_DIR / "milesight" / "am103.js")
    codec.decode_batch(am103[:10])  # start the sandbox and compile the codec

    def js_batched() -> None:
        for batch in js_batches:
            codec.decode_batch(batch)

    single = am103[: args.js_single]

    def js_single() -> None:
        for item in single:
            codec.decode_batch([item])

    results["js_sandbox_batched_us"] = _per_uplink_us(js_batched, len(am103))
    results["js_sandbox_one_call_per_uplink_us"] = _per_uplink_us(js_single, len(single))

    # The same codec straight in V8 in this process, without the sandbox's pipe.
    from py_mini_racer import MiniRacer

    from ingest.decode.jssandbox import WRAPPER

    ctx = MiniRacer()
    ctx.eval(WRAPPER)
    ctx.eval(codec.path.read_text(encoding="utf-8"))
    inputs = JsCodec.inputs(am103)
    raw_batches = [
        json.dumps(inputs[i : i + args.batch], separators=(",", ":"))
        for i in range(0, len(inputs), args.batch)
    ]

    def v8_batched() -> None:
        for text in raw_batches:
            json.loads(ctx.eval(f"__hv({text})"))

    def v8_call_each() -> None:
        for record in inputs[: args.js_single]:
            ctx.call("decodeUplink", {"bytes": record["b"], "fPort": record["f"], "variables": {}})

    results["js_v8_in_process_batched_us"] = _per_uplink_us(v8_batched, len(inputs))
    results["js_v8_in_process_call_per_uplink_us"] = _per_uplink_us(v8_call_each, args.js_single)

    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or "?"},
        "uplinks": len(items),
        "batch": args.batch,
        "models": sorted(decoders),
        "per_uplink_us": {k: round(v, 2) for k, v in results.items()},
        "uplinks_per_s_one_core": {k: round(1e6 / v) for k, v in results.items()},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    width = max(map(len, results))
    print(f"decode cost per uplink ({len(items)} uplinks, batches of {args.batch})")
    for key, value in results.items():
        print(f"  {key:<{width}}  {value:9.2f} µs   {1e6 / value:>10,.0f} uplinks/s")
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

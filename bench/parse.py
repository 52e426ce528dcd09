"""Validation cost per uplink: the event validators of a baseline revision against the
current ones, in one run, on the same uplinks.

Run: `.venv/bin/python -m bench.parse [--baseline REV] [--uplinks N] [--rounds R]`.
The baseline's `ingest/chirpstack_schema.py` is read from git (default: the commit where
this branch left `main`, else HEAD) and compiled in this process next to the current one.
Both validate the same simulator uplinks (JSON as ChirpStack writes it); the current
`parse()` (validation plus the envelope checks) and its binary protobuf path are measured
too. Times are the measuring thread's CPU time (time.thread_time), which other processes
on a shared machine disturb far less than wall time. Rounds alternate baseline and current
so that a load that changes during the run affects both alike; the best round (least
disturbed) and the median are reported. The load average is recorded and the run
labelled `loaded` when it exceeds the CPU count. Writes bench/results/parse.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from chirpstack_api import integration

from hypervision.simulator import Simulator
from hypervision.tenancy.spec import load_dir
from ingest.chirpstack import Envelope, parse
from ingest.chirpstack_schema import validator_for
from ingest.decode import Catalogue

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "parse.json"
TENANTS = ROOT / "tests" / "payloads" / "tenants"


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()


def _baseline_module(rev: str) -> types.ModuleType:
    source = _git("show", f"{rev}:ingest/chirpstack_schema.py")
    module = types.ModuleType("baseline_chirpstack_schema")
    module.__file__ = f"{rev}:ingest/chirpstack_schema.py"
    sys.modules[module.__name__] = module  # pydantic resolves annotations through it
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def _uplinks(n: int) -> list[tuple[str, bytes]]:
    simulator = Simulator(load_dir(TENANTS), Catalogue.load(), seed=7)
    devices = simulator.devices
    return [simulator.uplink(devices[i % len(devices)]) for i in range(n)]


def _timed(run: Callable[[], object], count: int) -> float:
    start = time.thread_time()
    run()
    return (time.thread_time() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", default=None, help="git revision (default: merge-base "
                        "with main)")
    parser.add_argument("--uplinks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--results", type=Path, default=RESULTS.parent,
                        help="folder for parse.json")
    args = parser.parse_args()
    rev = args.baseline
    if rev is None:
        try:
            rev = _git("merge-base", "HEAD", "main")
        except subprocess.CalledProcessError:
            rev = "HEAD"
    rev = _git("rev-parse", "--short", rev)

    baseline = _baseline_module(rev).validator_for(integration.UplinkEvent.DESCRIPTOR)
    current = validator_for(integration.UplinkEvent.DESCRIPTOR)
    items = _uplinks(args.uplinks)
    payloads = [payload for _, payload in items]
    envelopes = [Envelope.from_topic(t, p, 0.0) for t, p in items]
    binary = [Envelope.from_topic(e.origin, parse(e, 1 << 20).message().SerializeToString(),
                                  0.0, "protobuf") for e in envelopes[: args.uplinks // 5]]
    for payload in payloads:  # both accept every uplink, or the comparison means nothing
        baseline.validate_json(payload)
        current.validate_json(payload)

    runs: dict[str, Callable[[], object]] = {
        "baseline_validator": lambda: [baseline.validate_json(p) for p in payloads],
        "current_validator": lambda: [current.validate_json(p) for p in payloads],
        "current_parse_json": lambda: [parse(e, 1 << 20) for e in envelopes],
        "current_parse_protobuf": lambda: [parse(e, 1 << 20) for e in binary],
    }
    counts = {"current_parse_protobuf": len(binary)}
    rounds: dict[str, list[float]] = {name: [] for name in runs}
    load_before = os.getloadavg()
    for _ in range(args.rounds):
        for name, run in runs.items():
            rounds[name].append(_timed(run, counts.get(name, len(payloads))))
    load_after = os.getloadavg()
    median = {name: statistics.median(values) for name, values in rounds.items()}
    best = {name: min(values) for name, values in rounds.items()}
    cpus = os.cpu_count() or 1
    loaded = max(load_before[0], load_after[0]) > cpus
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": cpus,
                    "load_average_1_5_15_before": [round(x, 2) for x in load_before],
                    "load_average_1_5_15_after": [round(x, 2) for x in load_after],
                    "label": "loaded" if loaded else "quiet"},
        "baseline": rev,
        "current": _git("rev-parse", "--short", "HEAD"),
        "uplinks": len(payloads),
        "rounds": args.rounds,
        "clock": "thread CPU time",
        "per_uplink_us_best": {k: round(v, 2) for k, v in best.items()},
        "per_uplink_us_median": {k: round(v, 2) for k, v in median.items()},
        "current_over_baseline_best": round(best["current_validator"]
                                            / best["baseline_validator"], 3),
        "current_over_baseline_median": round(median["current_validator"]
                                              / median["baseline_validator"], 3),
    }
    out = args.results / RESULTS.name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"validation cost per uplink, thread CPU time ({len(payloads)} uplinks,"
          f" {args.rounds} rounds; machine {report['machine']['label']}, load"
          f" {load_before[0]:.1f} → {load_after[0]:.1f} on {cpus} CPUs)")
    print(f"  {'':<24} {'best':>8}    {'median':>8}")
    for name in runs:
        print(f"  {name:<24} {best[name]:8.2f} µs {median[name]:8.2f} µs")
    print(f"  current / baseline validator: {report['current_over_baseline_best']} (best),"
          f" {report['current_over_baseline_median']} (median)")
    print(f"written to {out}")


if __name__ == "__main__":
    main()

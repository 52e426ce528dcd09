"""Smoke tests: each benchmark script runs on a tiny size and writes its JSON, so that the
scripts keep working as the code they measure changes. No figure is asserted: speed
belongs in the benchmarks themselves (bench/README.md)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.bench.conftest import run_bench

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_the_ingest_benchmark_stores_every_uplink_of_a_tiny_load(
    bench_services: Path, tmp_path: Path
) -> None:
    run_bench("bench.ingest", "--uplinks", "2000", "--naive-uplinks", "200",
              "--latency-uplinks", "1000", "--latency-rate", "1000",
              "--profile-uplinks", "1000", "--members", "2", "--devices-per-member", "60",
              "--results", str(tmp_path))
    result = json.loads((tmp_path / "ingest.json").read_text(encoding="utf-8"))
    for phase in ("naive", "throughput", "latency"):
        figures = result[phase]
        assert figures["complete"], phase
        assert figures["uplinks_stored"] == figures["uplinks_published"] > 0, phase
        assert figures["dead_letters"] == 0, phase
        assert figures["latency_ms"]["seen"] > 0, phase
        assert figures["processes"]["postgres"]["cpu_s"] >= 0, phase
    assert result["throughput"]["uplinks_published"] == 2000
    assert {"uplinks_per_s", "ratio_to_naive", "p99_publish_to_visible_ms"} <= set(
        result["targets"])
    profile = json.loads((tmp_path / "ingest_profile.json").read_text(encoding="utf-8"))
    if shutil.which("py-spy") or (Path(sys.executable).parent / "py-spy").exists():
        assert {"receiver0", "worker0"} <= set(profile["per_process"])


def test_the_dashboards_benchmark_runs_every_query_on_a_tiny_fleet(
    bench_services: Path, tmp_path: Path
) -> None:
    run_bench("bench.dashboards", "--devices", "120", "--members", "2", "--days", "8",
              "--rollup-days", "10", "--repeat", "2", "--reload", "--results", str(tmp_path))
    result = json.loads((tmp_path / "dashboards.json").read_text(encoding="utf-8"))
    broken = [q for q in result["queries"] if "error" in q]
    assert not broken, broken
    measured = [q for q in result["queries"] if "p95_ms" in q]
    assert len(measured) >= 15
    assert result["data"]["measurements"]["rows"] > 0


def test_the_report_writes_the_figures_of_the_results_into_the_readme(tmp_path: Path) -> None:
    from bench import report

    results = tmp_path / "results"
    results.mkdir()
    (results / "ingest.json").write_text(json.dumps({
        "when": "2030-01-01T00:00:00+00:00", "machine": {"cores": 2, "cpu": "test cpu"},
        "summary": [{"figure": "ingest sustained", "value": 12345, "unit": "uplinks/s",
                     "target": ">= 10,000", "met": True}],
    }), encoding="utf-8")
    (results / "rollups.json").write_text(json.dumps({"when": "2030-01-02", "hourly_s": 1.5}),
                                          encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text(f"# bench\n\n{report.START}\nold\n{report.END}\n\nafter\n",
                      encoding="utf-8")
    assert report.main(["--results", str(results), "--readme", str(readme), "--check"]) == 1
    assert report.main(["--results", str(results), "--readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert "12,345" in text and "2030-01-01" in text and "test cpu" in text
    assert "hourly_s | 1.5" in text and "old" not in text and text.endswith("after\n")
    assert report.main(["--results", str(results), "--readme", str(readme), "--check"]) == 0

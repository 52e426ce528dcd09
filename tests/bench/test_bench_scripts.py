"""Smoke tests: each benchmark script runs on a tiny size and writes its JSON, so that the
scripts keep working as the code they measure changes. No figure is asserted: speed
belongs in the benchmarks themselves (bench/README.md)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.conftest import run_bench
from tests.conftest import REPO

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
        # The sampler watched the database server's processes during every phase...
        assert figures["processes"]["postgres"]["processes_seen"] >= 1, phase
    # ... and storing 2,000 uplinks cost it some CPU (figures are rounded to 0.1 s).
    assert result["throughput"]["processes"]["postgres"]["cpu_s"] > 0
    assert result["throughput"]["uplinks_published"] == 2000
    assert {"uplinks_per_s", "ratio_to_naive", "p99_publish_to_visible_ms"} <= set(
        result["targets"])
    profile = json.loads((tmp_path / "ingest_profile.json").read_text(encoding="utf-8"))
    if shutil.which("py-spy") or (Path(sys.executable).parent / "py-spy").exists():
        assert {"receiver0", "worker0"} <= set(profile["per_process"])


def test_the_ingest_benchmark_runs_with_members_on_two_servers(
    bench_services: Path, tmp_path: Path
) -> None:
    run_bench("bench.ingest", "--servers", "2", "--uplinks", "2000", "--naive-uplinks", "0",
              "--latency-uplinks", "0", "--profile-uplinks", "0", "--members", "2",
              "--devices-per-member", "60", "--results", str(tmp_path))
    result = json.loads((tmp_path / "ingest.json").read_text(encoding="utf-8"))
    figures = result["throughput"]
    assert result["config"]["servers"] == 2
    assert figures["complete"]
    assert figures["uplinks_stored"] == figures["uplinks_published"] == 2000
    assert figures["outcomes_not_stored"] == 0 and figures["dead_letters"] == 0
    # The second server's PostgreSQL was watched, and wrote its member's rows.
    assert figures["processes"]["postgres_second"]["cpu_s"] > 0


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
    # Every chart of every dashboard template has its query, measured.
    from hypervision.superset import templates

    charts = {f"{d.name}/{c.name}" for d in templates.load().dashboards for c in d.charts}
    assert charts <= {q.get("chart") for q in measured}, charts - {
        q.get("chart") for q in measured}
    assert result["data"]["measurements"]["rows"] > 0
    # Each chart is measured on rows: the data set has every kind of device the templates
    # chart (lighting cabinets included), uplinks heard by gateways, battery levels. The
    # collection round needs a depot, which the benchmark's members do not declare.
    empty = {q["chart"] for q in measured if q.get("chart") and q["rows"] == 0}
    assert empty <= {"waste/round", "waste/round_map"}, empty
    pages = [q for q in result["queries"] if q.get("source") == "console"]
    names = {q["query"] for q in pages}
    assert {"console: home", "console: devices (first page)", "console: alerts inbox",
            "console: journal", "console: my account",
            "console: operators' network page"} <= names, names
    assert len(pages) >= 9 and all("p95_ms" in q for q in pages), pages
    assert result["targets"]["console_p95_ms"]["worst"] is not None


def test_the_export_benchmark_measures_two_revisions_side_by_side(
    bench_services: Path, tmp_path: Path
) -> None:
    run_bench("bench.export", "--rows", "8000", "--uplinks", "2000", "--baseline", "HEAD",
              "--results", str(tmp_path))
    result = json.loads((tmp_path / "export.json").read_text(encoding="utf-8"))
    assert result["memory_bound_held"] and len(result["results"]) == 6
    for entry in result["results"]:
        rows = 8000 if entry["kind"] == "measurements" else 2000
        for figures in (entry["full"], entry["baseline"]["full"]):
            assert figures["rows"] == rows, entry
            assert figures["client_cpu_s_per_million_rows"] > 0, entry
            # One export of a few thousand rows can take PostgreSQL less than a clock
            # tick; the sum over all of them below cannot.
            assert figures["postgres_cpu_s_per_million_rows"] >= 0, entry
        # The baseline ran the revision's code, extracted from git, not the working tree.
        assert "bench-export-" in entry["baseline"]["full"]["code"]
        assert entry["full"]["code"].startswith(str(REPO))
        assert entry["cpu_per_row_current_over_baseline"] > 0
    assert sum(e["full"]["postgres_cpu_s_per_million_rows"] for e in result["results"]) > 0


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


def test_the_parse_benchmark_compares_the_validators_of_two_revisions(tmp_path: Path) -> None:
    # No services: it only parses in its own process.
    done = subprocess.run([sys.executable, "-m", "bench.parse", "--baseline", "HEAD",
                           "--uplinks", "40", "--rounds", "2", "--results", str(tmp_path)],
                          cwd=Path(__file__).resolve().parents[2], capture_output=True,
                          text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "parse.json").read_text(encoding="utf-8"))
    assert result["uplinks"] == 40 and result["machine"]["label"] in ("loaded", "quiet")
    assert set(result["per_uplink_us_best"]) == {
        "baseline_validator", "current_validator", "current_parse_json",
        "current_parse_protobuf"}

"""Every dashboard template, as its users see it in a browser: Debian's Chromium, driven by
playwright-core (tests/superset/screenshots.mjs), logs in through the login page, opens
each dashboard, waits for its charts and takes a full-page screenshot, kept under
tests/superset/artefacts/. A chart that shows an error or no data fails the test, and so
does any request that leaves the machine without the Content-Security-Policy refusing it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hypervision.superset import process
from tests.superset.conftest import ALPHA_USER, OPERATOR_USER, PASSWORD, Deployment

pytestmark = pytest.mark.services

HERE = Path(__file__).resolve().parent
ARTEFACTS = HERE / "artefacts"


def screenshots(deployment: Deployment, username: str, dashboards: list[str],
                out: Path = ARTEFACTS) -> list[dict[str, Any]]:
    """Run screenshots.mjs; returns its report, one entry per dashboard."""
    if not (HERE / "node_modules" / "playwright-core").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True,
                       capture_output=True)
    options = {"base": process.url(deployment.settings), "username": username,
               "outDir": str(out), "dashboards": dashboards, "timeoutMs": 90000}
    result = subprocess.run(
        ["node", str(HERE / "screenshots.mjs"), json.dumps(options)], cwd=HERE,
        env={**os.environ, "SCREENSHOT_PASSWORD": PASSWORD},
        capture_output=True, text=True, timeout=600, check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"screenshots.mjs printed no report:\n{result.stdout}\n{result.stderr}"
    return [json.loads(line) for line in lines]


def problems(report: list[dict[str, Any]]) -> dict[str, Any]:
    return {r["dashboard"]: {"status": r["status"], "charts": r["charts"],
                             "outside": r["outside"]}
            for r in report if not r["ok"]}


@pytest.fixture(scope="module")
def artefacts() -> Path:
    shutil.rmtree(ARTEFACTS, ignore_errors=True)
    ARTEFACTS.mkdir(parents=True)
    return ARTEFACTS


def test_every_member_dashboard_renders_with_data_for_a_member_user(
        superset: Deployment, artefacts: Path) -> None:
    slugs = [f"alpha-{name}" for name in sorted(superset.dashboards["alpha"])]
    report = screenshots(superset, ALPHA_USER, slugs, artefacts)
    assert problems(report) == {}
    for entry in report:
        assert entry["title"].endswith("Commune Alpha (test)")
        assert len(entry["charts"]) >= 4
        assert Path(entry["file"]).stat().st_size > 50_000  # a picture, not a blank page
    # The front end's tracking pixel was tried, and refused by the browser.
    assert all(o["ended"] == "csp" for entry in report for o in entry["outside"])


def test_the_operator_dashboard_renders_and_a_members_dashboard_fails_the_check(
        superset: Deployment, artefacts: Path, tmp_path: Path) -> None:
    report = screenshots(superset, OPERATOR_USER, ["operator", "alpha-water"], tmp_path)
    assert problems(report[:1]) == {}
    shutil.copy(report[0]["file"], artefacts / "operator.png")
    # The operator may not open a member's dashboard: the check must report it.
    refused = report[1]
    assert not refused["ok"]
    assert refused["status"] in (403, 404)
    assert refused["charts"] == []

"""Every dashboard template, as its users see it in a browser: Debian's Chromium, driven by
playwright-core (tests/superset/screenshots.mjs), signs in through the platform, opens
each dashboard, waits for its charts and takes a full-page screenshot, kept under
tests/superset/artefacts/. A chart that shows an error or no data fails the test, and so
does any request that leaves the machine without the Content-Security-Policy refusing it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from hypervision.superset import server
from tests.superset import browser
from tests.superset.browser import problems
from tests.superset.conftest import (
    ALPHA_USER,
    OPERATOR_USER,
    PASSWORD,
    Deployment,
    recovery_code,
)

pytestmark = pytest.mark.services

ARTEFACTS = Path(__file__).resolve().parent / "artefacts"


def screenshots(deployment: Deployment, username: str, dashboards: list[str],
                out: Path = ARTEFACTS) -> list[dict[str, Any]]:
    return browser.screenshots(server.url(deployment.settings), username, PASSWORD,
                               dashboards, out, codes=[recovery_code(deployment.settings,
                                                                     username)]
                               if username == OPERATOR_USER else None)


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

"""Dashboards in a real browser: Debian's Chromium driven by playwright-core
(tests/superset/screenshots.mjs) signs in as a person through the platform (Superset's
login page sends the browser to the console's), opens
each dashboard, waits for its charts, takes a full-page screenshot and reports, per
dashboard, each chart's state (rendered, empty, error), the answers of the chart data API
and any request that tried to leave the machine."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def screenshots(base: str, username: str, password: str, dashboards: list[str],
                out: Path, timeout_ms: int = 90000,
                codes: list[str] | None = None) -> list[dict[str, Any]]:
    """Run screenshots.mjs as the platform account `username` (`codes`: recovery codes,
    for an account with a second factor); returns its report, one entry per dashboard
    (in order)."""
    if not (HERE / "node_modules" / "playwright-core").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True,
                       capture_output=True)
    options = {"base": base, "username": username, "outDir": str(out),
               "dashboards": dashboards, "timeoutMs": timeout_ms, "codes": codes or []}
    result = subprocess.run(
        ["node", str(HERE / "screenshots.mjs"), json.dumps(options)], cwd=HERE,
        env={**os.environ, "SCREENSHOT_PASSWORD": password},
        capture_output=True, text=True, timeout=120 + len(dashboards) * timeout_ms / 1000,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"screenshots.mjs printed no report:\n{result.stdout}\n{result.stderr}"
    return [json.loads(line) for line in lines]


def problems(report: list[dict[str, Any]]) -> dict[str, Any]:
    """The dashboards that did not render fully, with what went wrong."""
    return {r["dashboard"]: {"status": r["status"], "charts": r["charts"],
                             "outside": r["outside"]}
            for r in report if not r["ok"]}


def charts_without_rows(entry: dict[str, Any], chart_ids: dict[int, str]) -> dict[str, str]:
    """Charts of a dashboard (id -> name) whose data API answers had no rows, or failed,
    or that asked nothing at all; name -> what happened."""
    found: dict[str, str] = {}
    for chart, name in chart_ids.items():
        answers = [q for q in entry.get("queries", []) if q.get("chart") == chart]
        if not answers:
            found[name] = "no chart data request"
        elif not any(q["status"] == 200 and (q["rows"] or 0) > 0 for q in answers):
            found[name] = "; ".join(f"HTTP {q['status']}, {q['rows']} rows"
                                    + (f", {q['error']}" if q.get("error") else "")
                                    for q in answers)
    return found

"""The console in a real browser (Debian's Chromium driven by playwright-core, browse.mjs):
every page as each role with axe-core's WCAG 2.1 A/AA rules, keyboard-only sign-in and
skip link, no request leaving the machine, no Content-Security-Policy complaint, an
alert clicked through its life cycle, an export downloaded and compared row by row with
the database. Screenshots land in tests/console/artefacts/ (the README's come from there).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hypervision.db import connect_admin
from tests.api.conftest import World
from tests.console import gamma
from tests.console.conftest import PASSWORD, Gamma, recovery_codes

pytestmark = [pytest.mark.services, pytest.mark.slow]

HERE = Path(__file__).parent
ARTEFACTS = HERE / "artefacts"
AIR = gamma.dev_eui("air", 3)
M = "/console/m/gamma"
NODE = shutil.which("node")


def _pages(*paths: str) -> list[dict[str, Any]]:
    return [{"path": p} for p in paths]


@pytest.fixture(scope="module")
def browsed(served: str, gamma_member: Gamma, console_world: World) -> dict[str, Any]:
    if NODE is None or not (HERE / "node_modules" / "axe-core").exists():
        pytest.fail("node and tests/console/node_modules are needed: run infra/install.sh")
    today = dt.date.today()
    plan = {
        "base": served, "outDir": str(ARTEFACTS), "password": PASSWORD,
        "codes": recovery_codes(console_world),
        "visits": [
            {"persona": "gabrielle", "email": "gabrielle@gamma.example.org", "keyboard": True,
             "pages": [
                 {"path": M, "screenshot": "home"},
                 {"path": f"{M}/devices", "screenshot": "devices", "fullPage": True},
                 {"path": f"{M}/devices/{AIR}?metric=air.co2&period=7d",
                  "screenshot": "device", "fullPage": True},
                 {"path": f"{M}/alerts", "screenshot": "alerts"},
                 *_pages(f"{M}/exports", f"{M}/journal/verify", f"{M}/alerts?state=closed")]},
            {"persona": "gaston", "email": "gaston@gamma.example.org",
             "pages": _pages(M, f"{M}/devices", f"{M}/devices/{gamma.dev_eui('bin', 2)}",
                             f"{M}/alerts", f"{M}/exports", f"{M}/journal",
                             # The English switch, then a page in English.
                             f"/console/lang/en?next={M}/devices")},
            {"persona": "dora", "email": "dora@gamma.example.org",
             "pages": [{"path": f"{M}/journal", "screenshot": "journal", "fullPage": True}]},
            {"persona": "olga", "email": "olga@syndic.example.org",
             "pages": [{"path": "/console/operator", "screenshot": "operator",
                        "fullPage": True},
                       *_pages(f"{M}/devices", f"{M}/alerts")]},
            {"persona": "bob", "email": "bob@beta.example.org",
             "pages": _pages(M, "/console/operator")},
        ],
        "lifecycle": {"email": "gabrielle@gamma.example.org", "slug": "gamma",
                      "alert": gamma_member.seeded["alerts"][0],
                      "ackComment": "Fenêtres ouvertes, on surveille",
                      "closeComment": "Ventilation réparée"},
        "export": {"email": "gabrielle@gamma.example.org", "slug": "gamma",
                   "devices": [AIR, gamma.dev_eui("bin", 1)],
                   "searches": [{"q": "CO2 salle 3", "device": AIR},
                                {"q": "verre 1", "device": gamma.dev_eui("bin", 1)}],
                   "start": (today - dt.timedelta(days=2)).isoformat(),
                   "end": today.isoformat()},
    }
    done = subprocess.run([NODE, str(HERE / "browse.mjs"), json.dumps(plan)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["plan"] = plan
    return result


EXPECTED = {("gaston", f"{M}/journal"): 403, ("bob", M): 404,
            ("bob", "/console/operator"): 403}


def test_every_page_loads_for_its_role_and_refuses_the_others(browsed: dict) -> None:
    seen = {(p["persona"], p["path"]): p["status"] for p in browsed["pages"]}
    assert len(seen) == sum(len(v["pages"]) for v in browsed["plan"]["visits"])
    for key, status in seen.items():
        assert status == EXPECTED.get(key, 200), key


def test_axe_finds_no_violation_on_any_page(browsed: dict) -> None:
    found = {p["path"]: p["violations"] for p in browsed["pages"] if p["violations"]}
    assert found == {}
    assert all(p["passes"] > 10 for p in browsed["pages"])
    langs = {p["path"]: p["lang"] for p in browsed["pages"]}
    assert langs.pop(f"/console/lang/en?next={M}/devices") == "en"
    assert set(langs.values()) == {"fr"}


def test_no_request_leaves_the_machine_and_the_policy_is_never_breached(
        browsed: dict) -> None:
    assert browsed["outside"] == []
    assert browsed["csp"] == []


def test_signing_in_and_skipping_to_the_content_work_by_keyboard(browsed: dict) -> None:
    keys = browsed["keyboard"]
    assert keys["firstTab"] == "skip" and keys["tabsToEmail"] <= 4
    assert keys["landed"] == M
    assert keys["skipFocused"] == "skip" and keys["afterSkip"] == "main"


def test_an_alert_is_acknowledged_then_resolved_by_clicks_and_audited(
        browsed: dict, console_world: World) -> None:
    life = browsed["lifecycle"]
    assert "prise en charge" in life["afterAck"] and "gabrielle@gamma.example.org" in life[
        "afterAck"]
    assert life["finalState"] == "résolue"
    assert "Fenêtres ouvertes, on surveille" in life["history"]
    assert "Ventilation réparée" in life["history"]
    alert = browsed["plan"]["lifecycle"]["alert"]
    with connect_admin(console_world.settings) as conn:
        row = conn.execute("SELECT state, acknowledged_by, closed_by, close_reason"
                           " FROM tenant_gamma.alerts WHERE id = %s", (alert,)).fetchone()
        trail = conn.execute(
            "SELECT action, params ->> 'reason', before ->> 'state', after ->> 'state'"
            " FROM hv.audit_log WHERE member_slug = 'gamma' AND target = %s ORDER BY id",
            (f"alert:{alert}",)).fetchall()
    actor = "user:gabrielle@gamma.example.org"
    assert row == ("closed", actor, actor, "Ventilation réparée")
    assert [t for t in trail if t[0] != "alerts.read"] == [
        ("alerts.acknowledge", "Fenêtres ouvertes, on surveille", "open", "acknowledged"),
        ("alerts.close", "Ventilation réparée", "acknowledged", "closed")]


def test_the_downloaded_export_matches_the_database_row_by_row(
        browsed: dict, console_world: World) -> None:
    export = browsed["export"]
    assert export["name"] == "gamma-measurements.csv"
    assert "Terminé" in export["status"]
    with open(export["path"], newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    plan = browsed["plan"]["export"]
    start = dt.date.fromisoformat(plan["start"])
    end = dt.date.fromisoformat(plan["end"]) + dt.timedelta(days=1)
    from hypervision.console.pages.common import day_start

    with connect_admin(console_world.settings) as conn:
        expected = conn.execute(
            "SELECT time, dev_eui, metric, value FROM tenant_gamma.measurements"
            " WHERE dev_eui = ANY(%s) AND time >= %s AND time < %s ORDER BY time, dev_eui,"
            " metric", (plan["devices"], day_start(start), day_start(end))).fetchall()
    assert len(rows) == len(expected) > 0
    got = sorted((dt.datetime.fromisoformat(r["time"].replace("Z", "+00:00")),
                  r["dev_eui"], r["metric"], float(r["value"])) for r in rows)
    assert got == sorted((t, d, m, float(v)) for t, d, m, v in expected)
    assert {r["device_name"] for r in rows} == {"CO2 salle 3", "Conteneur verre 1"}
    # Both devices were found by the search, one search after the other: the first one
    # stayed checked while the second search listed its matches; axe finds nothing
    # wrong with the form once results are shown.
    first, second = export["searches"]
    assert first["checked"] == [AIR] and "1 capteur correspond à « CO2 salle 3 »" in first[
        "found"]
    assert second["checked"] == plan["devices"] and second["listed"][0] == AIR
    assert "correspond" in second["found"] and "verre 1" in second["found"]
    assert export["searchViolations"] == []
    # The export page's history shows it, with who.
    assert "gabrielle@gamma.example.org" in export["history"]
    assert str(len(rows)) in export["history"].replace("\u202f", "")


def test_the_screenshots_were_taken(browsed: dict) -> None:
    for name in ("home", "devices", "device", "alerts", "journal", "operator", "exports",
                 "exports-search", "alert-resolved"):
        shot = ARTEFACTS / f"{name}.png"
        assert shot.exists() and shot.stat().st_size > 10_000, name


def test_a_long_device_list_shows_its_grouped_map_as_an_image(
        served: str, console_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond MAX_DOTS matching devices (five here, 400 in use) the map is an image
    fetched beside the page: it loads within the policy, and axe finds nothing."""
    from hypervision.console import svg

    monkeypatch.setattr(svg, "MAX_DOTS", 5)
    plan = {"base": served, "outDir": str(ARTEFACTS), "password": PASSWORD,
            "codes": recovery_codes(console_world, 2),
            "visits": [{"persona": "gabrielle", "email": "gabrielle@gamma.example.org",
                        "pages": [{"path": f"{M}/devices", "screenshot": "devices-grouped",
                                   "fullPage": True, "images": True}]}]}
    done = subprocess.run([NODE or "node", str(HERE / "browse.mjs"), json.dumps(plan)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    (page,) = result["pages"]
    assert page["status"] == 200 and page["violations"] == []
    assert page["images"] == [{"src": f"{M}/devices/map.svg?q=&model=&class=&building=&state=",
                               "loaded": True, "width": 760}]
    assert result["outside"] == [] and result["csp"] == []

"""The syndicate's console pages in a real browser (Debian's Chromium, driven by the
console tests' browse.mjs): an operator sees the open incidents with the time left on
their clocks, the coverage map and the statements' links; a member's reader sees its
own statement line by line; no axe-core violation, no outside request, no CSP
complaint; a member's user gets 403 on the operators' page and another member 404 on
the statement. Screenshots land in HV_TEST_DATA_DIR/screenshots/."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hypervision import accounts
from hypervision.accounts import Who
from hypervision.api.main import create_app
from hypervision.db import connect_admin
from hypervision.settings import Settings
from hypervision.syndicate import incidents
from tests.api.conftest import World
from tests.conftest import PORT_BASE
from tests.console.conftest import PASSWORD, recovery_codes, sign_in

# The syndicate tests' network and members (tests/syndicate/conftest.py); applying them
# again is idempotent.
from tests.syndicate.conftest import NETWORK, network_db
from tests.syndicate.test_costs import EXPECTED
from tests.webserver import serving

__all__ = ["network_db"]
pytestmark = [pytest.mark.services, pytest.mark.slow]
BROWSE = Path(__file__).parent / "browse.mjs"
NODE = shutil.which("node")


def test_an_operator_sees_incidents_coverage_and_statements(
    served: str, console_world: World,
) -> None:
    if NODE is None or not (BROWSE.parent / "node_modules" / "axe-core").exists():
        pytest.fail("node and tests/console/node_modules are needed: run infra/install.sh")
    now = dt.datetime.now(dt.UTC)
    with connect_admin(console_world.settings) as conn:
        iid = incidents.open_incident(
            conn, Who("user:olga@syndic.example.org"), member="gamma",
            title="Serveur de relève inaccessible", detected_at=now - dt.timedelta(hours=20),
            severity="high", significant=True, systems=["hypervision"])
        assert iid is not None
        incidents.mark_breach(conn, Who("user:olga@syndic.example.org"), iid,
                              known_at=now - dt.timedelta(hours=2),
                              data_classes=["water-consumption"])
    out = console_world.settings.data_dir / "screenshots"
    plan = {
        "base": served, "outDir": str(out), "password": PASSWORD,
        "codes": recovery_codes(console_world),
        "visits": [
            {"persona": "olga", "email": "olga@syndic.example.org",
             "pages": [{"path": "/console/syndicate", "screenshot": "console-syndicate",
                        "fullPage": True}]},
            {"persona": "bob", "email": "bob@beta.example.org",
             "pages": [{"path": "/console/syndicate"}]},
        ],
    }
    done = subprocess.run([NODE, str(BROWSE), json.dumps(plan)], capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    statuses = {p["persona"]: p["status"] for p in result["pages"]}
    assert statuses == {"olga": 200, "bob": 403}
    assert [p["violations"] for p in result["pages"]] == [[], []]
    assert result["outside"] == [] and result["csp"] == []
    assert (out / "console-syndicate.png").stat().st_size > 10_000


@pytest.fixture
def served_network(console_world: World, network_db: Settings) -> Iterator[str]:
    """The app with the test network's cost model, and a reader of bourg and of plage."""

    with connect_admin(network_db) as conn:
        for email, member in (("berthe@bourg.example.org", "bourg"),
                              ("paul@plage.example.org", "plage")):
            accounts.upsert_account(conn, Who("system:test-setup"), email=email,
                                    name=email.split("@")[0], member=member, rights=["read"])
            accounts.set_password(conn, Who("system:test-setup"), email, PASSWORD)
    port = PORT_BASE + 821
    app = create_app(console_world.settings.model_copy(update={
        "api_login_attempts": 10_000, "console_secure_cookie": False,
        "network_dir": NETWORK, "public_base_url": f"http://127.0.0.1:{port}"}))
    with serving(app, port):
        yield f"http://127.0.0.1:{port}"


def test_a_member_reads_its_statement_line_by_line(
    served_network: str, console_world: World,
) -> None:
    if NODE is None or not (BROWSE.parent / "node_modules" / "axe-core").exists():
        pytest.fail("node and tests/console/node_modules are needed: run infra/install.sh")
    out = console_world.settings.data_dir / "screenshots"
    page = "/console/m/bourg/costs?year=2025"
    plan = {
        "base": served_network, "outDir": str(out), "password": PASSWORD, "codes": {},
        "visits": [
            {"persona": "berthe", "email": "berthe@bourg.example.org",
             "pages": [{"path": page, "screenshot": "console-costs", "fullPage": True}]},
            {"persona": "paul", "email": "paul@plage.example.org", "pages": [{"path": page}]},
        ],
    }
    done = subprocess.run([NODE, str(BROWSE), json.dumps(plan)], capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    statuses = [(p["persona"], p["path"], p["status"]) for p in result["pages"]]
    assert statuses == [("berthe", page, 200), ("paul", page, 404)]
    assert result["pages"][0]["violations"] == []
    assert result["outside"] == [] and result["csp"] == []
    assert (out / "console-costs.png").stat().st_size > 10_000

    # The page's download links, through the console's session as a browser would.
    with TestClient(create_app(console_world.settings.model_copy(update={
            "api_login_attempts": 10_000, "console_secure_cookie": False,
            "network_dir": NETWORK}))) as client:
        sign_in(client, "berthe@bourg.example.org")
        csv = client.get("/console/m/bourg/costs/2025.csv")
        assert csv.status_code == 200
        total = next(r for r in csv.text.splitlines() if ",total," in r).split(",")[-2]
        assert Decimal(total) == sum(EXPECTED["bourg"].values())
        pdf = client.get("/console/m/bourg/costs/2025.pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        assert client.get("/console/m/plage/costs/2025.csv").status_code == 404

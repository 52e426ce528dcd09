"""One identity for the console and Superset, in a real browser (tests/superset/signin.mjs,
Debian's Chromium): single sign-on at the console then Superset without a second
password; the operator's TOTP code, computed by the test, after a wrong one is refused; a
person suspended between two requests is sent out of Superset and refused by the console.
The screenshots are copied to docs/screenshots/ (the README shows them).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from hypervision import accounts
from hypervision.db import connect_admin
from hypervision.superset import server
from tests.superset.conftest import (
    OPERATOR_USER,
    PASSWORD,
    PERSONAS,
    SETUP,
    TOTP_SECRET,
    Deployment,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
ARTEFACTS = HERE / "artefacts" / "signin"
DOCS = HERE.parents[1] / "docs" / "screenshots"
SUSPENDED = "sylvie@alpha.example.org"


def test_sso_totp_and_suspension_in_the_browser_for_console_and_superset(
        superset: Deployment) -> None:
    node = shutil.which("node")
    assert node and (HERE / "node_modules" / "playwright-core").exists(), \
        "node and tests/superset/node_modules are needed: run infra/install.sh"
    with connect_admin(superset.settings) as conn:
        accounts.upsert_account(conn, SETUP, email=SUSPENDED, name="Sylvie Reader",
                                member="alpha", rights=["read"], active=True)
        accounts.set_password(conn, SETUP, SUSPENDED, PASSWORD)
        # The operator's codes of earlier steps were used (enrolment, other tests): any
        # code of the current step is fresh for this run.
        conn.execute("UPDATE hv.accounts SET totp_last_step = NULL WHERE email = %s",
                     (OPERATOR_USER,))
    plan = {"superset": server.url(superset.settings), "platform": superset.platform,
            "outDir": str(ARTEFACTS), "sso": "ana",
            "operator": {"email": OPERATOR_USER, "password": PASSWORD, "secret": TOTP_SECRET},
            "suspended": {"email": SUSPENDED, "password": PASSWORD}}
    run = subprocess.Popen([node, str(HERE / "signin.mjs"), json.dumps(plan)], cwd=HERE,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    assert run.stdin is not None and run.stdout is not None
    try:
        line = run.stdout.readline().strip()
        assert line == "signed-in", line + (run.stderr.read() if run.stderr else "")
        # What `tenants apply` does for a user marked `suspended: true`.
        with connect_admin(superset.settings) as conn:
            accounts.upsert_account(conn, SETUP, email=SUSPENDED, name="Sylvie Reader",
                                    member="alpha", rights=["read"], active=False)
        out, err = run.communicate("go\n", timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err[-3000:]
    seen = json.loads(out.strip().splitlines()[-1])

    # 1. Superset has no password form; the console's page is the sign-in.
    assert seen["ssoLoginPage"]["path"] == "/console/login"
    assert seen["ssoUser"] == PERSONAS["ana"][0]
    assert seen["ssoConsole"].startswith("/console/")
    assert not seen["ssoConsole"].startswith("/console/login")
    # 2. The operator's second factor, a wrong code first.
    assert seen["operatorSecondStep"] == "/console/login/code"
    assert seen["operatorWrongCode"]["path"] == "/console/login/code"
    assert seen["operatorWrongCode"]["error"]
    assert seen["operatorUser"] == OPERATOR_USER
    # 3. Suspended: out of Superset at the next page, and refused by the console.
    assert seen["beforeSuspension"] == SUSPENDED
    assert seen["afterSuspension"]["path"] == "/console/login"
    assert seen["afterSuspension"]["user"] == 401
    assert seen["suspendedSignIn"]["path"] == "/console/login"
    assert seen["suspendedSignIn"]["error"]

    DOCS.mkdir(parents=True, exist_ok=True)
    for name in ("superset-signin-console.png", "superset-signed-in-by-sso.png",
                 "superset-suspended-refused.png"):
        shutil.copy(ARTEFACTS / name, DOCS / name)

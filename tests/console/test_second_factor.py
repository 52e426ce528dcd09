"""The second factor in a real browser (tests/console/second_factor.mjs): an admin
without a factor enrols one at his first sign-in by the QR code's key, with a code the
test computes itself; a wrong code is refused and a fresh one accepted; a recovery code
works once. The audit trail holds each step.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from hypervision import accounts
from hypervision.db import connect_admin
from tests.api.conftest import SETUP, World

pytestmark = [pytest.mark.services, pytest.mark.slow]

HERE = Path(__file__).parent
ARTEFACTS = HERE / "artefacts"
PASSWORD = "un mot de passe assez long"


def test_an_admin_enrols_then_signs_in_with_totp_and_a_recovery_code_once(
        served: str, console_world: World) -> None:
    node = shutil.which("node")
    assert node and (HERE / "node_modules" / "playwright-core").exists(), \
        "node and tests/console/node_modules are needed: run infra/install.sh"
    email = f"celine-{uuid.uuid4().hex[:6]}@gamma.example.org"
    with connect_admin(console_world.settings) as conn:
        accounts.upsert_account(conn, SETUP, email=email, name="Céline Admin",
                                member="gamma", rights=["read", "admin"])
        accounts.set_password(conn, SETUP, email, PASSWORD)
    plan = {"base": served, "email": email, "password": PASSWORD, "outDir": str(ARTEFACTS)}
    done = subprocess.run([node, str(HERE / "second_factor.mjs"), json.dumps(plan)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    assert seen["afterPassword"] == "/console/login/enrol"
    assert seen["qr"] > 1000  # an inline SVG QR code
    assert len(seen["recoveryCodes"]) == 10
    assert seen["afterEnrol"].startswith("/console/m/gamma")
    assert seen["secondSignIn"] == "/console/login/code"
    assert seen["wrongCode"]["path"] == "/console/login/code" and seen["wrongCode"]["error"]
    assert seen["goodCode"]["path"].startswith("/console/m/gamma")
    assert seen["recoveryOnce"]["path"].startswith("/console/m/gamma")
    assert seen["recoveryTwice"]["path"] == "/console/login/code"
    assert seen["recoveryTwice"]["error"]

    with connect_admin(console_world.settings) as conn:
        actions = [r[0] for r in conn.execute(
            "SELECT action FROM hv.audit_log WHERE target = %s AND action LIKE ANY"
            " (ARRAY['auth.%%', 'mfa.%%']) ORDER BY id", (email,)).fetchall()]
    assert actions.count("mfa.enrol") == 1
    assert actions.count("auth.login") == 3
    assert actions.count("auth.mfa-failed") == 2  # the wrong code, the reused recovery code
    assert actions.count("mfa.recovery-code-used") == 1

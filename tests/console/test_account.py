"""My account (console.pages.account): a person changes their password, sets up or
replaces their second factor, renews their recovery codes, and makes and revokes their
own API tokens, with the API's rules and audit entries.

Every test works on an account of its own (member gamma), so that the shared personas
keep their passwords, factors and tokens for the other tests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
from fastapi.testclient import TestClient

from hypervision import accounts, mfa
from hypervision.api.main import PREFIX as API_PREFIX
from hypervision.console.session import SESSION_COOKIE
from hypervision.db import connect_admin
from tests.api.conftest import SETUP, World
from tests.console.conftest import Gamma, csrf_of, new_client, sign_in

pytestmark = pytest.mark.services

HERE = Path(__file__).parent
ARTEFACTS = HERE / "artefacts"
PASSWORD = "un mot de passe assez long"
NEW_PASSWORD = "un autre mot de passe, plus long"


def own_account(w: World, rights: tuple[str, ...] = ("read", "export")) -> str:
    """A fresh person of member gamma with a password and no second factor."""
    email = f"gerard-{uuid.uuid4().hex[:8]}@gamma.example.org"
    with connect_admin(w.settings) as conn:
        accounts.upsert_account(conn, SETUP, email=email, name="Gérard Agent",
                                member="gamma", rights=list(rights))
        accounts.set_password(conn, SETUP, email, PASSWORD)
    return email


@pytest.fixture
def gerard(console_world: World, gamma_member: Gamma) -> Iterator[tuple[TestClient, str]]:
    email = own_account(console_world)
    with new_client(console_world) as client:
        sign_in(client, email, PASSWORD)
        yield client, email


def _post(client: TestClient, action: str, **fields: str | list[str]) -> object:
    page = client.get("/console/account")
    return client.post(action, data={"csrf": csrf_of(page.text), **fields},
                       follow_redirects=False)


def _actions(w: World, email: str) -> list[str]:
    with connect_admin(w.settings) as conn:
        return [r[0] for r in conn.execute(
            "SELECT action FROM hv.audit_log WHERE actor = %s ORDER BY id",
            (f"user:{email}",)).fetchall()]


def test_every_form_of_the_account_page_refuses_a_post_without_its_token(
        gerard: tuple[TestClient, str], console_world: World) -> None:
    client, email = gerard
    before = _actions(console_world, email)
    for action, fields in (
            ("/console/account/password", {"current": PASSWORD, "new": NEW_PASSWORD,
                                           "confirm": NEW_PASSWORD}),
            ("/console/account/tokens", {"rights": "read", "days": "3"}),
            ("/console/account/second-factor", {"secret": mfa.new_secret(), "code": "1"}),
            ("/console/account/recovery-codes", {}),
            ("/console/account/second-factor/remove", {}),
            ("/console/account/tokens/1/revoke", {})):
        answer = client.post(action, data={"csrf": "0" * 64, **fields},
                             follow_redirects=False)
        assert answer.status_code == 403, action
    assert client.get("/console/account").status_code == 200  # still signed in
    assert _actions(console_world, email) == before


def test_a_wrong_current_password_changes_nothing_and_is_audited(
        gerard: tuple[TestClient, str], console_world: World) -> None:
    client, email = gerard
    answer = _post(client, "/console/account/password", current="pas le bon mot de passe",
                   new=NEW_PASSWORD, confirm=NEW_PASSWORD)
    assert answer.status_code == 403 and 'id="password-error"' in answer.text
    short = _post(client, "/console/account/password", current=PASSWORD, new="court",
                  confirm="court")
    assert short.status_code == 400
    assert client.get("/console/account").status_code == 200
    with connect_admin(console_world.settings) as conn:
        assert accounts.check_password(accounts.password_hash(
            conn, accounts.get_account(conn, email).id), PASSWORD)  # type: ignore[union-attr]
    assert "account.password-failed" in _actions(console_world, email)
    assert "account.password" not in _actions(console_world, email)


def test_a_token_holds_at_most_the_sessions_rights_and_expires_with_it(
        gerard: tuple[TestClient, str], console_world: World) -> None:
    client, email = gerard
    beyond = _post(client, "/console/account/tokens", rights=["read", "admin"], days="30")
    assert beyond.status_code == 403
    made = _post(client, "/console/account/tokens", rights=["read"], days="700",
                 label="relevés")
    assert made.status_code == 200 and 'id="issued-secret"' in made.text
    with connect_admin(console_world.settings) as conn:
        tokens = {t.kind: t for t in accounts.list_tokens(
            conn, account_id=accounts.get_account(conn, email).id)  # type: ignore[union-attr]
            if t.state == "active"}
    personal, session = tokens["personal"], tokens["session"]
    assert personal.rights == ("read",) and personal.label == "relevés"
    assert personal.parent_id == session.id
    assert personal.expires_at == session.expires_at  # not 700 days
    assert "token.create" in _actions(console_world, email)


def test_another_persons_token_cannot_be_revoked_from_the_account_page(
        gerard: tuple[TestClient, str], console_world: World) -> None:
    client, _ = gerard
    other = console_world.fresh_token(own_account(console_world))
    answer = _post(client, f"/console/account/tokens/{other.id}/revoke")
    assert answer.status_code == 404
    with connect_admin(console_world.settings) as conn:
        assert accounts.authenticate(conn, other.secret) is not None


def test_a_session_without_the_second_factor_cannot_replace_it(
        console_world: World, gamma_member: Gamma) -> None:
    email = own_account(console_world)
    with connect_admin(console_world.settings) as conn:
        account = accounts.get_account(conn, email)
        assert account is not None
        secret = mfa.new_secret()
        assert mfa.enrol(conn, SETUP, account, secret, pyotp.TOTP(secret).now())
        # A session of the account that did not pass the factor (as a stolen cookie of a
        # sign-in by a provider that vouches for none would be).
        stolen = accounts.create_token(conn, SETUP, email=email, kind="session",
                                       expires_at=datetime.now(UTC) + timedelta(hours=1))
    with new_client(console_world) as client:
        client.cookies.set(SESSION_COOKIE, stolen.secret, path="/console")
        page = client.get("/console/account")
        assert page.status_code == 200 and 'id="enrol-link"' not in page.text
        assert client.get("/console/account/second-factor").status_code == 403
        for action in ("/console/account/second-factor", "/console/account/recovery-codes",
                       "/console/account/second-factor/remove"):
            answer = client.post(action, data={"csrf": csrf_of(page.text),
                                               "secret": mfa.new_secret(), "code": "123456"})
            assert answer.status_code == 403, action
    with connect_admin(console_world.settings) as conn:
        row = conn.execute("SELECT totp_secret FROM hv.accounts WHERE email = %s",
                           (email,)).fetchone()
    assert row == (secret,)


def test_an_account_that_needs_a_second_factor_cannot_remove_it(
        persona: dict[str, TestClient], console_world: World) -> None:
    gabrielle = persona["gabrielle"]
    page = gabrielle.get("/console/account")
    assert page.status_code == 200 and 'id="remove-factor"' not in page.text
    answer = gabrielle.post("/console/account/second-factor/remove",
                            data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert answer.status_code == 403
    with connect_admin(console_world.settings) as conn:
        account = accounts.get_account(conn, "gabrielle@gamma.example.org")
    assert account is not None and account.mfa_enrolled


@pytest.mark.slow
def test_a_person_manages_their_account_by_clicks_in_a_browser(
        served: str, console_world: World, gamma_member: Gamma) -> None:
    node = shutil.which("node")
    assert node and (HERE / "node_modules" / "playwright-core").exists(), \
        "node and tests/console/node_modules are needed: run infra/install.sh"
    email = own_account(console_world)
    plan = {"base": served, "email": email, "password": PASSWORD,
            "newPassword": NEW_PASSWORD, "slug": "gamma", "api": API_PREFIX,
            "outDir": str(ARTEFACTS)}
    done = subprocess.run([node, str(HERE / "account.mjs"), json.dumps(plan)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    assert {p["name"]: p["violations"] for p in seen["pages"] if p["violations"]} == {}
    assert len(seen["pages"]) == 5 and all(p["passes"] > 10 for p in seen["pages"])
    assert seen["outside"] == [] and seen["csp"] == []
    assert seen["signedIn"] == "/console/account"
    token = seen["token"]
    assert token["before"] == 200 and token["after"] == 401
    assert "script de relève" in token["listed"] and "révoqué" in token["notice"]
    assert seen["qr"] > 1000 and len(seen["codes"]) == 10 == len(seen["renewed"])
    assert not set(seen["codes"]) & set(seen["renewed"])
    assert "Codes de secours restants : 10" in seen["factorState"]
    assert not seen["renewOffered"] and seen["withFactor"] == "/console/account"
    assert "mot de passe est changé" in seen["changed"]
    assert "/console/login" in seen["afterChange"]  # the session ended with the change
    assert seen["oldPassword"] == "/console/login" and seen["oldPasswordError"]
    assert seen["newPassword"] == "/console/account" and email in seen["profile"]

    with connect_admin(console_world.settings) as conn:
        account = accounts.get_account(conn, email)
        assert account is not None and account.mfa_enrolled
        assert accounts.check_password(accounts.password_hash(conn, account.id),
                                       NEW_PASSWORD)
        left = mfa.recovery_codes_left(conn, account.id)
        # The old recovery codes stopped working with the renewal.
        assert mfa.verify(conn, SETUP, account, seen["codes"][0]) is None
    assert left == 9  # one renewed code signed in
    actions = _actions(console_world, email)
    for action in ("token.create", "token.revoke", "mfa.enrol", "mfa.recovery-codes",
                   "account.password", "token.revoke-all"):
        assert action in actions, action
    assert actions.count("auth.login") == 3
    for name in ("account", "account-token", "account-second-factor",
                 "account-password-changed"):
        shot = ARTEFACTS / f"{name}.png"
        assert shot.exists() and shot.stat().st_size > 10_000, name

"""Fixtures of the console tests: the API tests' world (members alpha and beta, the
syndicate's operators, a little data), with a password for each persona, and a client
per persona signed in through the login form as a person would.

Personas: alice (alpha admin), ana (alpha, read only), bob (beta admin: a stranger to
alpha), olga (operator without grant), oscar (operator with a grant on alpha).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hypervision import accounts, mfa
from hypervision.api.db import ensure_api_role
from hypervision.db import connect_admin
from hypervision.tenancy import apply as tenancy
from ingest.decode import Catalogue
from tests.api.conftest import SETUP, World, make_client, world  # noqa: F401
from tests.conftest import PORT_BASE
from tests.console import gamma
from tests.webserver import serving

PASSWORD = "correct horse battery"
EMAILS = {
    "alice": "alice@alpha.example.org",
    "ana": "ana@alpha.example.org",
    "bob": "bob@beta.example.org",
    "olga": "olga@syndic.example.org",
    "oscar": "oscar@syndic.example.org",
    "gaston": "gaston@gamma.example.org",
    "gabrielle": "gabrielle@gamma.example.org",
    "dora": "dora@gamma.example.org",
}
PORT = PORT_BASE + 811
ORIGIN = f"http://127.0.0.1:{PORT}"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@dataclass
class Gamma:
    """What the seeding of member gamma returned: alert ids, silent and low devices."""

    seeded: dict[str, Any]


@pytest.fixture(scope="session")
def gamma_member(world: World) -> Gamma:  # noqa: F811
    with connect_admin(world.settings) as conn:
        tenancy.apply(conn, [gamma.spec()], Catalogue.load(), world.settings,
                      log=lambda _: None)
        ensure_api_role(conn, world.settings)
        accounts.sync_users(conn, gamma.spec(), SETUP)
        seeded = gamma.seed(conn, dt.datetime.now(dt.UTC))
    return Gamma(seeded)


# The personas who need a second factor (admin rights, operators) enrolled this TOTP
# secret; their sign-ins use it, or one of their recovery codes.
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


# What the console's fixtures change on the personas the API tests share (alice, ana,
# bob, olga, oscar): their password and second factor. Put back as found when the
# console's tests are done (the fixtures are per package), so that tests/api can run
# after them in the same session.
_SHARED_COLUMNS = "password_hash, totp_secret, totp_enrolled_at, totp_last_step"


@pytest.fixture(scope="package")
def console_world(world: World, gamma_member: Gamma) -> Iterator[World]:  # noqa: F811
    import pyotp

    with connect_admin(world.settings) as conn:
        found = {r[0]: r[1:] for r in conn.execute(
            f"SELECT email, {_SHARED_COLUMNS} FROM hv.accounts WHERE email = ANY(%s)",
            (list(EMAILS.values()),)).fetchall()}
        codes = conn.execute(
            "SELECT account_id, code_hash, used_at FROM hv.recovery_codes"
            " WHERE account_id IN (SELECT id FROM hv.accounts WHERE email = ANY(%s))",
            (list(EMAILS.values()),)).fetchall()
        hashed = accounts.hash_password(PASSWORD)
        for email in EMAILS.values():
            # The hash itself, not accounts.set_password: that revokes every token of the
            # account, the API tests' ones included.
            conn.execute("UPDATE hv.accounts SET password_hash = %s WHERE email = %s",
                         (hashed, email))
            account = accounts.get_account(conn, email)
            if account is not None and account.needs_mfa:
                assert mfa.enrol(conn, SETUP, account, TOTP_SECRET,
                                 pyotp.TOTP(TOTP_SECRET).now()) is not None
    yield world
    with connect_admin(world.settings) as conn, conn.transaction():
        ids = [r[0] for r in conn.execute("SELECT id FROM hv.accounts WHERE email = ANY(%s)",
                                          (list(found),)).fetchall()]
        conn.execute("DELETE FROM hv.recovery_codes WHERE account_id = ANY(%s)", (ids,))
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO hv.recovery_codes (account_id, code_hash, used_at)"
                            " VALUES (%s, %s, %s)", codes)
            cur.executemany(
                "UPDATE hv.accounts SET (" + _SHARED_COLUMNS + ") = (%s, %s, %s, %s)"
                " WHERE email = %s", [(*values, email) for email, values in found.items()])
        # The console's own sessions of those people end with its tests.
        conn.execute("UPDATE hv.api_tokens SET revoked_at = now(), revoked_by = 'system:test'"
                     " WHERE kind = 'session' AND revoked_at IS NULL AND account_id = ANY(%s)",
                     (ids,))


def recovery_codes(w: World, per_account: int = 10) -> dict[str, list[str]]:
    """Fresh recovery codes of every persona with a second factor (the old ones stop
    working): what a browser run types at the second-factor step."""
    codes: dict[str, list[str]] = {}
    with connect_admin(w.settings) as conn:
        for email in EMAILS.values():
            account = accounts.get_account(conn, email)
            if account is not None and account.mfa_enrolled:
                codes[email] = mfa.new_recovery_codes(conn, SETUP, account)[:per_account]
    return codes


def second_factor_code(w: World, email: str) -> str:
    """A recovery code of `email` (each sign-in of the tests uses its own)."""
    return recovery_codes(w)[email][0]


@pytest.fixture(scope="package")
def served(console_world: World) -> Iterator[str]:
    """The API app (console included) served by uvicorn on a loopback port."""

    from hypervision.api.main import create_app

    app = create_app(console_world.settings.model_copy(update={
        "api_login_attempts": 10_000, "console_secure_cookie": False,
        "public_base_url": ORIGIN}))
    with serving(app, PORT):
        yield ORIGIN


def new_client(w: World) -> TestClient:
    return make_client(w.settings, api_login_attempts=10_000, console_secure_cookie=False)


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD,
            next_url: str = "/console/") -> None:
    page = client.get("/console/login")
    assert page.status_code == 200
    answer = client.post("/console/login", data={
        "csrf": csrf_of(page.text), "email": email, "password": password, "next": next_url},
        follow_redirects=False)
    assert answer.status_code == 303, answer.text
    if answer.headers["location"].startswith("/console/login/code"):
        from hypervision.settings import get_settings

        step = client.get(answer.headers["location"])
        answer = client.post("/console/login/code", data={
            "csrf": csrf_of(step.text), "next": next_url,
            "code": second_factor_code(World(get_settings(), {}, {}), email)},
            follow_redirects=False)
        assert answer.status_code == 303, answer.text


@pytest.fixture(scope="package")
def persona(console_world: World) -> Iterator[dict[str, TestClient]]:
    """A signed-in client per persona (their sessions live for the whole test session)."""
    clients: dict[str, TestClient] = {}
    try:
        for name, email in EMAILS.items():
            client = new_client(console_world).__enter__()
            clients[name] = client
            sign_in(client, email)
        yield clients
    finally:
        for client in clients.values():
            client.__exit__(None, None, None)

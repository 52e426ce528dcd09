"""A real Superset for the session, on its own port, with the test members alpha and beta
provisioned and three days of simulated data each, and the platform's API (console
included) served beside it: people sign in to Superset through the platform.

Personas: the API tests' (tests/api/conftest.py), the same platform accounts, with a
password (PASSWORD); those who need a second factor enrolled TOTP_SECRET and sign in with
one of their recovery codes:
- alice: alpha, read, export, admin;
- ana (ALPHA_USER): alpha, read only;
- bob: beta, read, export, admin;
- olga (OPERATOR_USER): the syndicate's operator, without a grant;
- oscar: the syndicate's operator, with a grant on alpha;
and Superset's own `admin`, the provisioning account (its password derives from
HV_SECRET_KEY).

Superset runs from .venv-superset (infra/superset/install.sh); without it these tests
fail, they are not skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Before the session's Settings exist (tests/conftest.py reads the environment once, when
# the first fixture asks): Superset gets a port of the test range too.
os.environ.setdefault(
    "HV_SUPERSET_PORT", str(int(os.environ.get("HV_TEST_PORT_BASE", "27000")) + 88)
)

from hypervision.accounts import Who
from hypervision.settings import Settings
from tests.conftest import PORT_BASE, TENANTS
from tests.webserver import serving

SETUP = Who("system:test-setup")

ALPHA_USER = "ana@alpha.example.org"
OPERATOR_USER = "olga@syndic.example.org"
PASSWORD = "Mot-de-passe-de-test-1"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
SYNDIC = Path(__file__).resolve().parents[1] / "api" / "tenants" / "syndic.yaml"
ADMIN = ["read", "export", "admin"]
# name -> (e-mail, member, rights, operator)
PERSONAS: dict[str, tuple[str, str, list[str], bool]] = {
    "alice": ("alice@alpha.example.org", "alpha", ADMIN, False),
    "ana": (ALPHA_USER, "alpha", ["read"], False),
    "bob": ("bob@beta.example.org", "beta", ADMIN, False),
    "olga": (OPERATOR_USER, "syndic", ADMIN, True),
    "oscar": ("oscar@syndic.example.org", "syndic", ADMIN, True),
}
# The platform's API (console included), served for Superset's sign-in.
API_PORT = PORT_BASE + 870


@dataclass
class Deployment:
    """What the session's fixture set up, for the tests to look at."""

    settings: Settings
    platform: str  # the console's address (people sign in there)
    specs: list[Any]
    uplinks: dict[str, int]  # member -> uplinks stored
    dashboards: dict[str, dict[str, int]]  # member (or "operator") -> template -> id


def alpha_spec_with_users(specs: list[Any], *emails: str) -> list[Any]:
    """The test members, alpha declaring `emails` as its users (its file declares none)."""
    from hypervision.tenancy.spec import User

    return [
        s.model_copy(update={"users": [User(name=f"Agent {e.split('@')[0]}", email=e)
                                       for e in emails]})
        if s.name == "alpha" else s
        for s in specs
    ]


def refresh_rollups(settings: Settings, slugs: list[str]) -> None:
    """What the refresh job does in production: some dashboards read the tables it keeps
    (dash_water_daily, dash_waste_latest)."""
    from hypervision.analytics import members, rollups
    from hypervision.db import connect_admin

    with connect_admin(settings) as conn:
        for slug in slugs:
            rollups.refresh(conn, members.member(conn, slug), settings)


def recovery_code(settings: Settings, email: str) -> str:
    """A fresh recovery code of `email` (the older ones stop working): what a person
    with a second factor types at the console's second step."""
    from hypervision import accounts, mfa
    from hypervision.db import connect_admin

    with connect_admin(settings) as conn:
        account = accounts.get_account(conn, email)
        assert account is not None and account.mfa_enrolled
        return mfa.new_recovery_codes(conn, SETUP, account)[0]


def _accounts(settings: Settings) -> None:
    """The syndicate member and the personas' platform accounts."""
    import pyotp

    from hypervision import accounts, mfa
    from hypervision.api.db import ensure_api_role
    from hypervision.db import connect_admin
    from hypervision.tenancy import apply as tenancy
    from hypervision.tenancy.spec import load_file
    from ingest.decode import Catalogue

    with connect_admin(settings) as conn:
        tenancy.apply(conn, [load_file(SYNDIC)], Catalogue.load(), settings,
                      log=lambda _: None)
        ensure_api_role(conn, settings)
        for name, (email, member, rights, operator) in PERSONAS.items():
            # Declared, as in a tenant file (single sign-on matches declared accounts only).
            accounts.upsert_account(conn, SETUP, email=email, name=name.title(),
                                    member=member, rights=rights, operator=operator,
                                    declared=True)
            accounts.set_password(conn, SETUP, email, PASSWORD)
            account = accounts.get_account(conn, email)
            assert account is not None
            if account.needs_mfa and not account.mfa_enrolled:
                assert mfa.enrol(conn, SETUP, account, TOTP_SECRET,
                                 pyotp.TOTP(TOTP_SECRET).now()) is not None
        if accounts.active_grant(conn, accounts.get_account(conn, PERSONAS["oscar"][0]).id,
                                 "alpha") is None:
            accounts.create_grant(conn, SETUP, operator_email=PERSONAS["oscar"][0],
                                  member="alpha", hours=24, reason="test: leak investigation")


@pytest.fixture(scope="session")
def platform_api(platform_db: Settings, oidc_provider: str) -> Iterator[Settings]:
    """The API app (console included) served by uvicorn, with the settings Superset is
    started with (it reaches the platform at api_host:api_port); single sign-on through
    the test provider (tests/oidc)."""
    from pydantic import SecretStr

    from hypervision.api.main import create_app
    from tests.oidc.fixture import CLIENT_ID, CLIENT_SECRET

    settings = platform_db.model_copy(update={
        "api_port": API_PORT, "api_login_attempts": 10_000, "console_secure_cookie": False,
        "oidc_issuer": oidc_provider, "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": SecretStr(CLIENT_SECRET),
        "public_base_url": f"http://127.0.0.1:{API_PORT}"})
    _accounts(settings)
    with serving(create_app(settings), API_PORT):
        yield settings


@pytest.fixture(scope="session")
def superset(platform_api: Settings) -> Iterator[Deployment]:
    from hypervision.superset import provision, server, signin
    from hypervision.tenancy.spec import load_dir
    from tests.superset.history import feed_history

    settings = platform_api
    specs = load_dir(TENANTS)
    uplinks = {s.name: feed_history(settings, [s], days=3, seed=11 + i, collected_days_ago=1)
               for i, s in enumerate(specs)}
    refresh_rollups(settings, [s.name for s in specs])
    try:
        server.start(settings)
        results = provision.apply(settings, alpha_spec_with_users(specs, ALPHA_USER),
                                  log=lambda _: None)
        yield Deployment(settings, signin.platform_public_url(settings), specs, uplinks,
                         {r.target: r.dashboards for r in results})
    finally:
        server.stop(settings)


def sign_in(deployment: Deployment, persona: str) -> Any:
    """A Superset client signed in as `persona`, through the platform."""
    from hypervision.superset import Client, server

    email = PERSONAS[persona][0]
    return Client.through_platform(
        server.url(deployment.settings), deployment.platform, email, PASSWORD,
        code=lambda: recovery_code(deployment.settings, email))


@pytest.fixture
def admin_api(superset: Deployment) -> Iterator[Any]:
    from hypervision.superset.provision import admin_client

    with admin_client(superset.settings) as client:
        yield client


@pytest.fixture
def alpha_api(superset: Deployment) -> Iterator[Any]:
    with sign_in(superset, "ana") as client:
        yield client


@pytest.fixture
def operator_api(superset: Deployment) -> Iterator[Any]:
    with sign_in(superset, "olga") as client:
        yield client


def chart_data(client: Any, dataset_id: int, **query: Any) -> Any:
    """POST /api/v1/chart/data for one query on a dataset; returns the raw response."""
    body = {
        "datasource": {"id": dataset_id, "type": "table"}, "force": True,
        "result_format": "json", "result_type": "full",
        "queries": [{"columns": [], "metrics": [], "filters": [], "row_limit": 100,
                     "extras": {}, **query}],
    }
    return client.response("POST", "/api/v1/chart/data", json=body)

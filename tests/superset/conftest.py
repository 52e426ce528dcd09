"""A real Superset for the session, on its own port, with the test members alpha and beta
provisioned and three days of simulated data each; personas: a user of alpha, a user of
the syndicate's operator view, and the admin.

Superset runs from .venv-superset (infra/superset/install.sh); without it these tests
fail, they are not skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

# Before the session's Settings exist (tests/conftest.py reads the environment once, when
# the first fixture asks): Superset gets a port of the test range too.
os.environ.setdefault(
    "HV_SUPERSET_PORT", str(int(os.environ.get("HV_TEST_PORT_BASE", "57000")) + 88)
)

from hypervision.settings import Settings
from tests.conftest import TENANTS

ALPHA_USER = "agent@alpha.example.org"
OPERATOR_USER = "exploitation@syndicat.example.org"
PASSWORD = "Mot-de-passe-de-test-1"


@dataclass
class Deployment:
    """What the session's fixture set up, for the tests to look at."""

    settings: Settings
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


@pytest.fixture(scope="session")
def superset(platform_db: Settings) -> Iterator[Deployment]:
    from hypervision.superset import process, provision
    from hypervision.tenancy.spec import load_dir
    from tests.superset.history import feed_history

    settings = platform_db
    specs = load_dir(TENANTS)
    uplinks = {s.name: feed_history(settings, [s], days=3, seed=11 + i)
               for i, s in enumerate(specs)}
    refresh_rollups(settings, [s.name for s in specs])
    process.start(settings)
    try:
        results = provision.apply(settings, alpha_spec_with_users(specs, ALPHA_USER),
                                  log=lambda _: None)
        with provision.admin_client(settings) as client:
            provision.ensure_user(client, ALPHA_USER, ALPHA_USER, "Agent Alpha", [
                provision.role_id(client, provision.GAMMA),
                provision.role_id(client, provision.member_role_name("alpha")),
            ], password=PASSWORD)
            provision.ensure_user(client, OPERATOR_USER, OPERATOR_USER, "Exploitation", [
                provision.role_id(client, provision.GAMMA),
                provision.role_id(client, provision.OPERATOR_ROLE),
            ], password=PASSWORD)
        yield Deployment(settings, specs, uplinks,
                         {r.target: r.dashboards for r in results})
    finally:
        process.stop(settings)


@pytest.fixture
def admin_api(superset: Deployment) -> Iterator[Any]:
    from hypervision.superset.provision import admin_client

    with admin_client(superset.settings) as client:
        yield client


@pytest.fixture
def alpha_api(superset: Deployment) -> Iterator[Any]:
    from hypervision.superset import Client, process

    with Client(process.url(superset.settings), ALPHA_USER, PASSWORD) as client:
        yield client


@pytest.fixture
def operator_api(superset: Deployment) -> Iterator[Any]:
    from hypervision.superset import Client, process

    with Client(process.url(superset.settings), OPERATOR_USER, PASSWORD) as client:
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

"""A bounded schemathesis run against the OpenAPI document: whatever the generated input,
no operation answers with a server error.

Each case gets a fresh token of one of two accounts (an admin of alpha, an operator
holding a grant on alpha), so that logging out or revoking cannot disturb other tests;
operations that delete by id are pointed at a fresh object of the caller's own, and
two cases in three target member alpha, whose data the fixtures hold.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error

from hypervision import accounts
from hypervision.api.main import create_app
from hypervision.db import connect_admin
from hypervision.settings import get_settings
from tests.api.conftest import SETUP, World

pytestmark = pytest.mark.services

ACCOUNTS = ("sam@alpha.example.org", "sid@syndic.example.org")


@pytest.fixture(scope="module", autouse=True)
def fuzz_accounts(world: World) -> None:
    with connect_admin(world.settings) as conn:
        accounts.upsert_account(conn, SETUP, email=ACCOUNTS[0], name="Sam Fuzz", member="alpha",
                                rights=["read", "export", "admin"])
        accounts.upsert_account(conn, SETUP, email=ACCOUNTS[1], name="Sid Fuzz",
                                member="syndic", rights=["read", "export", "admin"],
                                operator=True)
        accounts.create_grant(conn, SETUP, operator_email=ACCOUNTS[1], member="alpha",
                              hours=24, reason="test: schemathesis run")


# The document is read at collection, before the database runs: from the application
# object itself rather than over HTTP (which would start the app and check its database).
# The settings are the test session's (tests/conftest.py).
_app = create_app(get_settings())
schema = schemathesis.openapi.from_dict(_app.openapi())
schema.app = _app


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error(case: Any, world: World) -> None:
    rng = random.Random(repr(case.path_parameters) + repr(case.query))
    email = rng.choice(ACCOUNTS)
    with connect_admin(world.settings) as conn:
        token = accounts.create_token(conn, SETUP, email=email)
        if case.path_parameters is not None:
            if "slug" in case.path_parameters and rng.random() < 2 / 3:
                case.path_parameters["slug"] = "alpha"
            if "token_id" in case.path_parameters:
                case.path_parameters["token_id"] = accounts.create_token(
                    conn, SETUP, email=email).id
            if "grant_id" in case.path_parameters:
                case.path_parameters["grant_id"] = accounts.create_grant(
                    conn, SETUP, operator_email=ACCOUNTS[1], member="alpha", hours=1,
                    reason="test: to be revoked").id
    case.call_and_validate(headers={"Authorization": f"Bearer {token.secret}"},
                           checks=[not_a_server_error])

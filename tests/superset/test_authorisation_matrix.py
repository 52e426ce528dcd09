"""One identity, the same rights everywhere: the API matrix's personas
(tests/api/test_authorisation_matrix.py: alice and ana of alpha, bob of beta, the
operators olga, without a grant, and oscar, with one on alpha) sign in once at the
console, then what they may reach of member alpha through the API (a token from
/auth/login) and in Superset (signed in through the platform) is checked against one
table.

A grant lets an operator read a member's personal data through the API and the console;
Superset's member dashboards stay the member's own people's (the operators have their
view across members, counts only).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hypervision.superset import Client
from tests.superset.conftest import PASSWORD, PERSONAS, Deployment, recovery_code, sign_in
from tests.superset.test_provisioning import chart_data, dataset_ids

pytestmark = pytest.mark.services

NAMES = ("alice", "ana", "bob", "olga", "oscar")
OK, REFUSED, STRANGER = 200, "refused", 404


def cells(alice: Any, ana: Any, bob: Any, olga: Any, oscar: Any) -> dict[str, Any]:
    return dict(zip(NAMES, (alice, ana, bob, olga, oscar), strict=True))


# What each persona gets; "refused" is a 403 or a 404 (Superset answers either).
MATRIX: dict[str, dict[str, Any]] = {
    # The API (same rows as tests/api's matrix for alpha).
    "api GET /members/alpha": cells(OK, OK, STRANGER, OK, OK),
    "api GET /members/alpha/devices": cells(OK, OK, STRANGER, OK, OK),
    "api GET /members/alpha/water/leaks": cells(OK, OK, STRANGER, OK, OK),
    "api GET /members/beta": cells(STRANGER, STRANGER, OK, OK, OK),
    "api GET /dead-letters": cells(403, 403, 403, OK, OK),
    # Superset.
    "superset dashboards listed": cells("alpha", "alpha", "beta", "operator", "operator"),
    "superset GET alpha's water dashboard": cells(OK, OK, REFUSED, REFUSED, REFUSED),
    "superset chart data on alpha's measurements": cells(OK, OK, REFUSED, REFUSED, REFUSED),
    "superset chart data on the operator's counts": cells(REFUSED, REFUSED, REFUSED, OK, OK),
}


@pytest.fixture(scope="module")
def admin_ids(superset: Deployment) -> Iterator[dict[str, int]]:
    from hypervision.superset.provision import admin_client

    with admin_client(superset.settings) as admin:
        yield {"alpha_measurements": dataset_ids(admin, "tenant_alpha")["dash_measurements"],
               "operator_counts": dataset_ids(admin, "hv_operator")["events_per_member_day"]}


def _api_token(superset: Deployment, email: str) -> str:
    body: dict[str, Any] = {"email": email, "password": PASSWORD}
    if email != PERSONAS["ana"][0]:
        body["code"] = recovery_code(superset.settings, email)
    answer = httpx.post(f"{superset.platform}/api/v1/auth/login", json=body)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def _superset_row(client: Client, superset: Deployment, ids: dict[str, int]) -> dict[str, Any]:
    listed = client.get("/api/v1/dashboard/")["result"]
    prefixes = {d["slug"].split("-")[0] for d in listed}
    water = superset.dashboards["alpha"]["water"]
    mine = chart_data(client, ids["alpha_measurements"], metrics=["measurements"])
    counts = chart_data(client, ids["operator_counts"], metrics=["uplinks_stored"])
    return {
        "superset dashboards listed": prefixes.pop() if len(prefixes) == 1 else prefixes,
        "superset GET alpha's water dashboard": _refused_or(
            client.response("GET", f"/api/v1/dashboard/{water}").status_code),
        "superset chart data on alpha's measurements": _refused_or(mine.status_code),
        "superset chart data on the operator's counts": _refused_or(counts.status_code),
    }


def _refused_or(code: int) -> Any:
    return REFUSED if code in (403, 404) else code


@pytest.mark.parametrize("persona", NAMES)
def test_each_persona_has_the_same_rights_in_the_api_and_in_superset(
        superset: Deployment, admin_ids: dict[str, int], persona: str) -> None:
    email = PERSONAS[persona][0]
    token = _api_token(superset, email)
    seen: dict[str, Any] = {}
    with httpx.Client(base_url=f"{superset.platform}/api/v1",
                      headers={"Authorization": f"Bearer {token}"}) as api:
        for row in MATRIX:
            if row.startswith("api GET "):
                seen[row] = api.get(row.removeprefix("api GET ")).status_code
    with sign_in(superset, persona) as client:
        seen |= _superset_row(client, superset, admin_ids)
    assert seen == {row: expected[persona] for row, expected in MATRIX.items()}

"""Every endpoint x every persona -> the expected status.

The table is checked against the application's own route list: an endpoint added
without a row here fails `test_every_endpoint_has_a_row_in_the_matrix`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from hypervision.api.main import create_app
from tests.api.conftest import BIN, WATER, WINDOW, World

PERSONAS = ("alpha", "beta", "op", "op_grant", "anon", "expired", "revoked")
UNAUTH = {"anon": 401, "expired": 401, "revoked": 401}


def row(alpha: int, beta: int, op: int, op_grant: int, unauth: int = 401) -> dict[str, int]:
    return {"alpha": alpha, "beta": beta, "op": op, "op_grant": op_grant,
            "anon": unauth, "expired": unauth, "revoked": unauth}


PUBLIC = row(200, 200, 200, 200, unauth=200)
EVERYONE = row(200, 200, 200, 200)
ALPHA_SCOPED = row(200, 404, 200, 200)

# (method, path template) -> expected status per persona, all about member alpha.
MATRIX: dict[tuple[str, str], dict[str, int]] = {
    ("GET", "/api/v1/health"): PUBLIC,
    ("POST", "/api/v1/auth/login"): PUBLIC,
    ("GET", "/api/v1/auth/me"): EVERYONE,
    ("POST", "/api/v1/auth/logout"): row(204, 204, 204, 204),
    # The caller's own password and second factor: a wrong current password is 403; the
    # personas' tokens were not made by a sign-in with a second factor, so one can still
    # be enrolled (TOTP) with a code, which these requests do not carry (400).
    ("POST", "/api/v1/auth/password"): row(403, 403, 403, 403),
    ("POST", "/api/v1/auth/mfa/totp"): EVERYONE,
    ("POST", "/api/v1/auth/mfa/totp/confirm"): row(400, 400, 400, 400),
    ("POST", "/api/v1/auth/mfa/recovery-codes"): row(400, 400, 400, 400),
    ("GET", "/api/v1/tokens"): EVERYONE,
    ("POST", "/api/v1/tokens"): row(201, 201, 201, 201),
    ("DELETE", "/api/v1/tokens/{token_id}"): row(204, 404, 404, 404),
    ("GET", "/api/v1/members"): EVERYONE,
    ("GET", "/api/v1/members/{slug}"): ALPHA_SCOPED,
    ("GET", "/api/v1/members/{slug}/devices"): ALPHA_SCOPED,
    ("GET", "/api/v1/members/{slug}/devices/{dev_eui}"): ALPHA_SCOPED,
    ("GET", "/api/v1/members/{slug}/grants"): ALPHA_SCOPED,
    ("POST", "/api/v1/members/{slug}/grants"): row(201, 404, 403, 403),
    ("DELETE", "/api/v1/members/{slug}/grants/{grant_id}"): row(204, 404, 403, 403),
    ("GET", "/api/v1/members/{slug}/measurements"): ALPHA_SCOPED,
    ("GET", "/api/v1/members/{slug}/uplinks"): row(200, 404, 403, 200),
    ("GET", "/api/v1/usage"): EVERYONE,
    ("GET", "/api/v1/usage.csv"): EVERYONE,
    ("GET", "/api/v1/members/{slug}/usage"): ALPHA_SCOPED,
    ("GET", "/api/v1/members/{slug}/usage.csv"): ALPHA_SCOPED,
    ("GET", "/api/v1/members/{slug}/audit"): ALPHA_SCOPED,
    ("GET", "/api/v1/dead-letters"): row(403, 403, 200, 200),
    ("GET", "/api/v1/members/{slug}/exports/{kind}.{fmt}"): ALPHA_SCOPED,
    ("GET", "/api/v1/devices/{dev_eui}/downlinks"): ALPHA_SCOPED,
    ("GET", "/api/v1/devices/{dev_eui}/downlink-commands"): ALPHA_SCOPED,
    # Allowed callers (the member's admin, operators) get as far as ChirpStack, which is
    # not configured here: 503 (tests/chirpstack sends for real); a stranger: 404.
    ("POST", "/api/v1/devices/{dev_eui}/downlinks"): row(503, 404, 503, 503),
    # Analytics. A named water meter (WATER: personal data) needs a grant; lists leave
    # personal devices out for operators without one.
    ("GET", "/api/v1/members/{slug}/water/{dev_eui}/consumption"): row(200, 404, 403, 200),
    ("GET", "/api/v1/members/{slug}/water/{dev_eui}/index"): row(200, 404, 403, 200),
    ("GET", "/api/v1/members/{slug}/water/leaks"): ALPHA_SCOPED,
    ("GET", "/api/v1/members/{slug}/water/events"): ALPHA_SCOPED,
    ("GET", "/api/v1/members/{slug}/water/abnormal"): ALPHA_SCOPED,
    ("GET", "/api/v1/members/{slug}/waste/containers"): ALPHA_SCOPED,
    ("GET", "/api/v1/members/{slug}/waste/today"): ALPHA_SCOPED,
    ("GET", "/api/v1/members/{slug}/waste/collections"): ALPHA_SCOPED,
    ("GET", "/api/v1/members/{slug}/waste/round"): ALPHA_SCOPED,
    # The billing run reads every water meter: personal data, a grant for operators.
    ("GET", "/api/v1/members/{slug}/billing.csv"): row(200, 404, 403, 200),
    ("GET", "/api/v1/members/{slug}/air/rooms"): ALPHA_SCOPED,
    ("GET", "/api/v1/members/{slug}/air/room-hours"): ALPHA_SCOPED,
    ("GET", "/api/v1/members/{slug}/health/devices"): ALPHA_SCOPED,
    ("GET", "/api/v1/members/{slug}/health/gateways"): ALPHA_SCOPED,
    # Alerts: acknowledging and closing need `admin`, which every persona here holds (a
    # reader's 403 is in test_api_analytics.py); the alert is on BIN, not personal data.
    ("GET", "/api/v1/members/{slug}/alerts"): ALPHA_SCOPED,
    ("POST", "/api/v1/members/{slug}/alerts/{alert_id}/acknowledge"): row(200, 404, 200, 200),
    ("POST", "/api/v1/members/{slug}/alerts/{alert_id}/close"): row(200, 404, 200, 200),
    # Sharing (docs/sharing.md): alpha receives no agreement here, so reading one is a 404
    # for those who may see alpha (tests/sharing reads a real one).
    ("GET", "/api/v1/members/{slug}/shares"): ALPHA_SCOPED,
    ("GET", "/api/v1/members/{slug}/shares/deliveries"): ALPHA_SCOPED,
    ("GET", "/api/v1/members/{slug}/shares/{provider}/{name}/measurements"):
        row(404, 404, 404, 404),
    # SensorThings, per member, with the API's tokens and scoping.
    ("GET", "/sta/v1.1/{slug}"): ALPHA_SCOPED,
    ("GET", "/sta/v1.1/{slug}/{path}"): ALPHA_SCOPED,
    # Open data is for anyone; nothing is published in these tests.
    ("GET", "/opendata/catalog.jsonld"): row(404, 404, 404, 404, unauth=404),
    ("GET", "/opendata/{member}/{name}"): row(404, 404, 404, 404, unauth=404),
    # The syndicate's own work (docs/syndicate.md). Alpha is not among the members of the
    # cost model (network/costs.yaml): no statement, 404 for whoever may ask.
    ("GET", "/api/v1/members/{slug}/costs/{year}"): row(404, 404, 404, 404),
    ("GET", "/api/v1/members/{slug}/costs/{year}.csv"): row(404, 404, 404, 404),
    ("GET", "/api/v1/members/{slug}/costs/{year}.pdf"): row(404, 404, 404, 404),
    ("GET", "/api/v1/members/{slug}/coverage"): ALPHA_SCOPED,
    ("GET", "/api/v1/members/{slug}/coverage.svg"): ALPHA_SCOPED,
    ("GET", "/api/v1/coverage"): row(403, 403, 200, 200),
    ("GET", "/api/v1/coverage.svg"): row(403, 403, 200, 200),
    ("GET", "/api/v1/members/{slug}/incidents"): ALPHA_SCOPED,
    ("GET", "/api/v1/incidents"): row(403, 403, 200, 200),
    ("GET", "/api/v1/incidents/{incident_id}/drafts"): row(403, 403, 404, 404),
}

EMAILS = {"alpha": "alice@alpha.example.org", "beta": "bob@beta.example.org",
          "op": "olga@syndic.example.org", "op_grant": "oscar@syndic.example.org"}


def _routes() -> set[tuple[str, str]]:
    """Every operation the application serves, read from its OpenAPI document (FastAPI
    nests included routers, so `app.routes` does not list them all flat)."""
    from hypervision.settings import get_settings

    paths = create_app(get_settings()).openapi()["paths"]
    return {(method.upper(), path) for path, operations in paths.items()
            for method in operations}


def test_every_endpoint_has_a_row_in_the_matrix() -> None:
    routes = _routes()
    assert routes - set(MATRIX) == set(), "endpoints missing from MATRIX"
    assert set(MATRIX) - routes == set(), "MATRIX rows without an endpoint"


Request = tuple[str, dict[str, Any]]


def _request(world: World, method: str, path: str, persona: str) -> tuple[Request, dict[str, str]]:
    """The concrete URL, body and headers for one cell; fresh targets where a call
    consumes one (logout, deleting a token or a grant)."""
    headers = world.headers(persona)
    kwargs: dict[str, Any] = {}
    fill: dict[str, Any] = {"slug": "alpha", "dev_eui": BIN, "kind": "measurements",
                            "fmt": "csv", "provider": "beta", "name": "nothing-shared",
                            "member": "alpha", "path": "Things", "year": 2025,
                            "incident_id": 999999}
    if path == "/api/v1/auth/logout" and persona in EMAILS:
        headers = {"Authorization": f"Bearer {world.fresh_token(EMAILS[persona]).secret}"}
    if path == "/api/v1/tokens/{token_id}":
        fill["token_id"] = world.fresh_token("alice@alpha.example.org").id
    if path == "/api/v1/members/{slug}/grants/{grant_id}":
        fill["grant_id"] = world.fresh_grant().id
    if "/water/{dev_eui}/" in path:
        fill["dev_eui"] = WATER
    if "{alert_id}" in path:
        fill["alert_id"] = world.fresh_alert()
    if path.endswith("/close"):
        kwargs["json"] = {"reason": "matrix test"}
    if path == "/api/v1/auth/login":
        kwargs["json"] = {"email": "ana@alpha.example.org", "password": "correct horse battery"}
    if path == "/api/v1/auth/password":
        kwargs["json"] = {"current": "not the password", "new": "a brand new password"}
    if path == "/api/v1/auth/mfa/totp/confirm":
        kwargs["json"] = {"secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "code": "000000"}
    if path == "/api/v1/tokens" and method == "POST":
        kwargs["json"] = {"rights": ["read"], "expires_days": 1, "label": "matrix"}
    if path == "/api/v1/members/{slug}/grants" and method == "POST":
        kwargs["json"] = {"operator_email": "oscar@syndic.example.org", "hours": 1,
                          "reason": "matrix test"}
    if path == "/api/v1/devices/{dev_eui}/downlinks" and method == "POST":
        kwargs["json"] = {"command": "reboot", "params": {}}
    if path.endswith(("/measurements", "/uplinks", "/audit", "/dead-letters")) or "exports" in path:
        kwargs["params"] = WINDOW
    if path.endswith("/billing.csv"):
        kwargs["params"] = {"date": "2025-01-02"}
    return (path.format(**fill), kwargs), headers


CELLS = [(method, path, persona) for (method, path) in MATRIX for persona in PERSONAS]


@pytest.mark.services
@pytest.mark.parametrize(("method", "path", "persona"), CELLS,
                         ids=[f"{m} {p} as {who}" for m, p, who in CELLS])
def test_each_persona_gets_the_expected_status(client: Any, world: World, method: str, path: str,
                                               persona: str) -> None:
    (url, kwargs), headers = _request(world, method, path, persona)
    response = client.request(method, url, headers=headers, **kwargs)
    assert response.status_code == MATRIX[(method, path)][persona], response.text[:300]


@pytest.mark.services
@pytest.mark.parametrize("path", sorted({p for (_, p) in MATRIX if "{slug}" in p}))
def test_a_member_that_does_not_exist_looks_exactly_like_a_strangers(
    client: Any, world: World, path: str,
) -> None:
    """A stranger cannot tell another member's resources from missing ones."""
    method = next(m for (m, p) in MATRIX if p == path)
    (url, kwargs), _ = _request(world, method, path, "beta")
    headers = world.headers("beta")
    theirs = client.request(method, url, headers=headers, **kwargs)
    missing = client.request(method, url.replace("/alpha", "/nosuchmember", 1), headers=headers,
                             **kwargs)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["detail"].replace("alpha", "X") == missing.json()["detail"].replace(
        "nosuchmember", "X")


Check = Callable[[Any], None]

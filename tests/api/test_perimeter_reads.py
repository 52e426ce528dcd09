"""Findings 6 and 9: what a caller may not see of others.

- An operator without a grant does not see where a household water meter is (its
  location, and its name, which is often an address), as for the other personal data.
- A member's user with the `read` right only does not see colleagues' IP addresses nor
  their failed logins in the audit trail; the member's admins do.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

from tests.api.conftest import AIR, WATER, World

pytestmark = pytest.mark.services

PLACE = {"building": "Maison", "address": "12 rue des Lilas"}


@pytest.fixture
def located(admin_conn: psycopg.Connection) -> Iterator[None]:
    """alpha's water meter (personal data) and air sensor, with a location each."""
    for eui in (WATER, AIR):
        admin_conn.execute("UPDATE hv.devices SET spec = spec || %s WHERE dev_eui = %s",
                           (Jsonb({"location": PLACE}), eui))
    yield
    for eui in (WATER, AIR):
        admin_conn.execute("UPDATE hv.devices SET spec = spec - 'location' WHERE dev_eui = %s",
                           (eui,))


def _devices(client: TestClient, world: World, persona: str) -> dict[str, dict]:
    response = client.get("/api/v1/members/alpha/devices", headers=world.headers(persona))
    assert response.status_code == 200, response.text
    return {d["dev_eui"]: d for d in response.json()}


def test_an_operator_without_a_grant_does_not_see_where_a_water_meter_is(
    client: TestClient, world: World, located: None
) -> None:
    seen = _devices(client, world, "op")
    assert seen[WATER]["location"] is None
    assert "Lilas" not in seen[WATER]["name"]
    # Not personal data: shown.
    assert seen[AIR]["location"]["address"] == PLACE["address"]


@pytest.mark.parametrize("persona", ["op_grant", "alpha"])
def test_a_grant_or_the_member_itself_sees_the_location(
    client: TestClient, world: World, located: None, persona: str
) -> None:
    assert _devices(client, world, persona)[WATER]["location"]["address"] == PLACE["address"]


def test_a_read_only_user_sees_no_colleagues_addresses_nor_failed_logins(
    client: TestClient, world: World
) -> None:
    failed = client.post("/api/v1/auth/login", json={"email": "alice@alpha.example.org",
                                                      "password": "not her password"})
    assert failed.status_code == 401
    client.get("/api/v1/members/alpha", headers=world.headers("alpha"))  # alice reads
    mine = client.get("/api/v1/members/alpha", headers=world.headers("alpha_read"))
    assert mine.status_code == 200

    def trail(persona: str) -> list[dict]:
        response = client.get("/api/v1/members/alpha/audit", params={"limit": 1000},
                              headers=world.headers(persona))
        assert response.status_code == 200, response.text
        return response.json()["items"]

    as_reader = trail("alpha_read")
    others = [e for e in as_reader if e["actor"] != "user:ana@alpha.example.org"]
    assert others, "the trail holds colleagues' entries"
    assert {e["remote_addr"] for e in others} == {None}
    # Colleagues' sign-ins and failed logins are not shown; her own are hers to see.
    assert not [e for e in others if e["action"].startswith("auth.")]
    # Ana's own entries keep her address.
    assert any(e["remote_addr"] for e in as_reader
               if e["actor"] == "user:ana@alpha.example.org")

    as_admin = trail("alpha")
    assert any(e["action"] == "auth.login-failed" for e in as_admin)
    assert any(e["remote_addr"] for e in as_admin if e["actor"] == "user:alice@alpha.example.org")

"""The syndicate's routes of the API: the cost statement (the member's own reader and the
syndicate's operator get it as JSON, CSV or PDF, another member gets 404, each read is
audited), the coverage (an operator without a grant sees personal devices withheld) and
the incident register."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from hypervision import accounts
from hypervision.api.db import ensure_api_role
from hypervision.api.main import create_app
from hypervision.db import connect_admin
from hypervision.settings import Settings
from tests.syndicate.test_costs import EXPECTED
from tests.syndicate.test_coverage import B1, radio

__all__ = ["radio"]

SETUP = accounts.Who("system:test-setup")
T = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def tokens(network_db: Settings) -> dict[str, str]:
    people = {"bourg": ("berthe@bourg.example.org", "bourg", False),
              "plage": ("paul@plage.example.org", "plage", False),
              "op": ("odile@syndicat-test.example.org", "syndicat_test", True)}
    result = {}
    with connect_admin(network_db) as conn:
        ensure_api_role(conn, network_db)
        for persona, (email, member, operator) in people.items():
            accounts.upsert_account(conn, SETUP, email=email, name=persona, member=member,
                                    rights=["read"], operator=operator)
            result[persona] = accounts.create_token(conn, SETUP, email=email,
                                                    label=persona).secret
    return result


@pytest.fixture(scope="module")
def client(network_db: Settings) -> Any:
    with TestClient(create_app(network_db), raise_server_exceptions=False) as c:
        yield c


def _get(client: TestClient, token: str, path: str) -> Any:
    return client.get(f"/api/v1{path}", headers={"Authorization": f"Bearer {token}"})


@pytest.mark.services
def test_the_member_and_the_operator_read_the_statement_a_stranger_gets_404(
    client: TestClient, tokens: dict[str, str], admin: psycopg.Connection[Any],
) -> None:
    for persona in ("bourg", "op"):
        r = _get(client, tokens[persona], "/members/bourg/costs/2025")
        assert r.status_code == 200, r.text
        body = r.json()
        assert {x["cost"]: Decimal(x["amount"]) for x in body["lines"]} == EXPECTED["bourg"]
        assert Decimal(body["total"]) == sum(EXPECTED["bourg"].values())
    assert _get(client, tokens["plage"], "/members/bourg/costs/2025").status_code == 404
    assert _get(client, tokens["bourg"], "/members/bourg/costs/2019").status_code == 404
    csv = _get(client, tokens["bourg"], "/members/bourg/costs/2025.csv")
    assert csv.status_code == 200 and csv.text.startswith("year,member,cost,")
    pdf = _get(client, tokens["bourg"], "/members/bourg/costs/2025.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    reads = admin.execute("SELECT params->>'format' FROM hv.audit_log WHERE action ="
                          " 'costs.read' AND member_slug = 'bourg' AND source = 'api'"
                          " ORDER BY id").fetchall()
    assert [r[0] for r in reads][-4:] == ["json", "json", "csv", "pdf"]


@pytest.mark.services
def test_coverage_withholds_personal_devices_from_an_operator_without_a_grant(
    client: TestClient, tokens: dict[str, str], radio: psycopg.Connection[Any],
) -> None:
    own = _get(client, tokens["bourg"], "/members/bourg/coverage?days=400")
    assert own.status_code == 200, own.text
    mine = {d["dev_eui"]: d for d in own.json()["devices"]}
    assert mine[B1]["name"] == "Compteur 1" and mine[B1]["lat"] == 47.95
    assert len(mine[B1]["links"]) == 2
    op = _get(client, tokens["op"], "/coverage?days=400")
    assert op.status_code == 200, op.text
    seen = {d["dev_eui"]: d for d in op.json()["devices"]}
    assert seen[B1]["name"] == "(personal data withheld)" and len(seen[B1]["links"]) == 2
    assert _get(client, tokens["bourg"], "/coverage").status_code == 403
    svg = _get(client, tokens["op"], "/coverage.svg?days=400")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert "Compteur 1" not in svg.text


@pytest.mark.services
def test_a_member_reads_its_own_incidents_with_their_clocks(
    client: TestClient, tokens: dict[str, str], admin: psycopg.Connection[Any],
) -> None:
    from hypervision.syndicate import incidents

    iid = incidents.open_incident(admin, accounts.Who("user:test"), member="bourg",
                                  title="Compteur arraché", detected_at=T, severity="low",
                                  significant=True)
    mine = _get(client, tokens["bourg"], "/members/bourg/incidents")
    assert mine.status_code == 200
    found = next(i for i in mine.json() if i["id"] == iid)
    assert [c["name"] for c in found["clocks"]] == [
        "nis2-early-warning", "nis2-notification", "nis2-final-report"]
    assert found["clocks"][0]["status"] == "overdue"
    assert _get(client, tokens["plage"], "/members/bourg/incidents").status_code == 404
    assert _get(client, tokens["bourg"], "/incidents").status_code == 403
    drafts = _get(client, tokens["op"], f"/incidents/{iid}/drafts")
    assert drafts.status_code == 200
    assert drafts.json()["nis2-early-warning"]["Entité"] == "Commune du Bourg (test)"

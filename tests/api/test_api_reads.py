"""What the API returns, what it refuses, and the audit entry every read leaves."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest

from hypervision import audit
from tests.api.conftest import AIR, BIN, WATER, WINDOW, World, make_client

pytestmark = pytest.mark.services

ALICE = "user:alice@alpha.example.org"


def last_entry(conn: psycopg.Connection, request_id: str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT actor, member_slug, action, target, params, rows, source, remote_addr"
        " FROM hv.audit_log WHERE request_id = %s ORDER BY id DESC LIMIT 1", (request_id,)
    ).fetchone()
    assert row is not None, f"no audit entry for request {request_id}"
    keys = ("actor", "member", "action", "target", "params", "rows", "source", "remote_addr")
    return dict(zip(keys, row, strict=True))


READS = [
    ("/api/v1/members/alpha", {}, "members.read", 1),
    ("/api/v1/members/alpha/devices", {}, "devices.read", 3),
    (f"/api/v1/members/alpha/devices/{BIN}", {}, "devices.read", 1),
    ("/api/v1/members/alpha/measurements", {**WINDOW, "devices": BIN}, "measurements.read", 60),
    ("/api/v1/members/alpha/uplinks", {**WINDOW, "limit": 7}, "uplinks.read", 7),
    ("/api/v1/members/alpha/usage", {"start": "2025-01-01", "end": "2025-01-03"},
     "usage.read", 3),
    ("/api/v1/members/alpha/usage.csv", {"start": "2025-01-01", "end": "2025-01-01"},
     "usage.read", 1),
    ("/api/v1/members/alpha/audit", {"limit": 2}, "audit.read", 2),
    ("/api/v1/members/alpha/exports/measurements.csv", {**WINDOW, "devices": AIR}, "export.csv",
     60),
    ("/api/v1/members/alpha/exports/uplinks.jsonl", WINDOW, "export.jsonl", 180),
    ("/api/v1/members/alpha/exports/measurements.parquet", WINDOW, "export.parquet", 180),
]


@pytest.mark.parametrize(("url", "params", "action", "rows"), READS,
                         ids=[r[0].rsplit("/", 1)[-1] for r in READS])
def test_every_read_and_export_leaves_an_audit_entry_with_who_what_and_how_many_rows(
    client: Any, world: World, admin_conn: psycopg.Connection, url: str,
    params: dict[str, Any], action: str, rows: int,
) -> None:
    response = client.get(url, params=params, headers=world.headers("alpha"))
    assert response.status_code == 200, response.text
    entry = last_entry(admin_conn, response.headers["x-request-id"])
    assert entry["actor"] == ALICE
    assert entry["member"] == "alpha"
    assert entry["action"] == action
    assert entry["rows"] == rows
    assert entry["source"] == "api"
    assert entry["remote_addr"] == "testclient"
    assert entry["params"]["token"] == world.token_ids["alpha"]


def test_a_member_reads_its_own_trail_and_nothing_of_another_members(
    client: Any, world: World,
) -> None:
    client.get("/api/v1/members/beta/devices", headers=world.headers("beta"))
    trail = client.get("/api/v1/members/alpha/audit", params={"limit": 1000},
                       headers=world.headers("alpha")).json()
    assert trail["items"], "alpha's trail is empty"
    assert {e["member"] for e in trail["items"]} == {"alpha"}
    assert "user:bob@beta.example.org" not in {e["actor"] for e in trail["items"]}
    assert all(len(e["hash"]) == 64 for e in trail["items"])
    ids = [e["id"] for e in trail["items"]]
    assert ids == sorted(ids, reverse=True)


def test_the_audit_trail_pages_with_a_cursor(client: Any, world: World) -> None:
    first = client.get("/api/v1/members/alpha/audit", params={"limit": 2},
                       headers=world.headers("alpha")).json()
    second = client.get("/api/v1/members/alpha/audit",
                        params={"limit": 2, "cursor": first["next_cursor"]},
                        headers=world.headers("alpha")).json()
    assert max(e["id"] for e in second["items"]) < min(e["id"] for e in first["items"])


def test_uplinks_page_without_gaps_or_repeats(client: Any, world: World) -> None:
    seen: list[str] = []
    params: dict[str, Any] = {**WINDOW, "devices": WATER, "limit": 25}
    while True:
        page = client.get("/api/v1/members/alpha/uplinks", params=params,
                          headers=world.headers("alpha")).json()
        seen += [u["deduplication_id"] for u in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 60


def test_measurements_aggregate_per_bucket(client: Any, world: World) -> None:
    body = client.get("/api/v1/members/alpha/measurements",
                      params={**WINDOW, "devices": BIN, "bucket": "15m", "agg": "max"},
                      headers=world.headers("alpha")).json()
    assert [(r["value"], r["count"]) for r in body["rows"]] == [
        (14.0, 15), (29.0, 15), (44.0, 15), (59.0, 15)]


def test_an_operator_without_grant_sees_everything_but_personal_data(
    client: Any, world: World, admin_conn: psycopg.Connection,
) -> None:
    body = client.get("/api/v1/members/alpha/measurements", params=WINDOW,
                      headers=world.headers("op")).json()
    assert {r["dev_eui"] for r in body["rows"]} == {BIN, AIR}
    assert body["withheld_devices"] == 1
    asked = client.get("/api/v1/members/alpha/measurements", params={**WINDOW, "devices": WATER},
                       headers=world.headers("op"))
    assert asked.status_code == 403 and "grant" in asked.json()["detail"]
    export = client.get("/api/v1/members/alpha/exports/measurements.csv", params=WINDOW,
                        headers=world.headers("op"))
    assert export.status_code == 200
    assert {r["dev_eui"] for r in csv.DictReader(io.StringIO(export.text))} == {BIN, AIR}


def test_an_operator_with_a_grant_reads_personal_data_and_the_grant_is_in_the_trail(
    client: Any, world: World, admin_conn: psycopg.Connection,
) -> None:
    response = client.get("/api/v1/members/alpha/measurements",
                          params={**WINDOW, "devices": WATER}, headers=world.headers("op_grant"))
    assert response.status_code == 200 and len(response.json()["rows"]) == 60
    entry = last_entry(admin_conn, response.headers["x-request-id"])
    assert entry["actor"] == "user:oscar@syndic.example.org"
    assert entry["member"] == "alpha" and entry["params"]["grant"] is not None
    grants = admin_conn.execute(
        "SELECT count(*) FROM hv.audit_log WHERE member_slug = 'alpha'"
        " AND action = 'grant.create'").fetchone()
    assert grants is not None and grants[0] >= 1


def test_a_grant_stops_working_when_it_expires_or_is_revoked(
    client: Any, world: World, admin_conn: psycopg.Connection,
) -> None:
    token = world.fresh_token("olga@syndic.example.org").secret
    headers = {"Authorization": f"Bearer {token}"}
    url = "/api/v1/members/alpha/uplinks"
    assert client.get(url, params=WINDOW, headers=headers).status_code == 403
    grant = world.fresh_grant("olga@syndic.example.org")
    try:
        assert client.get(url, params=WINDOW, headers=headers).status_code == 200
        admin_conn.execute("UPDATE hv.access_grants SET expires_at = now() - interval '1 s',"
                           " starts_at = now() - interval '1 h' WHERE id = %s", (grant.id,))
        assert client.get(url, params=WINDOW, headers=headers).status_code == 403
    finally:
        admin_conn.execute("UPDATE hv.access_grants SET revoked_at = now() WHERE id = %s",
                           (grant.id,))


def test_a_member_gives_and_revokes_a_grant_through_the_api(client: Any, world: World) -> None:
    created = client.post("/api/v1/members/alpha/grants", headers=world.headers("alpha"),
                          json={"operator_email": "oscar@syndic.example.org", "hours": 1,
                                "reason": "meter replacement"})
    assert created.status_code == 201 and created.json()["active"]
    listed = client.get("/api/v1/members/alpha/grants", headers=world.headers("alpha")).json()
    assert created.json()["id"] in {g["id"] for g in listed}
    revoked = client.delete(f"/api/v1/members/alpha/grants/{created.json()['id']}",
                            headers=world.headers("alpha"))
    assert revoked.status_code == 204
    bad = client.post("/api/v1/members/alpha/grants", headers=world.headers("alpha"),
                      json={"operator_email": "bob@beta.example.org", "hours": 1,
                            "reason": "not an operator"})
    assert bad.status_code == 400


def test_exports_stream_each_format_with_a_cursor_for_the_next_run(
    client: Any, world: World,
) -> None:
    headers = world.headers("alpha")
    url = "/api/v1/members/alpha/exports/measurements"
    first = client.get(f"{url}.csv", params={"devices": BIN}, headers=headers)
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(first.text)))) == 60
    cursor = first.headers["x-next-cursor"]
    again = client.get(f"{url}.csv", params={"devices": BIN, "cursor": cursor}, headers=headers)
    assert again.status_code == 200 and list(csv.DictReader(io.StringIO(again.text))) == []
    lines = client.get(f"{url}.jsonl", params={"devices": AIR}, headers=headers).text.splitlines()
    assert len(lines) == 60 and json.loads(lines[0])["dev_eui"] == AIR
    parquet = client.get(f"{url}.parquet", params={"devices": AIR}, headers=headers)
    assert pq.read_table(io.BytesIO(parquet.content)).num_rows == 60


def test_a_pseudonymised_export_hides_the_device_identifiers(client: Any, world: World) -> None:
    response = client.get("/api/v1/members/alpha/exports/measurements.csv",
                          params={"devices": WATER, "pseudonymise": "true", "coarsen": "day"},
                          headers=world.headers("alpha"))
    assert response.status_code == 200, response.text
    assert WATER not in response.text and len(response.text.splitlines()) > 1
    unknown = client.get("/api/v1/members/alpha/exports/measurements.csv",
                         params={"recipient": "nobody"}, headers=world.headers("alpha"))
    assert unknown.status_code == 400


def test_exporting_needs_the_export_right(client: Any, world: World) -> None:
    response = client.get("/api/v1/members/alpha/exports/measurements.csv",
                          headers=world.headers("alpha_read"))
    assert response.status_code == 403


BAD = [
    ("/api/v1/members/alpha/measurements", {"start": "2025-01-02", "end": "2025-01-01"}, 400),
    ("/api/v1/members/alpha/measurements", {"start": "yesterday"}, 422),
    ("/api/v1/members/alpha/measurements", {"devices": "not-a-eui"}, 400),
    ("/api/v1/members/alpha/measurements", {"metrics": "DROP TABLE"}, 400),
    ("/api/v1/members/alpha/measurements", {"limit": 10_000_000}, 422),
    ("/api/v1/members/alpha/measurements", {"bucket": "3h"}, 422),
    ("/api/v1/members/alpha/measurements", {"start": "0001-01-01T00:00:00"}, 400),
    ("/api/v1/members/alpha/uplinks", {"cursor": "garbage!"}, 400),
    ("/api/v1/members/alpha/uplinks", {"cursor": "WyJ4Il0"}, 400),
    ("/api/v1/members/alpha/audit", {"cursor": "WyItMSJd"}, 400),
    ("/api/v1/members/alpha/exports/measurements.csv", {"cursor": "hv1.broken"}, 400),
    ("/api/v1/members/alpha/exports/measurements.csv", {"metrics": "no_such_metric"}, 400),
    ("/api/v1/members/alpha/exports/uplinks.csv", {"metrics": "temperature"}, 400),
    ("/api/v1/members/alpha/exports/measurements.xlsx", {}, 422),
    ("/api/v1/members/alpha/usage", {"start": "2025-02-01", "end": "2025-01-01"}, 400),
    ("/api/v1/members/alpha/usage", {"start": "2000-01-01", "end": "2025-01-01"}, 400),
    ("/api/v1/members/alpha/usage", {"start": "9999-12-31", "end": "9999-12-31"}, 400),
    ("/api/v1/members/alpha/exports/measurements.csv",
     {"start": "2025-01-02T00:00:00", "end": "2025-01-01T00:00:00Z"}, 400),
    ("/api/v1/members/alpha/exports/measurements.csv", {"end": "0001-01-01T00:00:00"}, 400),
    ("/api/v1/members/alpha/devices/zzzz", {}, 422),
    ("/api/v1/members/ALPHA", {}, 422),
    ("/api/v1/members/alpha/measurements", {"devices": "a1a1a1a1a1a1000\x00"}, 400),
]


@pytest.mark.parametrize(("url", "params", "status"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_input_gets_a_clear_client_error(client: Any, world: World, url: str,
                                             params: dict[str, Any], status: int) -> None:
    response = client.get(url, params=params, headers=world.headers("alpha"))
    assert response.status_code == status, response.text
    assert response.json()["detail"]


@pytest.mark.parametrize("url", ["/api/v1/health", "/api/v1/members/alpha",
                                 "/api/v1/members/beta", "/api/v1/nowhere",
                                 "/api/v1/members/alpha/exports/measurements.csv"])
def test_every_response_carries_the_security_headers(client: Any, world: World, url: str) -> None:
    response = client.get(url, headers=world.headers("alpha"))
    assert response.headers["content-security-policy"] == (
        "default-src 'self'; frame-ancestors 'none'")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-request-id"]


def test_no_page_loads_assets_from_outside_the_deployment(client: Any) -> None:
    assert client.get("/docs").status_code == 404
    assert client.get("/api/v1/openapi.json").json()["openapi"].startswith("3.")


def test_login_issues_a_token_and_is_rate_limited(world: World, admin_conn: psycopg.Connection,
                                                  fresh_limiter: None) -> None:
    with make_client(world.settings, api_login_attempts=3) as client:
        good = {"email": "ana@alpha.example.org", "password": "correct horse battery"}
        token = client.post("/api/v1/auth/login", json=good)
        assert token.status_code == 200
        me = client.get("/api/v1/auth/me",
                        headers={"Authorization": f"Bearer {token.json()['token']}"})
        assert me.json()["email"] == "ana@alpha.example.org"
        wrong = client.post("/api/v1/auth/login", json={**good, "password": "wrong password!"})
        assert wrong.status_code == 401
        client.post("/api/v1/auth/login", json=good)
        limited = client.post("/api/v1/auth/login", json=good)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    failed = admin_conn.execute(
        "SELECT count(*) FROM hv.audit_log WHERE action = 'auth.login-failed'"
        " AND actor = 'user:ana@alpha.example.org'").fetchone()
    assert failed is not None and failed[0] >= 1


def test_tokens_are_stored_hashed_and_a_revoked_token_stops_working(
    client: Any, world: World, admin_conn: psycopg.Connection,
) -> None:
    issued = client.post("/api/v1/tokens", headers=world.headers("alpha"),
                         json={"rights": ["read"], "expires_days": 1})
    assert issued.status_code == 201
    secret = issued.json()["token"]
    stored = admin_conn.execute(
        "SELECT count(*) FROM hv.api_tokens WHERE encode(token_hash, 'escape') LIKE %s",
        (f"%{secret}%",)).fetchone()
    assert stored is not None and stored[0] == 0
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/members/alpha", headers=headers).status_code == 200
    assert client.get("/api/v1/members/alpha/exports/measurements.csv",
                      headers=headers).status_code == 403
    escalate = client.post("/api/v1/tokens", headers=headers, json={"rights": ["admin"]})
    assert escalate.status_code == 403
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert client.get("/api/v1/members/alpha", headers=headers).status_code == 401
    actions = {r[0] for r in admin_conn.execute(
        "SELECT action FROM hv.audit_log WHERE target = %s",
        (f"token:{issued.json()['token_id']}",)).fetchall()}
    assert actions == {"token.create", "token.revoke"}


def test_the_trail_still_verifies_after_all_this(admin_conn: psycopg.Connection,
                                                 client: Any) -> None:
    result = audit.verify(admin_conn)
    assert result.ok, result.problems

"""Superset signs people in through the platform: no password of its own for members'
users, roles from the tenant file at every sign-in, a suspension effective at the next
request, every dashboard and chart view in the member's audit trail, and bad requests to
the platform's OAuth endpoints refused (hypervision.superset.signin,
infra/superset/platform_auth.py)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from hypervision import accounts, audit
from hypervision.db import connect_admin
from hypervision.superset import Client, SupersetError, server, signin
from tests.superset.conftest import (
    ALPHA_USER,
    PASSWORD,
    SETUP,
    Deployment,
    recovery_code,
    sign_in,
)

pytestmark = pytest.mark.services
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form"
    return found.group(1)


def _member_user(settings: Any, email: str, member: str = "alpha") -> None:
    """A fresh reader of `member`, for a test that suspends or revokes them."""
    with connect_admin(settings) as conn:
        accounts.upsert_account(conn, SETUP, email=email, name="Temp Reader", member=member,
                                rights=["read"], active=True)
        accounts.set_password(conn, SETUP, email, PASSWORD)


def _superset_roles(admin_api: Any, username: str) -> set[str]:
    user = admin_api.find("security/users", username=username)[0]
    return {r["name"] for r in admin_api.get(f"/api/v1/security/users/{user['id']}")
            ["result"]["roles"]}


def test_superset_has_no_login_form_it_sends_people_to_the_platform(
        superset: Deployment) -> None:
    base = server.url(superset.settings)
    with httpx.Client() as http:
        login = http.get(f"{base}/login/")
        assert login.status_code == 302
        target = urlsplit(login.headers["location"])
        assert f"{target.scheme}://{target.netloc}" == superset.platform
        assert target.path == "/console/superset/authorize"
        query = parse_qs(target.query)
        assert query["client_id"] == ["superset"]
        assert query["redirect_uri"] == [signin.redirect_uri(superset.settings)]
        # Without a console session, the console's own sign-in comes first.
        authorize = http.get(login.headers["location"])
        assert authorize.status_code in (302, 303, 307)
        assert authorize.headers["location"].startswith("/console/login?next=")
    # The REST login with a password does not let a member's user in.
    with pytest.raises(SupersetError):
        Client(base, ALPHA_USER, PASSWORD)


def test_a_member_user_signs_in_through_the_platform_with_the_roles_of_the_file(
        superset: Deployment, admin_api: Any) -> None:
    with sign_in(superset, "ana") as client:
        me = client.get("/api/v1/me/")["result"]
        assert me["username"] == ALPHA_USER
    assert _superset_roles(admin_api, ALPHA_USER) == {"Gamma", "hv_member_alpha"}
    # A role given in Superset by hand is gone at the next sign-in: the file decides.
    user = admin_api.find("security/users", username=ALPHA_USER)[0]
    admin_api.put(f"/api/v1/security/users/{user['id']}", {"roles": [
        admin_api.find("security/roles", name=n)[0]["id"]
        for n in ("Gamma", "hv_member_alpha", "hv_member_beta")]})
    assert "hv_member_beta" in _superset_roles(admin_api, ALPHA_USER)
    with sign_in(superset, "ana"):
        pass
    assert _superset_roles(admin_api, ALPHA_USER) == {"Gamma", "hv_member_alpha"}


def test_the_operator_gets_the_operator_view_and_a_second_factor_was_needed(
        superset: Deployment, admin_api: Any) -> None:
    from tests.superset.conftest import OPERATOR_USER

    base = server.url(superset.settings)
    # Without the second factor the console stops at its second step: no Superset.
    with pytest.raises(SupersetError, match="refused"):
        Client.through_platform(base, superset.platform, OPERATOR_USER, PASSWORD)
    with sign_in(superset, "olga") as client:
        assert client.get("/api/v1/me/")["result"]["username"] == OPERATOR_USER
    assert _superset_roles(admin_api, OPERATOR_USER) == {"Gamma", "hv_operator"}


def test_a_user_suspended_in_the_file_is_out_of_superset_at_the_next_request(
        superset: Deployment) -> None:
    email = "suspended@alpha.example.org"
    _member_user(superset.settings, email)
    base = server.url(superset.settings)
    with Client.through_platform(base, superset.platform, email, PASSWORD) as client:
        assert client.response("GET", "/api/v1/me/").status_code == 200
        assert client.response("GET", "/api/v1/dashboard/").status_code == 200
        # What `tenants apply` does for `suspended: true` (accounts.sync_users).
        with connect_admin(superset.settings) as conn:
            accounts.upsert_account(conn, SETUP, email=email, name="Temp Reader",
                                    member="alpha", rights=["read"], active=False)
        assert client.response("GET", "/api/v1/dashboard/").status_code == 401
        assert client.response("GET", "/api/v1/me/").status_code == 401
    # And no new sign-in: the console refuses the password.
    with pytest.raises(SupersetError, match="refused"):
        Client.through_platform(base, superset.platform, email, PASSWORD)


def test_logging_out_of_the_console_ends_the_superset_session_too(
        superset: Deployment) -> None:
    email = "leaving@alpha.example.org"
    _member_user(superset.settings, email)
    base = server.url(superset.settings)
    with Client.through_platform(base, superset.platform, email, PASSWORD) as client:
        assert client.response("GET", "/api/v1/dashboard/").status_code == 200
        home = client.http.get(f"{superset.platform}/console/", follow_redirects=True)
        out = client.http.post(f"{superset.platform}/console/logout",
                               data={"csrf": csrf_of(home.text)})
        assert out.status_code == 303
        assert client.response("GET", "/api/v1/dashboard/").status_code == 401


def _trail(settings: Any, action: str, actor: str) -> list[dict[str, Any]]:
    with connect_admin(settings) as conn:
        rows = conn.execute(
            "SELECT member_slug, target, after FROM hv.audit_log WHERE action = %s"
            " AND actor = %s ORDER BY id", (action, actor)).fetchall()
    return [{"member": m, "target": t, "after": a} for m, t, a in rows]


def test_every_dashboard_and_chart_view_enters_the_members_audit_trail(
        superset: Deployment) -> None:
    actor = f"user:{ALPHA_USER}"
    dashboard = superset.dashboards["alpha"]["water"]
    before = (len(_trail(superset.settings, "superset.dashboard-view", actor)),
              len(_trail(superset.settings, "superset.chart-view", actor)))
    with sign_in(superset, "ana") as client:
        shown = client.get(f"/api/v1/dashboard/{dashboard}")["result"]
        charts = client.get(f"/api/v1/dashboard/{dashboard}/charts")["result"]
        chart = charts[0]
        form = chart["form_data"]
        dataset = int(str(form["datasource"]).split("__")[0])
        answer = client.response("POST", "/api/v1/chart/data", json={
            "datasource": {"id": dataset, "type": "table"},
            "form_data": {"slice_id": chart["id"], "dashboardId": dashboard},
            "queries": [{"columns": [], "row_limit": 10, "metrics": [{
                "expressionType": "SQL", "sqlExpression": "COUNT(*)", "label": "n"}]}],
            "result_format": "json", "result_type": "full"})
        assert answer.status_code == 200, answer.text[:300]
        # A refused view (another member's dashboard) is no view.
        beta = superset.dashboards["beta"]["water"]
        assert client.response("GET", f"/api/v1/dashboard/{beta}").status_code in (403, 404)
    views = _trail(superset.settings, "superset.dashboard-view", actor)[before[0]:]
    assert views == [{"member": "alpha", "target": f"dashboard:{dashboard}",
                      "after": {"title": shown["dashboard_title"]}}]
    charts_seen = _trail(superset.settings, "superset.chart-view", actor)[before[1]:]
    assert [c["target"] for c in charts_seen] == [f"chart:{chart['id']}"]
    assert charts_seen[0]["member"] == "alpha"
    assert charts_seen[0]["after"]["title"] == chart["slice_name"]
    with connect_admin(superset.settings) as conn:
        assert audit.verify(conn).ok


def test_the_members_dpo_reads_the_superset_views_in_the_api_journal(
        superset: Deployment) -> None:
    dashboard = superset.dashboards["alpha"]["water"]
    with sign_in(superset, "ana") as client:
        client.get(f"/api/v1/dashboard/{dashboard}")
    # Alice administers alpha (the member's DPO reads its journal with that right).
    with httpx.Client(base_url=superset.platform) as http:
        login = http.post("/api/v1/auth/login", json={
            "email": "alice@alpha.example.org", "password": PASSWORD,
            "code": recovery_code(superset.settings, "alice@alpha.example.org")})
        assert login.status_code == 200, login.text
        token = login.json()["token"]
        journal = http.get("/api/v1/members/alpha/audit", headers={
            "Authorization": f"Bearer {token}"}, params={"action": "superset.dashboard-view"})
        assert journal.status_code == 200
        entries = journal.json()["items"]
        assert entries and entries[0]["actor"] == f"user:{ALPHA_USER}"
        assert entries[0]["target"] == f"dashboard:{dashboard}"
        # Bob (beta) does not see alpha's journal at all.
        login = http.post("/api/v1/auth/login", json={
            "email": "bob@beta.example.org", "password": PASSWORD,
            "code": recovery_code(superset.settings, "bob@beta.example.org")})
        other = http.get("/api/v1/members/alpha/audit", headers={
            "Authorization": f"Bearer {login.json()['token']}"})
        assert other.status_code == 404


# Bad requests to the platform's OAuth endpoints ---------------------------------------


def _code(superset: Deployment, http: httpx.Client) -> str:
    """A code issued for Superset, through a real console session."""
    page = http.get(f"{superset.platform}/console/login")
    http.post(f"{superset.platform}/console/login", data={
        "csrf": csrf_of(page.text), "email": ALPHA_USER, "password": PASSWORD,
        "next": "/console/"})
    answer = http.get(f"{superset.platform}/console/superset/authorize", params={
        "client_id": "superset", "response_type": "code", "state": "s1",
        "redirect_uri": signin.redirect_uri(superset.settings)})
    assert answer.status_code == 303, answer.text
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["state"] == ["s1"]
    return query["code"][0]


def _exchange(superset: Deployment, code: str, **changes: str) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": signin.redirect_uri(superset.settings),
            "client_id": "superset", "client_secret": signin.client_secret(superset.settings)}
    return httpx.post(f"{superset.platform}/api/v1/superset/token", data=form | changes)


def test_a_code_is_exchanged_once_only_and_by_superset_only(superset: Deployment) -> None:
    with httpx.Client() as http:
        code = _code(superset, http)
        assert _exchange(superset, code, client_secret="wrong").json()["error"] == \
            "invalid_client"
        assert _exchange(superset, code, redirect_uri="http://evil.example/cb").json()[
            "error"] == "invalid_grant"
        first = _exchange(superset, code)
        assert first.status_code == 200, first.text
        token = first.json()["access_token"]
        replay = _exchange(superset, code)
        assert replay.status_code == 400
        assert replay.json()["error"] == "invalid_grant"
        # The token answers for Superset only, for the person of the session.
        info = httpx.get(f"{superset.platform}/api/v1/superset/userinfo",
                         headers={"Authorization": f"Bearer {token}"}).json()
        assert info["username"] == ALPHA_USER
        assert info["roles"] == ["Gamma", "hv_member_alpha"]


def test_the_authorisation_page_refuses_other_clients_and_addresses(
        superset: Deployment) -> None:
    with httpx.Client() as http:
        _code(superset, http)  # signed in at the console
        base = {"client_id": "superset", "response_type": "code", "state": "s",
                "redirect_uri": signin.redirect_uri(superset.settings)}
        for wrong in ({"client_id": "other"}, {"redirect_uri": "http://evil.example/cb"},
                      {"response_type": "token"}, {"state": ""}):
            answer = http.get(f"{superset.platform}/console/superset/authorize",
                              params=base | wrong)
            assert answer.status_code == 400, wrong
            assert "location" not in answer.headers


def test_a_personal_token_is_not_a_superset_sign_in(superset: Deployment) -> None:
    with connect_admin(superset.settings) as conn:
        personal = accounts.create_token(conn, SETUP, email=ALPHA_USER, label="script")
    for path in ("userinfo", "session"):
        answer = httpx.get(f"{superset.platform}/api/v1/superset/{path}",
                           headers={"Authorization": f"Bearer {personal.secret}"})
        assert answer.status_code == 403

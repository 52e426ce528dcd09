"""Signing in and out of the console, its cookie, its CSRF protection and its headers."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from hypervision.db import connect_admin
from tests.api.conftest import World
from tests.console.conftest import PASSWORD, csrf_of, new_client, sign_in

pytestmark = pytest.mark.services


@pytest.fixture
def fresh(console_world: World) -> TestClient:
    with new_client(console_world) as client:
        yield client


def test_a_page_without_a_session_sends_the_browser_to_the_login_page(fresh: TestClient) -> None:
    answer = fresh.get("/console/m/alpha?view=today", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == (
        "/console/login?next=/console/m/alpha%3Fview%3Dtoday")


def test_the_login_page_is_french_first_with_a_strict_policy(fresh: TestClient) -> None:
    page = fresh.get("/console/login")
    assert page.status_code == 200
    assert '<html lang="fr">' in page.text and "Mot de passe" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "default-src 'none'" in csp
    assert "<script>" not in page.text and "style=" not in page.text
    english = fresh.get("/console/lang/en?next=/console/login")
    assert english.status_code == 200 and '<html lang="en">' in english.text
    assert "Password" in english.text


def test_signing_in_sets_an_httponly_lax_cookie_and_follows_next(
        fresh: TestClient, console_world: World) -> None:
    page = fresh.get("/console/login")
    # Ana reads only: her password alone signs her in (admins give a second factor too).
    answer = fresh.post("/console/login", data={
        "csrf": csrf_of(page.text), "email": "ana@alpha.example.org", "password": PASSWORD,
        "next": "/console/m/alpha/devices"}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/m/alpha/devices"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("hv_session=hv_") and "HttpOnly" in cookie
    assert "SameSite=lax" in cookie and "Path=/console" in cookie
    with connect_admin(console_world.settings) as conn:
        label = conn.execute("SELECT label FROM hv.api_tokens ORDER BY id DESC LIMIT 1"
                             ).fetchone()
    assert label == ("session",)
    home = fresh.get("/console/")
    assert home.status_code == 200 and "/console/m/alpha" in str(home.url)


def test_the_session_cookie_is_secure_by_default(console_world: World) -> None:
    from hypervision.api.main import create_app

    app = create_app(console_world.settings.model_copy(update={"api_login_attempts": 10_000}))
    with TestClient(app, base_url="https://testserver") as client:
        page = client.get("/console/login")
        answer = client.post("/console/login", data={
            "csrf": csrf_of(page.text), "email": "alice@alpha.example.org",
            "password": PASSWORD, "next": "/console/"}, follow_redirects=False)
    assert answer.status_code == 303 and "Secure" in answer.headers["set-cookie"]


def test_a_wrong_password_is_refused_and_audited(fresh: TestClient,
                                                 console_world: World) -> None:
    page = fresh.get("/console/login")
    answer = fresh.post("/console/login", data={
        "csrf": csrf_of(page.text), "email": "ana@alpha.example.org",
        "password": "not the password", "next": "/console/"}, follow_redirects=False)
    assert answer.status_code == 401 and "incorrect" in answer.text
    assert "hv_session" not in answer.headers.get("set-cookie", "")
    with connect_admin(console_world.settings) as conn:
        row = conn.execute("SELECT action, target FROM hv.audit_log ORDER BY id DESC LIMIT 1"
                           ).fetchone()
    assert row == ("auth.login-failed", "ana@alpha.example.org")


def test_a_form_without_its_csrf_token_is_refused(fresh: TestClient) -> None:
    fresh.get("/console/login")
    for token in ("", "0" * 64):
        answer = fresh.post("/console/login", data={
            "csrf": token, "email": "alice@alpha.example.org", "password": PASSWORD},
            follow_redirects=False)
        assert answer.status_code == 403
    page = fresh.get("/console/login")
    foreign = fresh.post("/console/login", data={
        "csrf": csrf_of(page.text), "email": "alice@alpha.example.org", "password": PASSWORD},
        headers={"Origin": "http://evil.example"}, follow_redirects=False)
    assert foreign.status_code == 403


def test_only_a_console_path_is_followed_after_login(fresh: TestClient) -> None:
    for target in ("https://evil.example/", "//evil.example/console/", "/api/v1/members"):
        page = fresh.get("/console/login")
        answer = fresh.post("/console/login", data={
            "csrf": csrf_of(page.text), "email": "ana@alpha.example.org",
            "password": PASSWORD, "next": target}, follow_redirects=False)
        assert answer.headers["location"] == "/console/"


def test_the_console_session_does_not_open_the_api(fresh: TestClient) -> None:
    sign_in(fresh, "alice@alpha.example.org")
    assert fresh.get("/api/v1/members").status_code == 401


def test_a_stranger_gets_the_same_404_as_for_a_member_that_does_not_exist(
        persona: dict[str, TestClient]) -> None:
    bob = persona["bob"]
    stranger = bob.get("/console/m/alpha")
    missing = bob.get("/console/m/nosuchmember")
    assert stranger.status_code == missing.status_code == 404
    assert stranger.text.replace("alpha", "X") == missing.text.replace("nosuchmember", "X")
    assert persona["olga"].get("/console/m/alpha").status_code == 200


def test_signing_out_revokes_the_session(fresh: TestClient, console_world: World) -> None:
    sign_in(fresh, "ana@alpha.example.org")
    home = fresh.get("/console/m/alpha")
    assert home.status_code == 200
    secret = fresh.cookies.get("hv_session")
    out = fresh.post("/console/logout", data={"csrf": csrf_of(home.text)},
                     follow_redirects=False)
    assert out.status_code == 303
    with connect_admin(console_world.settings) as conn:
        from hypervision import accounts

        assert accounts.authenticate(conn, secret) is None
    again = new_client(console_world)
    again.cookies.set("hv_session", secret, path="/console")
    assert again.get("/console/m/alpha", follow_redirects=False).status_code == 303

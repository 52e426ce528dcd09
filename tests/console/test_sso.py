"""Single sign-on against a real OpenID Connect provider (tests/oidc/provider.mjs):
the platform's console signs a declared person in with the provider's verified e-mail,
asks its own second factor of an admin the provider did not vouch for, ends the
provider's session on logout; a wrong audience, an expired or replayed state, an
unknown e-mail, an unverified one and a disabled provider are refused, changing nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from hypervision import sso
from hypervision.db import connect_admin
from tests.api.conftest import World
from tests.conftest import PORT_BASE
from tests.oidc.fixture import CLIENT_ID, CLIENT_SECRET, ISSUER, OTHER_ID, OTHER_SECRET
from tests.webserver import serving

pytestmark = pytest.mark.services

PORT = PORT_BASE + 556
ORIGIN = f"http://127.0.0.1:{PORT}"
INTERACTION = re.compile(r"/interaction/[A-Za-z0-9_-]+")


def sso_settings(w: World, **overrides: Any) -> Any:
    return w.settings.model_copy(update={
        "oidc_issuer": ISSUER, "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": CLIENT_SECRET, "public_base_url": ORIGIN,
        "console_secure_cookie": False, "api_login_attempts": 10_000, **overrides})


@pytest.fixture(scope="module")
def platform(console_world: World, oidc_provider: str) -> Iterator[str]:
    """The API app, console included, configured for the provider, served by uvicorn."""
    from pydantic import SecretStr

    from hypervision.api.main import create_app

    settings = sso_settings(console_world, oidc_client_secret=SecretStr(CLIENT_SECRET))
    with serving(create_app(settings), PORT):
        yield ORIGIN


def sign_in_at_provider(browser: httpx.Client, login: str,
                        start: str = "/console/sso/start?next=/console/m/alpha"
                        ) -> httpx.Response:
    """Press the SSO button, type `login` at the provider; the last answer."""
    page = browser.get(f"{ORIGIN}{start}", follow_redirects=True)
    assert page.status_code == 200, page.text[:300]
    found = INTERACTION.search(str(page.url))
    assert found, f"not the provider's sign-in page: {page.url}"
    return browser.post(f"{ISSUER}{found.group(0)}", data={
        "prompt": "login", "login": login, "password": "anything"}, follow_redirects=True)


def audit_actions(w: World, since: int) -> list[tuple[str, str]]:
    with connect_admin(w.settings) as conn:
        return [(r[0], r[1]) for r in conn.execute(
            "SELECT action, target FROM hv.audit_log WHERE id > %s ORDER BY id",
            (since,)).fetchall()]


def last_audit_id(w: World) -> int:
    with connect_admin(w.settings) as conn:
        row = conn.execute("SELECT coalesce(max(id), 0) FROM hv.audit_log").fetchone()
    assert row is not None
    return int(row[0])


def test_the_login_page_offers_the_provider(platform: str) -> None:
    page = httpx.get(f"{platform}/console/login")
    assert 'id="sso-button"' in page.text and "ProConnect" in page.text


def test_a_declared_reader_signs_in_with_sso_and_logout_ends_the_provider_session(
        platform: str, console_world: World) -> None:
    since = last_audit_id(console_world)
    with httpx.Client() as browser:
        landed = sign_in_at_provider(browser, "ana")
        notice = landed.text.split('role="alert"')[-1][:400]
        assert landed.status_code == 200, re.sub(r"\s+", " ", notice)
        assert urlparse(str(landed.url)).path == "/console/m/alpha"
        session = browser.cookies.get("hv_session", path="/console")
        assert session and session.startswith("hv_")
        page = browser.get(f"{platform}/console/", follow_redirects=True)
        csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
        assert csrf
        out = browser.post(f"{platform}/console/logout", data={"csrf": csrf.group(1)},
                           follow_redirects=False)
        assert out.status_code == 303
        target = urlparse(out.headers["location"])
        assert f"{target.scheme}://{target.netloc}" == ISSUER
        assert "id_token_hint" in parse_qs(target.query)
        assert httpx.get(f"{platform}/console/m/alpha", cookies={"hv_session": session},
                         follow_redirects=False).status_code == 303  # to the login page
    actions = audit_actions(console_world, since)
    assert ("auth.login", "ana@alpha.example.org") in actions
    with connect_admin(console_world.settings) as conn:
        method = conn.execute(
            "SELECT after->>'method' FROM hv.audit_log WHERE id > %s AND action = 'auth.login'",
            (since,)).fetchone()
    assert method == ("sso",)


def test_an_admin_signed_in_by_sso_still_gives_the_platforms_second_factor(
        platform: str) -> None:
    with httpx.Client() as browser:
        landed = sign_in_at_provider(browser, "alice")
        assert urlparse(str(landed.url)).path == "/console/login/code"
        assert browser.cookies.get("hv_session", path="/console") is None


@pytest.mark.parametrize(("login", "message"), [
    ("stranger", "no account of the platform matches"),
    ("unverified", "no verified e-mail"),
])
def test_an_unknown_or_unverified_email_is_refused_and_nothing_is_created(
        platform: str, console_world: World, login: str, message: str) -> None:
    with connect_admin(console_world.settings) as conn:
        before = conn.execute("SELECT count(*) FROM hv.accounts").fetchone()
    with httpx.Client() as browser:
        landed = sign_in_at_provider(browser, login)
        assert landed.status_code == 401
        assert message in landed.text
        assert browser.cookies.get("hv_session", path="/console") is None
    with connect_admin(console_world.settings) as conn:
        assert conn.execute("SELECT count(*) FROM hv.accounts").fetchone() == before


def test_a_replayed_or_expired_state_is_refused(platform: str,
                                                console_world: World) -> None:
    with httpx.Client() as browser:
        page = browser.get(f"{ORIGIN}/console/sso/start", follow_redirects=True)
        found = INTERACTION.search(str(page.url))
        assert found
        to_platform = browser.post(f"{ISSUER}{found.group(0)}", data={
            "prompt": "login", "login": "ana", "password": "x"}, follow_redirects=False)
        # Follow the provider's redirects by hand up to the callback, and keep its URL.
        while not to_platform.headers["location"].startswith(f"{ORIGIN}/console/sso/callback"):
            to_platform = browser.get(to_platform.headers["location"]
                                      if "://" in to_platform.headers["location"]
                                      else f"{ISSUER}{to_platform.headers['location']}",
                                      follow_redirects=False)
        callback = to_platform.headers["location"]
        first = browser.get(callback, follow_redirects=False)
        assert first.status_code == 303  # signed in
        replayed = httpx.get(callback, follow_redirects=False)
        assert replayed.status_code == 401
        assert "already used" in replayed.text
    # An expired request: the state exists but is past its ten minutes.
    with httpx.Client() as browser:
        page = browser.get(f"{ORIGIN}/console/sso/start", follow_redirects=False)
        state = parse_qs(urlparse(page.headers["location"]).query)["state"][0]
        with connect_admin(console_world.settings) as conn:
            conn.execute("UPDATE hv.sso_requests SET expires_at = now() - interval '1 second'"
                         " WHERE state_hash = %s", (sso.token_digest(state),))
        late = browser.get(f"{ORIGIN}/console/sso/callback",
                           params={"code": "whatever", "state": state})
        assert late.status_code == 401 and "expired" in late.text


def test_an_id_token_for_another_audience_is_refused(platform: str,
                                                     console_world: World) -> None:
    """An ID token the provider really signed, but for another service."""
    from authlib.integrations.httpx_client import OAuth2Client

    meta = httpx.get(f"{ISSUER}/.well-known/openid-configuration").json()
    with httpx.Client() as browser, OAuth2Client(
            OTHER_ID, OTHER_SECRET, scope="openid email",
            redirect_uri=f"{ORIGIN}/console/sso/callback",
            code_challenge_method="S256") as other:
        url, _state = other.create_authorization_url(
            meta["authorization_endpoint"], nonce="n-0S6_WzA2Mj", code_verifier="v" * 50)
        page = browser.get(url, follow_redirects=True)
        found = INTERACTION.search(str(page.url))
        assert found
        answer = browser.post(f"{ISSUER}{found.group(0)}", data={
            "prompt": "login", "login": "ana", "password": "x"}, follow_redirects=False)
        while not answer.headers["location"].startswith(ORIGIN):
            location = answer.headers["location"]
            answer = browser.get(location if "://" in location else f"{ISSUER}{location}",
                                 follow_redirects=False)
        code = parse_qs(urlparse(answer.headers["location"]).query)["code"][0]
        token = other.fetch_token(meta["token_endpoint"], code=code, code_verifier="v" * 50)
    settings = sso_settings(console_world)
    # The same token is fine for the service it was made for...
    assert sso.validate_id_token(settings.model_copy(update={"oidc_client_id": OTHER_ID}),
                                 token["id_token"], "n-0S6_WzA2Mj")["sub"] == "ana"
    # ...and refused by the platform, and with a wrong nonce.
    with pytest.raises(sso.SSOError):
        sso.validate_id_token(settings, token["id_token"], "n-0S6_WzA2Mj")
    with pytest.raises(sso.SSOError):
        sso.validate_id_token(settings.model_copy(update={"oidc_client_id": OTHER_ID}),
                              token["id_token"], "another nonce")


def test_a_disabled_provider_offers_no_button_and_refuses_callbacks(
        console_world: World) -> None:
    from tests.console.conftest import new_client

    with new_client(console_world) as client:  # HV_OIDC_ISSUER unset
        assert 'id="sso-button"' not in client.get("/console/login").text
        assert client.get("/console/sso/start").status_code == 404
        refused = client.get("/console/sso/callback", params={"code": "x", "state": "y"})
        assert refused.status_code == 404 and "not enabled" in refused.text

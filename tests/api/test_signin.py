"""Signing in with a second factor, and the hygiene of tokens (hypervision.signin, mfa,
accounts; the API's /auth/*), against the real database and Redis.

Persona: carl@alpha, an admin of alpha (a second factor is mandatory for him), made fresh
by each test that needs him so that tests do not share his factor.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pyotp
import pytest

from hypervision import accounts, mfa, signin
from hypervision.tenancy.spec import User
from tests.api.conftest import SETUP, World, make_client

pytestmark = pytest.mark.services
PASSWORD = "un mot de passe assez long"


def fresh_admin(conn: psycopg.Connection, rights: tuple[str, ...] = ("read", "admin"),
                ) -> accounts.Account:
    email = f"carl-{uuid.uuid4().hex[:8]}@alpha.example.org"
    accounts.upsert_account(conn, SETUP, email=email, name="Carl Admin", member="alpha",
                            rights=rights)
    accounts.set_password(conn, SETUP, email, PASSWORD)
    found = accounts.get_account(conn, email)
    assert found is not None
    return found


def enrolled_admin(conn: psycopg.Connection) -> tuple[accounts.Account, str, list[str]]:
    """An admin who enrolled TOTP at his first sign-in: (account, secret, recovery codes)."""
    account = fresh_admin(conn)
    pending = signin.password_login(conn, SETUP, account.email, PASSWORD, hours=1,
                                    kind="session")
    assert isinstance(pending, signin.Pending) and pending.purpose == "enrol"
    found = signin.enrolment_secret(conn, pending.secret)
    assert found is not None
    _, secret = found
    done = signin.enrol(conn, SETUP, pending.secret, pyotp.TOTP(secret).now(), hours=1)
    assert done is not None
    token, codes = done
    assert accounts.authenticate(conn, token.secret) is not None
    account = accounts.get_account(conn, account.email)
    assert account is not None and account.mfa_enrolled
    return account, secret, codes


def next_code(secret: str) -> str:
    """A code of the next time step (accepted: one step of drift either way). Enrolment
    used the current step's, and a step is never accepted twice, nor one before it."""
    return pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30))


def test_an_admin_without_a_second_factor_must_enrol_before_any_token(
        world: World, admin_conn: psycopg.Connection, fresh_limiter: None) -> None:
    account = fresh_admin(admin_conn)
    with make_client(world.settings) as client:
        answer = client.post("/api/v1/auth/login",
                             json={"email": account.email, "password": PASSWORD})
    assert answer.status_code == 403
    assert "second factor" in answer.json()["detail"]
    tokens = admin_conn.execute("SELECT count(*) FROM hv.api_tokens WHERE account_id = %s",
                                (account.id,)).fetchone()
    assert tokens is not None and tokens[0] == 0


def test_totp_signs_in_once_per_code_and_a_wrong_code_is_refused(
        world: World, admin_conn: psycopg.Connection, fresh_limiter: None) -> None:
    account, secret, _ = enrolled_admin(admin_conn)
    good = {"email": account.email, "password": PASSWORD}
    with make_client(world.settings) as client:
        without = client.post("/api/v1/auth/login", json=good)
        assert without.status_code == 401
        assert "mfa_required" in without.headers["www-authenticate"]
        wrong = client.post("/api/v1/auth/login", json={**good, "code": "000000"})
        assert wrong.status_code == 401
        code = next_code(secret)
        ok = client.post("/api/v1/auth/login", json={**good, "code": code})
        assert ok.status_code == 200, ok.text
        me = client.get("/api/v1/auth/me",
                        headers={"Authorization": f"Bearer {ok.json()['token']}"}).json()
        assert me["second_factor"] is True and me["mfa_enrolled"] is True
        replayed = client.post("/api/v1/auth/login", json={**good, "code": code})
        assert replayed.status_code == 401
    actions = [r[0] for r in admin_conn.execute(
        "SELECT action FROM hv.audit_log WHERE target = %s ORDER BY id",
        (account.email,)).fetchall()]
    assert actions.count("auth.mfa-failed") == 2  # the wrong code and the replay
    assert "mfa.enrol" in actions and actions.count("auth.login") == 2


def test_a_recovery_code_works_once(world: World, admin_conn: psycopg.Connection,
                                    fresh_limiter: None) -> None:
    account, _, codes = enrolled_admin(admin_conn)
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = admin_conn.execute("SELECT code_hash FROM hv.recovery_codes WHERE account_id = %s",
                                (account.id,)).fetchall()
    assert len(stored) == 10 and all(codes[0].encode() not in bytes(r[0]) for r in stored)
    pending = signin.password_login(admin_conn, SETUP, account.email, PASSWORD, hours=1)
    assert isinstance(pending, signin.Pending) and pending.purpose == "code"
    assert signin.answer(admin_conn, SETUP, pending.secret, codes[3].upper(), hours=1)
    again = signin.password_login(admin_conn, SETUP, account.email, PASSWORD, hours=1)
    assert isinstance(again, signin.Pending)
    assert signin.answer(admin_conn, SETUP, again.secret, codes[3], hours=1) is None
    assert mfa.recovery_codes_left(admin_conn, account.id) == 9


def test_a_pending_sign_in_is_used_once_and_dies_after_five_wrong_codes(
        admin_conn: psycopg.Connection) -> None:
    account, secret, _ = enrolled_admin(admin_conn)
    pending = signin.password_login(admin_conn, SETUP, account.email, PASSWORD, hours=1)
    assert isinstance(pending, signin.Pending)
    for _ in range(signin.CHALLENGE_ATTEMPTS):
        assert signin.answer(admin_conn, SETUP, pending.secret, "123456", hours=1) is None
    # The right code now comes too late: the challenge is dead.
    assert signin.answer(admin_conn, SETUP, pending.secret, next_code(secret),
                         hours=1) is None
    other = signin.password_login(admin_conn, SETUP, account.email, PASSWORD, hours=1)
    assert isinstance(other, signin.Pending)
    code = next_code(secret)
    assert signin.answer(admin_conn, SETUP, other.secret, code, hours=1)
    assert signin.answer(admin_conn, SETUP, other.secret, code, hours=1) is None  # used up


def test_a_token_made_in_a_session_never_outlives_nor_outrights_it(
        world: World, admin_conn: psycopg.Connection, fresh_limiter: None) -> None:
    account = fresh_admin(admin_conn, rights=("read", "export"))
    session = signin.password_login(admin_conn, SETUP, account.email, PASSWORD, hours=2,
                                    kind="session")
    assert isinstance(session, accounts.IssuedToken)
    headers = {"Authorization": f"Bearer {session.secret}"}
    with make_client(world.settings) as client:
        made = client.post("/api/v1/tokens", headers=headers,
                           json={"rights": ["read"], "expires_days": 365, "label": "script"})
        assert made.status_code == 201, made.text
        child = made.json()
        assert session.expires_at is not None
        assert datetime.fromisoformat(child["expires_at"]) <= session.expires_at
        child_headers = {"Authorization": f"Bearer {child['token']}"}
        # The child cannot make a token with more rights than itself.
        assert client.post("/api/v1/tokens", headers=child_headers,
                           json={"rights": ["export"]}).status_code == 403
        grandchild = client.post("/api/v1/tokens", headers=child_headers, json={"rights": ["read"]})
        assert grandchild.status_code == 201
        grand_headers = {"Authorization": f"Bearer {grandchild.json()['token']}"}
        assert client.get("/api/v1/auth/me", headers=grand_headers).status_code == 200
        # Ending the session ends every token made from it.
        assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
        assert client.get("/api/v1/auth/me", headers=child_headers).status_code == 401
        assert client.get("/api/v1/auth/me", headers=grand_headers).status_code == 401


def test_a_token_whose_parent_expired_stops_working(admin_conn: psycopg.Connection) -> None:
    account = fresh_admin(admin_conn, rights=("read",))
    session = signin.password_login(admin_conn, SETUP, account.email, PASSWORD, hours=2,
                                    kind="session")
    assert isinstance(session, accounts.IssuedToken)
    principal = accounts.authenticate(admin_conn, session.secret)
    assert principal is not None
    child = accounts.create_token(admin_conn, SETUP, email=account.email, parent=principal,
                                  expires_at=datetime.now(UTC) + timedelta(days=30))
    assert child.expires_at == session.expires_at
    assert accounts.authenticate(admin_conn, child.secret) is not None
    # Its own expiry says otherwise (written by hand), but the parent is gone.
    admin_conn.execute("UPDATE hv.api_tokens SET expires_at = now() - interval '1 second'"
                       " WHERE id = %s", (session.id,))
    admin_conn.execute("UPDATE hv.api_tokens SET expires_at = now() + interval '1 day'"
                       " WHERE id = %s", (child.id,))
    assert accounts.authenticate(admin_conn, child.secret) is None


def test_a_password_change_revokes_every_session_and_token(
        world: World, admin_conn: psycopg.Connection, fresh_limiter: None) -> None:
    account = fresh_admin(admin_conn, rights=("read",))
    first = signin.password_login(admin_conn, SETUP, account.email, PASSWORD, hours=2)
    other = accounts.create_token(admin_conn, SETUP, email=account.email, label="script")
    assert isinstance(first, accounts.IssuedToken)
    with make_client(world.settings) as client:
        headers = {"Authorization": f"Bearer {first.secret}"}
        wrong = client.post("/api/v1/auth/password", headers=headers,
                            json={"current": "not it at all", "new": "another long password"})
        assert wrong.status_code == 403
        assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
        changed = client.post("/api/v1/auth/password", headers=headers,
                              json={"current": PASSWORD, "new": "another long password"})
        assert changed.status_code == 204
        assert client.get("/api/v1/auth/me", headers=headers).status_code == 401
        assert client.get("/api/v1/auth/me", headers={
            "Authorization": f"Bearer {other.secret}"}).status_code == 401
        assert client.post("/api/v1/auth/login", json={
            "email": account.email, "password": "another long password"}).status_code == 200


def test_suspending_a_user_in_the_file_revokes_their_tokens_and_refuses_sign_in(
        world: World, admin_conn: psycopg.Connection, fresh_limiter: None) -> None:
    email = f"sam-{uuid.uuid4().hex[:6]}@beta.example.org"
    spec = world_spec(admin_conn, "beta")
    user = User(name="Sam Suspendu", email=email, rights=["read"])
    accounts.sync_users(admin_conn, spec.model_copy(update={"users": [user]}), SETUP)
    accounts.set_password(admin_conn, SETUP, email, PASSWORD)
    token = accounts.create_token(admin_conn, SETUP, email=email)
    assert accounts.authenticate(admin_conn, token.secret) is not None
    changes = accounts.sync_users(admin_conn, spec.model_copy(update={"users": [
        user.model_copy(update={"suspended": True})]}), SETUP)
    assert changes == [f"~ beta: account {email} (read, suspended)"]
    assert accounts.authenticate(admin_conn, token.secret) is None
    with make_client(world.settings) as client:
        assert client.post("/api/v1/auth/login", json={
            "email": email, "password": PASSWORD}).status_code == 401


def world_spec(conn: psycopg.Connection, member: str) -> Any:
    from hypervision.tenancy.spec import load_dir
    from tests.conftest import TENANTS

    return next(s for s in load_dir(TENANTS) if s.name == member)


def test_mfa_required_in_the_file_applies_to_a_reader(admin_conn: psycopg.Connection) -> None:
    email = f"rita-{uuid.uuid4().hex[:6]}@beta.example.org"
    spec = world_spec(admin_conn, "beta")
    accounts.sync_users(admin_conn, spec.model_copy(update={"users": [
        User(name="Rita", email=email, rights=["read"], mfa="required")]}), SETUP)
    accounts.set_password(admin_conn, SETUP, email, PASSWORD)
    outcome = signin.password_login(admin_conn, SETUP, email, PASSWORD, hours=1)
    assert isinstance(outcome, signin.Pending) and outcome.purpose == "enrol"


def test_the_login_limiter_is_shared_and_flooding_other_keys_resets_nothing(
        world: World, fresh_limiter: None) -> None:
    from hypervision.api.security import LoginLimiter

    one = LoginLimiter(world.settings.redis_url, attempts=3, window=60)
    two = LoginLimiter(world.settings.redis_url, attempts=3, window=60)
    try:
        assert one.hit("email:x@example.org") == 0
        assert two.hit("email:x@example.org") == 0
        assert one.hit("email:x@example.org") == 0
        # A fourth attempt, from the other process: refused.
        assert two.hit("email:x@example.org") > 0
        for i in range(2000):
            one.hit(f"addr:198.18.{i // 250}.{i % 250}")
        assert one.hit("email:x@example.org") > 0
        assert two.hit("email:x@example.org") > 0
    finally:
        one.close()
        two.close()


def test_api_logins_share_the_limit_across_processes(world: World,
                                                     fresh_limiter: None) -> None:
    wrong = {"email": "ana@alpha.example.org", "password": "not the password"}
    with make_client(world.settings, api_login_attempts=2) as one, \
            make_client(world.settings, api_login_attempts=2) as two:
        assert one.post("/api/v1/auth/login", json=wrong).status_code == 401
        assert two.post("/api/v1/auth/login", json=wrong).status_code == 401
        assert one.post("/api/v1/auth/login", json=wrong).status_code == 429
        assert two.post("/api/v1/auth/login", json=wrong).status_code == 429

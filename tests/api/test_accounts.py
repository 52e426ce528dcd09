"""Accounts from the tenant files, passwords, token lifetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import psycopg
import pytest

from hypervision import accounts
from hypervision.tenancy.spec import User
from tests.api.conftest import SETUP, World

pytestmark = pytest.mark.services


def _spec(name: str, *users: User | SimpleNamespace) -> SimpleNamespace:
    return SimpleNamespace(name=name, users=list(users))


def test_declared_users_become_accounts_and_leave_as_deactivated_accounts(
    world: World, admin_conn: psycopg.Connection,
) -> None:
    bob = User(name="Bob Admin", email="bob@beta.example.org",
               rights=["read", "export", "admin"])
    dora = User(name="Dora", email="Dora@Beta.example.org", rights=["read", "export"])
    planned = accounts.sync_users(admin_conn, _spec("beta", bob, dora), SETUP, dry_run=True)
    assert planned == ["+ beta: account dora@beta.example.org (read, export)"]
    assert accounts.get_account(admin_conn, "dora@beta.example.org") is None
    assert accounts.sync_users(admin_conn, _spec("beta", bob, dora), SETUP) == planned
    assert accounts.sync_users(admin_conn, _spec("beta", bob, dora), SETUP) == []
    token = accounts.create_token(admin_conn, SETUP, email="dora@beta.example.org")
    assert accounts.authenticate(admin_conn, token.secret) is not None

    gone = accounts.sync_users(admin_conn, _spec("beta", bob), SETUP)
    assert gone == ["- beta: account dora@beta.example.org deactivated (no longer declared)"]
    assert accounts.authenticate(admin_conn, token.secret) is None
    account = accounts.get_account(admin_conn, "dora@beta.example.org")
    assert account is not None and not account.active
    assert accounts.authenticate(admin_conn, world.tokens["beta"]) is not None
    changes = admin_conn.execute(
        "SELECT action FROM hv.audit_log WHERE target = 'dora@beta.example.org' ORDER BY id"
    ).fetchall()
    assert [c[0] for c in changes] == ["account.create", "account.update", "token.revoke-all"]


def test_an_email_belongs_to_one_member_and_operators_to_the_syndicate(
    admin_conn: psycopg.Connection, world: World,
) -> None:
    alice_in_beta = User(name="Alice", email="alice@alpha.example.org", rights=["read"])
    with pytest.raises(accounts.AccountError, match="already an account of member 'alpha'"):
        accounts.sync_users(admin_conn, _spec("beta", alice_in_beta), SETUP)
    flagged = SimpleNamespace(name="Op", email="op@alpha.example.org", rights=["read"],
                              operator=True)
    with pytest.raises(accounts.AccountError, match="syndicate"):
        accounts.sync_users(admin_conn, _spec("alpha", flagged), SETUP)


def test_passwords_are_argon2_hashes_and_short_ones_are_refused() -> None:
    hashed = accounts.hash_password("a perfectly long password")
    assert hashed.startswith("$argon2id$")
    assert accounts.check_password(hashed, "a perfectly long password")
    assert not accounts.check_password(hashed, "a perfectly wrong password")
    assert not accounts.check_password(None, "anything at all")
    with pytest.raises(accounts.AccountError):
        accounts.hash_password("short")


def test_a_token_expires_and_cannot_outlive_the_limit(admin_conn: psycopg.Connection,
                                                      world: World) -> None:
    with pytest.raises(accounts.AccountError, match="future"):
        accounts.create_token(admin_conn, SETUP, email="ana@alpha.example.org",
                              expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(accounts.AccountError, match="at most"):
        accounts.create_token(admin_conn, SETUP, email="ana@alpha.example.org",
                              expires_at=datetime.now(UTC) + timedelta(days=1000))
    assert accounts.authenticate(admin_conn, world.tokens["expired"]) is None
    assert accounts.authenticate(admin_conn, world.tokens["revoked"]) is None
    assert accounts.authenticate(admin_conn, "hv_" + "x" * 43) is None
    assert accounts.authenticate(admin_conn, "not even a token") is None


def test_a_tokens_rights_shrink_with_its_accounts(admin_conn: psycopg.Connection,
                                                  world: World) -> None:
    accounts.upsert_account(admin_conn, SETUP, email="carl@alpha.example.org", name="Carl",
                            member="alpha", rights=["read", "export"])
    issued = accounts.create_token(admin_conn, SETUP, email="carl@alpha.example.org")
    accounts.upsert_account(admin_conn, SETUP, email="carl@alpha.example.org", name="Carl",
                            member="alpha", rights=["read"])
    principal = accounts.authenticate(admin_conn, issued.secret)
    assert principal is not None and principal.rights == frozenset({"read"})

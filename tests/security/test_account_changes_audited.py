"""Finding 4: whatever changes an account, a token or a grant (the API's role included,
even bypassing the platform's code) leaves an audit entry written by the database."""

from __future__ import annotations

import psycopg
import pytest

from hypervision import accounts
from hypervision.db import connect_as
from hypervision.settings import Settings

pytestmark = pytest.mark.services

SETUP = accounts.Who("system:test-setup")


def _entries(admin: psycopg.Connection, target: str) -> list[tuple]:
    return admin.execute(
        "SELECT actor, action, member_slug, params->>'session_user', before, after"
        " FROM hv.audit_log WHERE target = %s ORDER BY id", (target,)).fetchall()


def test_a_direct_change_by_the_api_role_is_audited_by_the_database(
    platform_db: Settings, admin: psycopg.Connection
) -> None:
    accounts.upsert_account(admin, SETUP, email="dora@alpha.example.org", name="Dora",
                            member="alpha", rights=["read"])
    account_id = admin.execute("SELECT id FROM hv.accounts WHERE email = %s",
                               ("dora@alpha.example.org",)).fetchone()[0]
    issued = accounts.create_token(admin, SETUP, email="dora@alpha.example.org", label="t")
    accounts.revoke_token(admin, SETUP, issued.id)
    with connect_as(platform_db, platform_db.api_role, autocommit=True) as api:
        api.execute("UPDATE hv.accounts SET rights = '{read,export,admin}',"
                    " password_hash = 'x' WHERE id = %s", (account_id,))
        api.execute("UPDATE hv.api_tokens SET revoked_at = NULL, revoked_by = NULL"
                    " WHERE id = %s", (issued.id,))
        # Bookkeeping of every request: not an entry each time.
        api.execute("UPDATE hv.api_tokens SET last_used_at = now() WHERE id = %s", (issued.id,))

    changed = _entries(admin, f"hv.accounts:{account_id}")[-1]
    assert changed[:4] == ("system:database", "accounts.row-update", "alpha", "hv_api")
    assert changed[4]["rights"] == ["read"] and changed[5]["rights"] == ["read", "export", "admin"]
    # A secret's value never enters the trail, only that it changed.
    assert changed[5]["password_hash"] == "(changed)"
    revived = _entries(admin, f"hv.api_tokens:{issued.id}")
    assert [e[1] for e in revived].count("api_tokens.row-update") == 2  # revoked, revived
    assert revived[-1][5] == {"revoked_at": None, "revoked_by": None}


def test_the_api_role_cannot_write_the_columns_it_never_changes(
    platform_db: Settings, admin: psycopg.Connection
) -> None:
    with connect_as(platform_db, platform_db.api_role, autocommit=True) as api, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        api.execute("UPDATE hv.api_tokens SET token_hash = token_hash WHERE false")

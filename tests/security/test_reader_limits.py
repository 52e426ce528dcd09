"""Finding 7: members' readers cannot run a statement or hold a transaction forever."""

from __future__ import annotations

import psycopg
import pytest

from hypervision.db import connect_as
from hypervision.settings import Settings
from hypervision.superset.provision import OPERATOR_READER

pytestmark = pytest.mark.services


def test_a_members_reader_has_a_statement_and_an_idle_transaction_timeout(
    platform_db: Settings,
) -> None:
    with connect_as(platform_db, "alpha_reader") as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("5min",)
        assert conn.execute("SHOW idle_in_transaction_session_timeout").fetchone() == ("5min",)


def test_a_reader_statement_beyond_its_timeout_is_cancelled(
    platform_db: Settings, admin: psycopg.Connection
) -> None:
    admin.execute("ALTER ROLE beta_reader SET statement_timeout = '200ms'")
    try:
        with connect_as(platform_db, "beta_reader") as conn, \
                pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(30)")
    finally:
        admin.execute("ALTER ROLE beta_reader SET statement_timeout = '5min'")


def test_the_operators_reader_is_limited_too(platform_db: Settings,
                                             admin: psycopg.Connection) -> None:
    from hypervision.superset.provision import _ensure_operator_login

    _ensure_operator_login(admin, platform_db)
    settings = dict(admin.execute(
        "SELECT split_part(s, '=', 1), split_part(s, '=', 2) FROM pg_db_role_setting d"
        " JOIN pg_roles r ON r.oid = d.setrole, unnest(d.setconfig) s WHERE r.rolname = %s",
        (OPERATOR_READER,)).fetchall())
    assert settings["statement_timeout"] == "5min"
    assert settings["idle_in_transaction_session_timeout"] == "5min"

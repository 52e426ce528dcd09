"""Least privilege in the database, checked on the migrated platform database.

Most checks go over every role the cluster has rather than a list of known ones, so that
a role or a table added later is held to the same rules. See docs/nis2.md ("Access
control") for what these checks stand for.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hypervision.db import connect_as
from hypervision.settings import Settings

pytestmark = pytest.mark.services

AUDIT_CONTENT = ("actor", "member_slug", "action", "target", "params", "before", "after")
WRITE_PRIVILEGES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def application_roles(admin: psycopg.Connection[Any]) -> list[str]:
    """Every role but the superusers and PostgreSQL's own."""
    return [r[0] for r in admin.execute(
        "SELECT rolname FROM pg_roles WHERE NOT rolsuper AND rolname !~ '^pg_' ORDER BY 1")]


def member_schemas(admin: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in admin.execute(
        "SELECT slug, schema_name FROM hv.members ORDER BY slug")]


@pytest.fixture
def ingest(platform_db: Settings) -> Iterator[psycopg.Connection[Any]]:
    with connect_as(platform_db, platform_db.ingest_role, autocommit=True) as conn:
        yield conn


@pytest.fixture
def alpha_reader(platform_db: Settings) -> Iterator[psycopg.Connection[Any]]:
    with connect_as(platform_db, "alpha_reader", autocommit=True) as conn:
        yield conn


# The audit trail --------------------------------------------------------------------------


def test_the_ingestion_role_cannot_read_the_audit_trail(
    ingest: psycopg.Connection[Any],
) -> None:
    for column in AUDIT_CONTENT:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            ingest.execute(sql.SQL("SELECT {} FROM hv.audit_log LIMIT 1").format(
                sql.Identifier(column)))


def test_the_ingestion_role_cannot_read_the_audit_trail_through_a_writer_role(
    ingest: psycopg.Connection[Any], admin: psycopg.Connection[Any],
) -> None:
    for slug, _ in member_schemas(admin):
        ingest.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(f"{slug}_writer")))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            ingest.execute("SELECT actor, action, params FROM hv.audit_log LIMIT 1")
        ingest.execute("RESET ROLE")


def test_no_application_role_can_alter_or_erase_the_audit_trail(
    admin: psycopg.Connection[Any],
) -> None:
    owner = admin.execute(
        "SELECT r.rolsuper FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner"
        " WHERE c.oid = 'hv.audit_log'::regclass").fetchone()
    assert owner == (True,), "hv.audit_log must belong to the superuser that migrates"
    allowed = []
    for role in application_roles(admin):
        for table, privileges in (("hv.audit_log", ("UPDATE", "DELETE", "TRUNCATE")),
                                  ("hv.audit_head", ("INSERT", "UPDATE", "DELETE", "TRUNCATE"))):
            for privilege in privileges:
                row = admin.execute("SELECT has_table_privilege(%s, %s, %s)",
                                    (role, table, privilege)).fetchone()
                if row == (True,):
                    allowed.append(f"{role}: {privilege} on {table}")
    assert allowed == []


def test_an_entry_cannot_be_rewritten_even_by_a_role_holding_update(
    admin: psycopg.Connection[Any],
) -> None:
    """The triggers refuse what a wrong grant would allow."""
    admin.execute("INSERT INTO hv.audit_log (actor, action, source) VALUES"
                  " ('system:hardening-test', 'test.write', 'job')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        admin.execute("UPDATE hv.audit_log SET action = 'test.forged'"
                      " WHERE actor = 'system:hardening-test'")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        admin.execute("DELETE FROM hv.audit_log WHERE actor = 'system:hardening-test'")


# Member roles -----------------------------------------------------------------------------


def test_member_reader_roles_hold_no_write_privilege_on_any_table(
    admin: psycopg.Connection[Any],
) -> None:
    granted = []
    for slug, schema in member_schemas(admin):
        reader = f"{slug}_reader"
        tables = [r[0] for r in admin.execute(
            "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE n.nspname IN (%s, 'hv', 'public')"
            " AND c.relkind IN ('r', 'p', 'v', 'm')", (schema,))]
        for table in tables:
            for privilege in WRITE_PRIVILEGES:
                row = admin.execute("SELECT has_table_privilege(%s, %s, %s)",
                                    (reader, table, privilege)).fetchone()
                if row == (True,):
                    granted.append(f"{reader}: {privilege} on {table}")
        for target in (schema, "hv", "public"):
            row = admin.execute("SELECT has_schema_privilege(%s, %s, 'CREATE')",
                                (reader, target)).fetchone()
            if row == (True,):
                granted.append(f"{reader}: CREATE in schema {target}")
    assert granted == []


def test_a_reader_cannot_insert_update_or_delete_its_own_rows(
    alpha_reader: psycopg.Connection[Any],
) -> None:
    for statement in (
        "INSERT INTO tenant_alpha.measurements VALUES"
        " (now(), 'a1a1a1a1a1a10001', 'volume', 1, 'L', gen_random_uuid())",
        "UPDATE tenant_alpha.measurements SET value = 0",
        "DELETE FROM tenant_alpha.measurements",
        "TRUNCATE tenant_alpha.uplinks",
        "CREATE TABLE tenant_alpha.intruder (x int)",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            alpha_reader.execute(statement)


def test_a_reader_cannot_read_another_member_nor_take_another_role(
    alpha_reader: psycopg.Connection[Any],
) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        alpha_reader.execute("SELECT count(*) FROM tenant_beta.measurements")
    for role in ("beta_reader", "alpha_writer", "alpha_owner"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            alpha_reader.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))


def test_the_ingestion_role_reaches_member_tables_only_through_their_writer_role(
    ingest: psycopg.Connection[Any],
) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        ingest.execute("SELECT count(*) FROM tenant_alpha.measurements")
    ingest.execute("SET ROLE alpha_writer")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        ingest.execute("SELECT count(*) FROM tenant_beta.measurements")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        ingest.execute("DELETE FROM tenant_alpha.measurements")
    ingest.execute("RESET ROLE")


# The database and the cluster -------------------------------------------------------------


def test_public_has_no_connect_on_the_platform_database(
    admin: psycopg.Connection[Any], platform_db: Settings,
) -> None:
    row = admin.execute("SELECT has_database_privilege('public', %s, 'CONNECT')",
                        (platform_db.pg_database,)).fetchone()
    assert row == (False,)


def test_a_login_role_without_a_grant_cannot_connect(
    admin: psycopg.Connection[Any], platform_db: Settings,
) -> None:
    stranger = "hv_hardening_stranger"
    admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(stranger)))
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
        sql.Identifier(stranger), sql.Literal(platform_db.ensure_role_password(stranger))))
    try:
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            connect_as(platform_db, stranger).close()
    finally:
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(stranger)))


def test_no_application_role_can_create_objects_in_shared_schemas(
    admin: psycopg.Connection[Any],
) -> None:
    allowed = []
    for role in ["public", *application_roles(admin)]:
        for schema in ("public", "hv"):
            row = admin.execute("SELECT has_schema_privilege(%s, %s, 'CREATE')",
                                (role, schema)).fetchone()
            if row == (True,):
                allowed.append(f"{role}: CREATE in {schema}")
    assert allowed == []


def test_application_login_roles_hold_no_cluster_power(admin: psycopg.Connection[Any]) -> None:
    powerful = admin.execute(
        "SELECT rolname FROM pg_roles WHERE rolcanlogin AND NOT rolsuper AND rolname !~ '^pg_'"
        " AND (rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls)").fetchall()
    assert powerful == []


def test_the_only_superuser_is_the_platforms_administrator(
    admin: psycopg.Connection[Any], platform_db: Settings,
) -> None:
    superusers = admin.execute("SELECT rolname FROM pg_roles WHERE rolsuper").fetchall()
    assert superusers == [(platform_db.pg_superuser,)]


def test_every_stored_password_is_a_scram_verifier(admin: psycopg.Connection[Any]) -> None:
    weak = admin.execute(
        "SELECT rolname FROM pg_authid WHERE rolpassword IS NOT NULL"
        " AND rolpassword NOT LIKE 'SCRAM-SHA-256$%'").fetchall()
    assert weak == []

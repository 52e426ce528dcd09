"""A member's views live in one file each (migrations/tenant/views/) and are re-applied
after the migrations; SCHEMA.sql shows each schema kind as the migrations leave it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import resources
from typing import Any

import psycopg
import pytest

from hypervision import migrate, schema_file
from hypervision.db import connect_admin
from hypervision.settings import Settings

pytestmark = pytest.mark.services

SCHEMA = "tenant_alpha"
OWNER = "alpha_owner"


@pytest.fixture
def alpha(platform_db: Settings) -> Iterator[psycopg.Connection[Any]]:
    """alpha's schema, with its real views put back however the test leaves them."""
    with connect_admin(platform_db) as conn:
        yield conn
        conn.execute("DROP VIEW IF EXISTS tenant_alpha.t_base CASCADE")
        migrate.apply_views(conn, SCHEMA, OWNER, force=True)


def test_the_committed_schema_files_match_a_fresh_migration(services: Settings) -> None:
    assert schema_file.differences(services) == [], (
        "migrations/*/SCHEMA.sql differ from the migrations: run `hypervision schema --write`"
    )


def test_no_numbered_tenant_migration_defines_a_view() -> None:
    folder = resources.files("hypervision") / "migrations" / "tenant"
    defining = [entry.name for entry in folder.iterdir()
                if re.match(r"\d{4}_", entry.name)
                and re.search(r"CREATE (OR REPLACE )?VIEW", entry.read_text("utf-8"))]
    assert defining == []


def test_each_view_comes_after_the_views_it_reads() -> None:
    views = migrate.load_views()
    names = [v.name for v in views]
    assert len(names) > 20 and "v_parametres" in names
    for position, view in enumerate(views):
        body = re.sub(r"--[^\n]*", "", view.text)
        read = {other for other in names if other != view.name
                and re.search(rf"\b{other}\b", body)}
        assert read <= set(names[:position]), (view.name, read - set(names[:position]))
    # dash_gateways reads v_sante_passerelles, which reads v_parametres.
    assert (names.index("v_parametres") < names.index("v_sante_passerelles")
            < names.index("dash_gateways"))


def test_a_changed_view_file_is_applied_with_the_views_that_read_it(
    alpha: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def files(base: str) -> list[migrate.View]:
        return [
            migrate.View("t_base", f"CREATE OR REPLACE VIEW t_base AS SELECT {base} AS a"),
            migrate.View("t_top", "CREATE OR REPLACE VIEW t_top AS SELECT a FROM t_base"),
        ]

    monkeypatch.setattr(migrate, "load_views", lambda track="tenant": files("1"))
    assert migrate.apply_views(alpha, SCHEMA, OWNER) is True
    assert migrate.apply_views(alpha, SCHEMA, OWNER) is False  # nothing changed

    # A new column type: CREATE OR REPLACE refuses it, so the view is created anew, and
    # t_top (dropped with it) is created again after it.
    monkeypatch.setattr(migrate, "load_views", lambda track="tenant": files("'x'::text"))
    assert migrate.apply_views(alpha, SCHEMA, OWNER) is True
    owner, kind = alpha.execute(
        "SELECT c.relowner::regrole::text, format_type(a.atttypid, a.atttypmod)"
        " FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'a'"
        " WHERE c.oid = 'tenant_alpha.t_top'::regclass").fetchone()
    assert (owner, kind) == (OWNER, "text")
    # ... and the member's reader may read it again.
    with alpha.transaction():
        alpha.execute("SET LOCAL ROLE alpha_reader")
        assert alpha.execute("SELECT a FROM tenant_alpha.t_top").fetchone() == ("x",)


def test_migrate_tenant_applies_the_views_of_a_member_that_has_none_yet(
    alpha: psycopg.Connection[Any],
) -> None:
    """A member migrated before views had their own files (or whose views were lost)
    gets them at its next migration, even with no numbered migration pending."""
    alpha.execute("DROP VIEW tenant_alpha.dash_gateways")
    alpha.execute("DELETE FROM hv.schema_views WHERE schema_name = %s", (SCHEMA,))
    logged: list[str] = []
    assert migrate.migrate_tenant(alpha, SCHEMA, OWNER, log=logged.append) == 0
    assert logged == [f"~ {SCHEMA} views"]
    assert alpha.execute(
        "SELECT to_regclass('tenant_alpha.dash_gateways') IS NOT NULL").fetchone() == (True,)
    assert alpha.execute(
        "SELECT has_table_privilege('alpha_reader', 'tenant_alpha.dash_gateways', 'SELECT')"
    ).fetchone() == (True,)

"""Test members of the transparency tests, applied for real and removed afterwards.

They are declared here rather than in tests/payloads/tenants/ so that other tests keep
seeing only alpha and beta; `remove_member` deletes everything a member left in hv.*
(the audit trail excepted: it is append-only), its schema and its roles.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import yaml
from psycopg import sql

from hypervision.settings import Settings
from hypervision.tenancy import apply as tenancy
from hypervision.tenancy.spec import TenantSpec, load_file
from ingest.decode import Catalogue


def spec_from(tmp: Path, text: str) -> TenantSpec:
    name = yaml.safe_load(text)["name"]
    path = tmp / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return load_file(path)


def apply_member(admin: psycopg.Connection, settings: Settings, spec: TenantSpec) -> None:
    tenancy.apply(admin, [spec], Catalogue.load(), settings, log=lambda _: None)


def _delete_rows(admin: psycopg.Connection, table: tuple[str, str], where: sql.Composable,
                 params: tuple[object, ...]) -> None:
    """Delete a table's rows matching `where`, after the rows of other tables that
    reference them (foreign keys of one column), depth first."""
    name = sql.Identifier(*table)
    refs = admin.execute(
        """
        SELECT n.nspname, c.relname, a.attname, pa.attname
        FROM pg_constraint k
        JOIN pg_class c ON c.oid = k.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
        JOIN pg_attribute pa ON pa.attrelid = k.confrelid AND pa.attnum = k.confkey[1]
        WHERE k.contype = 'f' AND k.confrelid = %s::regclass AND k.conrelid <> k.confrelid
        """, (name.as_string(admin),)).fetchall()
    for schema, child, column, parent_column in refs:
        _delete_rows(admin, (schema, child), sql.SQL("{} IN (SELECT {} FROM {} WHERE {})").format(
            sql.Identifier(column), sql.Identifier(parent_column), name, where), params)
    admin.execute(sql.SQL("DELETE FROM {} WHERE {}").format(name, where), params)


def remove_member(admin: psycopg.Connection, spec: TenantSpec) -> None:
    slug = spec.name
    with admin.transaction():
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
            sql.Identifier(spec.schema)))
        # Every table that references the member (and the rows that reference those),
        # then the member itself.
        refs = admin.execute(
            """
            SELECT n.nspname, c.relname, a.attname
            FROM pg_constraint k
            JOIN pg_class c ON c.oid = k.conrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
            WHERE k.contype = 'f' AND k.confrelid = 'hv.members'::regclass
            """
        ).fetchall()
        for schema, name, column in refs:
            _delete_rows(admin, (schema, name),
                         sql.SQL("{} = %s").format(sql.Identifier(column)), (slug,))
        admin.execute("DELETE FROM hv.dead_letters WHERE member_slug = %s", (slug,))
        admin.execute("DELETE FROM hv.ingest_outcomes WHERE member_slug = %s", (slug,))
        admin.execute("DELETE FROM hv.schema_migrations WHERE schema_name = %s", (spec.schema,))
        admin.execute("DELETE FROM hv.schema_views WHERE schema_name = %s", (spec.schema,))
        admin.execute("DELETE FROM hv.members WHERE slug = %s", (slug,))
        for kind in ("reader", "writer", "owner"):
            role = spec.role(kind)  # type: ignore[arg-type]
            # A member placed on another server has no roles on this one.
            if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))

"""Versioned schema migrations on two numbered tracks.

- `migrations/control/NNNN_*.sql`: the shared catalogue (schema `hv`), applied once.
- `migrations/tenant/NNNN_*.sql`: a member's own tables, applied to every member schema
  with `search_path` set to that schema and the member's owner role as current role, so
  the tables belong to the member. The files name no schema.

Applied versions are recorded per schema in `hv.schema_migrations`; each file runs in its
own transaction with its record, so a failed file leaves nothing half-applied.

A member's views are not in the numbered files: each is one file,
`migrations/tenant/views/<view>.sql`, that says what the view is now. They are re-applied
after the migrations, in the order in which they read each other, whenever a migration ran
or a view file changed (`hv.schema_views` keeps a digest of the files per schema), so a
view is changed by editing its file. A migration that changes a column a view reads drops
the view first; a view that is no longer wanted is dropped by a migration and its file
removed. `migrations/<track>/SCHEMA.sql` shows each schema kind as the migrations leave it
(hypervision.schema_file).
"""

from __future__ import annotations

import graphlib
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

from hypervision.roles import member_role

CONTROL = "control"
TENANT = "tenant"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_VIEW = re.compile(r"^([a-z][a-z0-9_]*)\.sql$")
_COMMENT = re.compile(r"--[^\n]*")


@dataclass(frozen=True)
class Migration:
    track: str
    version: int
    name: str
    text: str


def load(track: str) -> list[Migration]:
    """The migration files of a track, in version order."""
    folder = resources.files("hypervision") / "migrations" / track
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(track, int(match[1]), match[2], entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two {track} migrations share a version number: {versions}")
    return found


def _ensure_ledger(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("CREATE SCHEMA IF NOT EXISTS hv")
        conn.execute(
            """
            CREATE TABLE IF NOT EXISTS hv.schema_migrations (
                schema_name text NOT NULL,
                track       text NOT NULL,
                version     integer NOT NULL,
                name        text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (schema_name, version)
            )
            """
        )
        conn.execute(
            """
            CREATE TABLE IF NOT EXISTS hv.schema_views (
                schema_name text PRIMARY KEY,
                digest      text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            )
            """
        )


def applied_versions(conn: psycopg.Connection, schema: str) -> set[int]:
    rows = conn.execute(
        "SELECT version FROM hv.schema_migrations WHERE schema_name = %s", (schema,)
    ).fetchall()
    return {r[0] for r in rows}


def _apply(
    conn: psycopg.Connection,
    migration: Migration,
    schema: str,
    role: str | None,
) -> None:
    with conn.transaction():
        if migration.track == TENANT:
            conn.execute(
                sql.SQL("SET LOCAL search_path = {}, public").format(sql.Identifier(schema))
            )
        if role:
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL(migration.text))
        if role:
            conn.execute("RESET ROLE")
        conn.execute(
            "INSERT INTO hv.schema_migrations (schema_name, track, version, name)"
            " VALUES (%s, %s, %s, %s)",
            (schema, migration.track, migration.version, migration.name),
        )


def migrate_control(conn: psycopg.Connection, log: Callable[[str], None] = print) -> int:
    """Apply pending control migrations; returns how many ran."""
    _ensure_ledger(conn)
    done = applied_versions(conn, "hv")
    count = 0
    for migration in load(CONTROL):
        if migration.version not in done:
            log(f"+ control {migration.version:04d}_{migration.name}")
            _apply(conn, migration, "hv", None)
            count += 1
    return count


def pending_tenant(conn: psycopg.Connection, schema: str) -> list[Migration]:
    done = applied_versions(conn, schema)
    return [m for m in load(TENANT) if m.version not in done]


def migrate_tenant(
    conn: psycopg.Connection, schema: str, owner_role: str, log: Callable[[str], None] = print
) -> int:
    """Apply pending tenant migrations to one member schema, as its owner role, then its
    views if a migration ran or a view file changed."""
    count = 0
    for migration in pending_tenant(conn, schema):
        log(f"+ {schema} {migration.version:04d}_{migration.name}")
        _apply(conn, migration, schema, owner_role)
        count += 1
    if apply_views(conn, schema, owner_role, force=count > 0):
        log(f"~ {schema} views")
    return count


@dataclass(frozen=True)
class View:
    name: str
    text: str


def load_views(track: str = TENANT) -> list[View]:
    """A track's view files, each after the views it reads (found by name in its SQL,
    comments left out)."""
    folder = resources.files("hypervision") / "migrations" / track / "views"
    if not folder.is_dir():
        return []
    texts = {
        match[1]: entry.read_text("utf-8")
        for entry in folder.iterdir()
        if (match := _VIEW.match(entry.name))
    }
    reads = {
        name: sorted(other for other in texts if other != name
                     and re.search(rf"\b{other}\b", _COMMENT.sub("", text)))
        for name, text in sorted(texts.items())
    }
    return [View(name, texts[name]) for name in graphlib.TopologicalSorter(reads).static_order()]


def views_digest(views: list[View]) -> str:
    digest = hashlib.sha256()
    for view in views:
        digest.update(f"{view.name}\0{view.text}\0".encode())
    return digest.hexdigest()


def apply_views(
    conn: psycopg.Connection, schema: str, owner_role: str, *, force: bool = False
) -> bool:
    """(Re)create a member's views from their files, as its owner role, in one
    transaction, and grant them to its reader role; returns False when nothing changed
    since the last time (and not `force`)."""
    views = load_views(TENANT)
    digest = views_digest(views)
    _ensure_ledger(conn)
    with conn.transaction():
        row = conn.execute(
            "SELECT digest FROM hv.schema_views WHERE schema_name = %s FOR UPDATE", (schema,)
        ).fetchone()
        if row is not None and row[0] == digest and not force:
            return False
        conn.execute(sql.SQL("SET LOCAL search_path = {}, public").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner_role)))
        for view in views:
            try:
                with conn.transaction():
                    conn.execute(sql.SQL(view.text))
            except psycopg.errors.InvalidTableDefinition:
                # CREATE OR REPLACE keeps the columns a view had, names and types: one that
                # lost, renamed or retyped a column is created anew. Views reading it are
                # dropped with it and come after it in `views`, so they are created again.
                conn.execute(sql.SQL("DROP VIEW {} CASCADE").format(sql.Identifier(view.name)))
                conn.execute(sql.SQL(view.text))
        conn.execute("RESET ROLE")
        reader = member_role(owner_role.removesuffix("_owner"), "reader")
        if views:
            conn.execute(
                sql.SQL("GRANT SELECT ON {} TO {}").format(
                    sql.SQL(", ").join(sql.Identifier(schema, v.name) for v in views),
                    sql.Identifier(reader),
                )
            )
        conn.execute(
            "INSERT INTO hv.schema_views (schema_name, digest) VALUES (%s, %s)"
            " ON CONFLICT (schema_name) DO UPDATE SET digest = excluded.digest,"
            " applied_at = now()",
            (schema, digest),
        )
    return True

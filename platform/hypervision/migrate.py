"""Versioned schema migrations on two numbered tracks.

- `migrations/control/NNNN_*.sql`: the shared catalogue (schema `hv`), applied once.
- `migrations/tenant/NNNN_*.sql`: a member's own tables, applied to every member schema
  with `search_path` set to that schema and the member's owner role as current role, so
  the tables belong to the member. The files name no schema.

Applied versions are recorded per schema in `hv.schema_migrations`; each file runs in its
own transaction with its record, so a failed file leaves nothing half-applied.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

CONTROL = "control"
TENANT = "tenant"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


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
    """Apply pending tenant migrations to one member schema, as its owner role."""
    count = 0
    for migration in pending_tenant(conn, schema):
        log(f"+ {schema} {migration.version:04d}_{migration.name}")
        _apply(conn, migration, schema, owner_role)
        count += 1
    return count

"""Dumping a member's schema to files: what backups (hypervision.backup) and member
archives (hypervision.archive) both do before each writes its own format.

Both read in one snapshot, list the member schema's tables and columns from the PostgreSQL
catalogue, and checksum every file they wrote with SHA-256. The formats stay each module's
own (a backup folder with SHA256SUMS, a tar or zip archive with a manifest of digests):
only the reading and the hashing live here, so that a fix to either reaches both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql

# Files are hashed block by block: a table's dump can be larger than memory.
CHUNK = 1 << 20
# Which copy of the member's schema this is (tenant migration 2602): bookkeeping of the
# server it is on, never copied with the member's data.
INSTANCE_TABLE = "schema_instance"


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, as `sha256sum` prints it."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def folder_files(folder: Path) -> list[str]:
    """Every file below `folder`, as sorted relative POSIX names (how both formats name
    them)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@contextmanager
def snapshot(conn: psycopg.Connection) -> Iterator[None]:
    """Read the block in one REPEATABLE READ, READ ONLY transaction, so that every file
    written from it shows the same instant. `conn` is in autocommit mode: the isolation
    level is set by the transaction's first statement (a `BEGIN ISOLATION LEVEL ...` sent
    on a connection that is not would run inside psycopg's own BEGIN, and be ignored)."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


@dataclass(frozen=True)
class Instance:
    """Which copy of a member's schema this is (INSTANCE_TABLE): its id, how it arrived
    (`created`, or `move` on a move's target) and since when."""

    id: str
    arrived: str
    since: datetime


def schema_instance(conn: psycopg.Connection, schema: str) -> Instance:
    """The schema's copy, read through `conn` (its server)."""
    row = conn.execute(sql.SQL("SELECT id::text, arrived, since FROM {}").format(
        sql.Identifier(schema, INSTANCE_TABLE))).fetchone()
    assert row is not None  # tenant migration 2602 inserts its one row
    return Instance(*row)


def schema_tables(conn: psycopg.Connection, schema: str) -> dict[str, list[tuple[str, str]]]:
    """The schema's own tables, by name, each with its columns in column order as
    (name, type) pairs; generated columns aside (they are computed again on restore).

    A hypertable is a plain table here: its chunks live in `_timescaledb_internal` and
    are read through it. A partition is read through its parent, so it is not listed, nor
    is the schema's INSTANCE_TABLE.
    """
    rows = conn.execute(
        """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                            AND a.attgenerated = ''
        WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND c.relname <> %s
        ORDER BY c.relname, a.attnum
        """,
        (schema, INSTANCE_TABLE),
    ).fetchall()
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, pg_type in rows:
        tables.setdefault(table, []).append((column, pg_type))
    return tables

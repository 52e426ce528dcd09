"""Moving a member to another database server while the others go on
(`hypervision tenants move MEMBER --to SERVER`, docs/scale.md).

1. Prepare the target: the control schema's structure and the platform's roles on a
   member server, the member's roles (same passwords), its schema built by its migrations
   (so hypertables are hypertables), its grants. Tables already there (a copy left by an
   earlier move) are emptied.
2. Copy every table of the member's schema from the source, online, through one
   REPEATABLE READ snapshot; its xmin is remembered. Ingestion goes on meanwhile.
3. Pause the member's ingestion: `hv.members.ingest_paused_at` is set under the member's
   exclusive placement lock, which waits for the batches writing the member's rows to
   finish (hypervision.placement). From then on its events stay in the queue; the
   other members' go on.
4. Catch up: the append-only tables written by the pipeline get the rows written since the
   snapshot (`ingested_xid`, or the row's xmin for device_events, at or above its xmin;
   INSERT ... ON CONFLICT DO NOTHING, so rows copied twice count once); every other
   table (device state, downlinks, alerts, analytics) is copied again whole.
5. Verify: every table holds as many rows on the target as on the source. Otherwise the
   member resumes where it was, and the move fails saying which table differs.
6. Switch: `hv.members.server` names the target, `moved_from` the source, and the pause
   ends, in one transaction (audited). The member's queued events go to the target.

The source's copy is kept until `drop_old` (`tenants move MEMBER --drop-old`), which
checks again that the target holds at least as many rows as the old copy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from hypervision import audit, dump, migrate, placement, roles
from hypervision.settings import Settings
from hypervision.tenancy.apply import _on_server, _server_setup

# The pipeline's append-only tables, and the column telling which transaction wrote a row
# (`xmin` where the table has no `ingested_xid`).
APPEND_ONLY = {"uplinks": "ingested_xid", "measurements": "ingested_xid",
               "device_events": "xmin"}
# Columns set by the target itself (the writing transaction's id, for export cursors).
NOT_COPIED = {"ingested_xid"}
ACTOR = "system:tenancy"


class MoveError(Exception):
    """The move cannot be made, or did not verify; the message says why."""


@dataclass
class MoveResult:
    member: str
    source: str
    target: str
    copied: dict[str, int] = field(default_factory=dict)
    caught_up: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    paused_seconds: float = 0.0


def _tables(conn: psycopg.Connection, schema: str) -> dict[str, list[str]]:
    """The member's tables and their copied columns, in column order (the member data
    hypervision.dump lists, as backups and archives copy it)."""
    return {table: [column for column, _ in columns if column not in NOT_COPIED]
            for table, columns in dump.schema_tables(conn, schema).items()}


def _in_key_order(conn: psycopg.Connection, schema: str,
                  tables: dict[str, list[str]]) -> dict[str, list[str]]:
    """The tables with each one after those its foreign keys reference."""
    refs: dict[str, set[str]] = {t: set() for t in tables}
    for child, parent in conn.execute(
        """
        SELECT c.relname, p.relname FROM pg_constraint k
        JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE k.contype = 'f' AND n.nspname = %s AND p.relnamespace = n.oid
        """, (schema,)).fetchall():
        if child in refs and parent in refs and child != parent:
            refs[child].add(parent)
    ordered: list[str] = []
    while refs:
        ready = sorted(t for t, parents in refs.items() if not parents - set(ordered))
        if not ready:
            raise MoveError(f"{schema}: foreign keys in a cycle: {sorted(refs)}")
        for table in ready:
            ordered.append(table)
            del refs[table]
    return {t: tables[t] for t in ordered}


def _truncate(conn: psycopg.Connection, schema: str, tables: list[str]) -> None:
    """Empty these tables in one statement (tables referencing each other go together)."""
    if tables:
        with conn.transaction():
            conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(
                sql.Identifier(schema, t) for t in tables)))


def _copy(source: psycopg.Connection, target: psycopg.Connection, schema: str, table: str,
          columns: list[str], where: sql.Composable | None = None,
          params: tuple[Any, ...] = ()) -> int:
    """Copy the rows of one table (those `where` selects) from source to target, in
    binary, through a staging table: INSERT ... ON CONFLICT DO NOTHING. Returns how many
    rows were new on the target."""
    ident = sql.Identifier(schema, table)
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    stage = sql.Identifier(f"hv_move_{table}")
    with target.transaction():
        target.execute(sql.SQL(
            "CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA"
        ).format(stage, cols, ident))
        query = sql.SQL("COPY (SELECT {} FROM {}{}) TO STDOUT (FORMAT BINARY)").format(
            cols, ident, sql.SQL("") if where is None else sql.SQL(" WHERE ") + where)
        with source.cursor() as out_cur, target.cursor() as in_cur, \
                out_cur.copy(query, params) as out, \
                in_cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                    stage, cols)) as into:
            for data in out:
                into.write(data)
        cur = target.execute(sql.SQL(
            "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {}"
            " ON CONFLICT DO NOTHING").format(ident, cols, cols, stage))
        return max(cur.rowcount, 0)


def _advance_sequences(conn: psycopg.Connection, schema: str, table: str) -> None:
    """Copied ids came from the source: each serial sequence moves past them."""
    qualified = sql.Identifier(schema, table).as_string(conn)
    for column, sequence in conn.execute(
        "SELECT a.attname, pg_get_serial_sequence(%s, a.attname) FROM pg_attribute a"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped"
        " AND pg_get_serial_sequence(%s, a.attname) IS NOT NULL",
        (qualified, qualified, qualified),
    ).fetchall():
        conn.execute(sql.SQL(
            "SELECT setval(%s, greatest((SELECT max({c}) FROM {t}), 1))").format(
                c=sql.Identifier(column), t=sql.Identifier(schema, table)), (sequence,))


def _counts(conn: psycopg.Connection, schema: str, tables: list[str]) -> dict[str, int]:
    result = {}
    for table in tables:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier(schema, table))).fetchone()
        result[table] = int(row[0]) if row else 0
    return result


def _prepare_target(settings: Settings, target: psycopg.Connection, server: str | None,
                    slug: str, schema: str) -> None:
    """Step 1: the member's roles, schema, migrations and grants on the target server."""
    here = settings if server is None else _on_server(settings, server)
    with target.transaction():
        if server is not None:
            _server_setup(settings, server)(target)
        for kind in roles.MEMBER_ROLE_KINDS:
            roles.create_role(target, roles.member_role(slug, kind), login=kind == "reader")
        reader = roles.member_role(slug, "reader")
        roles.set_password(target, reader, settings.ensure_role_password(reader))
        roles.limit_reader(target, reader, settings)
        target.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
            sql.Identifier(schema), sql.Identifier(roles.member_role(slug, "owner"))))
        migrate.migrate_tenant(target, schema, roles.member_role(slug, "owner"),
                               log=lambda _: None)
        roles.grant_member(target, here, slug, schema)


def _set_pause(primary: psycopg.Connection, slug: str, paused: bool) -> None:
    """Pause or resume the member's ingestion. Taking the member's placement lock
    exclusively waits for every batch writing its rows to commit (hypervision.placement)."""
    with primary.transaction():
        primary.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                        (placement.MEMBER_LOCK, slug))
        primary.execute("UPDATE hv.members SET ingest_paused_at = CASE WHEN %s THEN now()"
                        " END WHERE slug = %s", (paused, slug))


def move(settings: Settings, slug: str, to: str, *, actor: str = ACTOR,
         log: Callable[[str], None] = print) -> MoveResult:
    """Move the member's schema to server `to` (steps in the module's docstring)."""
    with placement.connect_admin(settings, None) as primary:
        row = primary.execute(
            "SELECT schema_name, server, ingest_paused_at IS NOT NULL FROM hv.members"
            " WHERE slug = %s", (slug,)).fetchone()
        if row is None:
            raise MoveError(f"no member {slug!r}")
        schema, source_name, paused = row
        target_name = placement.column_value(settings, to)
        source_label = placement.server(settings, source_name).name
        target_label = placement.server(settings, target_name).name
        if source_name == target_name:
            raise MoveError(f"{slug} is on server {target_label} already")
        if paused:
            raise MoveError(f"{slug}'s ingestion is paused (another move under way, or one"
                            " that stopped half-way): `hypervision tenants move"
                            f" {slug} --resume` ends the pause where it is")
        result = MoveResult(slug, source_label, target_label)
        with placement.connect_admin(settings, source_name) as source, \
                placement.connect_admin(settings, target_name) as target:
            log(f"+ {slug}: schema {schema}, roles and grants on {target_label}")
            _prepare_target(settings, target, target_name, slug, schema)
            tables = _in_key_order(source, schema, _tables(source, schema))
            _truncate(target, schema, list(tables))

            # 2. The online copy, through one snapshot.
            with source.transaction():
                source.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                xmin_row = source.execute(
                    "SELECT pg_snapshot_xmin(pg_current_snapshot())::text").fetchone()
                assert xmin_row is not None
                since = int(xmin_row[0])
                for table, columns in tables.items():
                    result.copied[table] = _copy(source, target, schema, table, columns)
                    log(f"+ {slug}: {table}: {result.copied[table]} rows copied")

            # 3. Pause, 4. catch up, 5. verify, 6. switch.
            _set_pause(primary, slug, True)
            paused_at = time.monotonic()
            log(f"~ {slug}: ingestion paused (its events wait in the queue)")
            try:
                with source.transaction():
                    source.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    _truncate(target, schema, [t for t in tables if t not in APPEND_ONLY])
                    for table, columns in tables.items():
                        mark = APPEND_ONLY.get(table)
                        if mark == "ingested_xid":
                            result.caught_up[table] = _copy(
                                source, target, schema, table, columns,
                                sql.SQL("ingested_xid >= %s"), (since,))
                        elif mark == "xmin":
                            # age() counts back from now: rows of transactions at or after
                            # the snapshot's xmin are at most that old (frozen rows are
                            # older than anything).
                            result.caught_up[table] = _copy(
                                source, target, schema, table, columns,
                                sql.SQL("age(xmin) <= age(%s::text::xid)"),
                                (str(since % 2**32),))
                        else:
                            result.caught_up[table] = _copy(source, target, schema, table,
                                                            columns)
                    source_counts = _counts(source, schema, list(tables))
                target_counts = _counts(target, schema, list(tables))
                different = {t: (n, target_counts.get(t)) for t, n in source_counts.items()
                             if target_counts.get(t) != n}
                if different:
                    raise MoveError(f"{slug}: the copy on {target_label} differs from"
                                    f" {source_label} (rows source, target): {different}")
                with target.transaction():
                    for table in tables:
                        _advance_sequences(target, schema, table)
                    # A new copy: export cursors of the old one are refused here.
                    target.execute(sql.SQL(
                        "UPDATE {} SET id = gen_random_uuid(), arrived = 'move', since = now()"
                    ).format(sql.Identifier(schema, dump.INSTANCE_TABLE)))
                result.counts = source_counts
                with primary.transaction():
                    primary.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                                    (placement.MEMBER_LOCK, slug))
                    primary.execute(
                        "UPDATE hv.members SET server = %s, moved_from = %s,"
                        " ingest_paused_at = NULL, updated_at = now() WHERE slug = %s",
                        (target_name, source_label, slug))
                    audit.record(primary, actor=actor, member=slug, action="tenant.move",
                                 target=f"server {target_label}",
                                 params={"from": source_label, "to": target_label,
                                         "rows": source_counts},
                                 source="cli")
            except BaseException:
                _set_pause(primary, slug, False)
                log(f"~ {slug}: ingestion resumed on {source_label}; nothing switched")
                raise
            result.paused_seconds = time.monotonic() - paused_at
            log(f"~ {slug}: now on {target_label}, ingestion resumed after"
                f" {result.paused_seconds:.1f}s; the copy on {source_label} is kept")
    return result


def resume(settings: Settings, slug: str) -> None:
    """End a pause left by a move that stopped half-way; the member stays where it is."""
    with placement.connect_admin(settings, None) as primary:
        _set_pause(primary, slug, False)


def drop_old(settings: Settings, slug: str, *, actor: str = ACTOR,
             log: Callable[[str], None] = print) -> dict[str, int]:
    """Drop the copy a move left on the member's former server, once the current server
    holds at least as many rows in every table. Returns the old copy's counts."""
    with placement.connect_admin(settings, None) as primary:
        row = primary.execute("SELECT schema_name, server, moved_from FROM hv.members"
                              " WHERE slug = %s", (slug,)).fetchone()
        if row is None:
            raise MoveError(f"no member {slug!r}")
        schema, server, moved_from = row
        if moved_from is None:
            raise MoveError(f"{slug} has no old copy to drop")
        old_name = placement.column_value(settings, moved_from)
        if old_name == server:
            raise MoveError(f"{slug}'s old copy is on its current server {moved_from}")
        with placement.connect_admin(settings, old_name) as old, \
                placement.connect_admin(settings, server) as current:
            tables = list(_tables(old, schema))
            before = _counts(old, schema, tables)
            now = _counts(current, schema, tables)
            short = {t: (n, now.get(t)) for t, n in before.items() if (now.get(t) or 0) < n}
            if short:
                raise MoveError(f"{slug}: the current copy holds fewer rows than the old one"
                                f" (old, current): {short}; nothing dropped")
            with old.transaction():
                old.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
                old.execute("DELETE FROM hv.schema_migrations WHERE schema_name = %s",
                            (schema,))
        with primary.transaction():
            primary.execute("UPDATE hv.members SET moved_from = NULL WHERE slug = %s", (slug,))
            audit.record(primary, actor=actor, member=slug, action="tenant.drop_old_copy",
                         target=f"server {moved_from}", params={"rows": before}, source="cli")
        log(f"- {slug}: old copy on {moved_from} dropped ({sum(before.values())} rows)")
    return before

"""Retention: delete every row older than its member's `retention:` for its data class.

A member declares days per data class in its file (`retention:`, `raw` for the messages
as received). What expires, per table of the member's schema:

- `measurements`: a row expires after the days of its device's data class;
- `uplinks`: after the shorter of `raw` and the device's class, because a raw frame holds
  the same reading as its measurements (a water index must not outlive its class by
  staying in the raw table);
- `device_events` (join, status, ...) and the member's dead letters: after `raw`;
- tables derived per device from measurements (hourly and daily rollups, water
  consumption, air confinement, collections): like measurements, after the class's days.
A class (or `raw`) without declared days is kept; the plan says so. Dead letters that
belong to no member (unknown devices, events from another ChirpStack application,
unparseable bytes) follow the platform's own retention instead,
HV_DEAD_LETTER_RETENTION_DAYS (`expire_unattributed_dead_letters`). The device's class is
its current one in hv.devices (whichever member holds it now).

Measurements of different classes share one hypertable, so a chunk may be dropped only
when every row in it has expired for its own class. `plan()` therefore works per chunk:

1. compute each device's cutoff (now - days) and the latest cutoff of the table (no row
   after it can have expired);
2. count, per chunk and device, the rows that expired and the rows that did not, among
   rows older than that latest cutoff;
3. a chunk that ends before the latest cutoff and holds no row to keep is dropped whole
   with TimescaleDB's `drop_chunks` (cheap, frees space at once); expired rows in every
   other chunk are DELETEd, per device.

`run()` computes the same plan inside its transaction, after locking the candidate chunks
against writes, executes it as the member's owner role, and writes an audit entry with
the counts in the same transaction. `plan()` alone is the dry run: what it reports is
exactly what `run()` removes when nothing is written in between.
See platform/hypervision/public/README.md.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg import sql

from hypervision import audit, placement
from hypervision.roles import member_role

Basis = Literal["class", "raw_and_class", "raw"]
RAW = "raw"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class RetainedTable:
    """A hypertable of the member schema under retention: how its rows expire."""

    name: str
    basis: Basis
    time_column: str = "time"


# Tables of a member's schema under retention, hypertables or not (those get DELETEs
# only). A table listed here but absent from a schema is skipped; a hypertable of the
# schema missing here is reported by the plan as not covered, never silently kept.
TABLES: tuple[RetainedTable, ...] = (
    RetainedTable("measurements", "class"),
    RetainedTable("uplinks", "raw_and_class"),
    RetainedTable("device_events", "raw"),
    # Derived from measurements, per device (see migrations/tenant/0060_*).
    RetainedTable("rollup_hourly", "class", "bucket"),
    RetainedTable("rollup_daily", "class", "day"),
    RetainedTable("water_hourly", "class", "bucket"),
    RetainedTable("water_daily", "class", "day"),
    RetainedTable("water_events", "class"),
    RetainedTable("air_hourly", "class", "bucket"),
    RetainedTable("radio_daily", "class", "day"),
    RetainedTable("battery_trends", "class", "last_day"),
    RetainedTable("waste_collections", "class"),
    # Kept by the refresh job from the tables above (migrations/tenant/0063_*): a meter's
    # nights, a container's state at its latest reading.
    RetainedTable("water_nights", "class", "night"),
    RetainedTable("waste_containers", "class", "measured_at"),
)
BY_NAME = {t.name: t for t in TABLES}
DEAD_LETTERS = "hv.dead_letters"


@dataclass(frozen=True)
class Member:
    """What retention needs to know about one member."""

    slug: str
    schema: str
    days: dict[str, int]
    server: str | None = None  # the database server of its schema; None: the primary

    @property
    def owner_role(self) -> str:
        return member_role(self.slug, "owner")


@dataclass
class ChunkDrop:
    chunk: str
    oid: int
    range_start: dt.datetime
    range_end: dt.datetime
    rows: Counter[str] = field(default_factory=Counter)


@dataclass
class TablePlan:
    """What goes from one table: whole chunks, and rows deleted from the other chunks."""

    table: str
    drops: list[ChunkDrop] = field(default_factory=list)
    deleted: Counter[str] = field(default_factory=Counter)

    def counts(self) -> Counter[str]:
        total: Counter[str] = Counter(self.deleted)
        for drop in self.drops:
            total.update(drop.rows)
        return total


@dataclass
class MemberPlan:
    member: str
    now: dt.datetime
    tables: list[TablePlan] = field(default_factory=list)
    kept_classes: list[str] = field(default_factory=list)
    uncovered_tables: list[str] = field(default_factory=list)

    def counts(self) -> dict[tuple[str, str], int]:
        """Rows that go, per (table, data class); zero counts left out."""
        return {(t.table, cls): n for t in self.tables for cls, n in t.counts().items() if n}

    def chunks(self) -> dict[str, list[str]]:
        return {t.table: [d.chunk for d in t.drops] for t in self.tables if t.drops}

    def total(self) -> int:
        return sum(self.counts().values())

    def summary(self) -> dict[str, Any]:
        """The JSON written to the audit entry and printed by the dry run."""
        return {
            "now": self.now.isoformat(),
            "rows": [{"table": t, "data_class": c, "rows": n}
                     for (t, c), n in sorted(self.counts().items())],
            "chunks_dropped": self.chunks(),
            "kept_without_retention": self.kept_classes,
            "tables_not_covered": self.uncovered_tables,
        }


def load_members(conn: psycopg.Connection, slugs: Sequence[str] | None = None) -> list[Member]:
    rows = conn.execute(
        "SELECT slug, schema_name, coalesce(spec->'retention', '{}'::jsonb), server"
        " FROM hv.members WHERE %(all)s OR slug = ANY(%(slugs)s) ORDER BY slug",
        {"all": slugs is None, "slugs": list(slugs or [])},
    ).fetchall()
    return [Member(r[0], r[1], {str(k): int(v) for k, v in r[2].items()}, r[3]) for r in rows]


def _server(conn: psycopg.Connection, member: Member,
            servers: placement.Connections | None) -> psycopg.Connection:
    """The connection to the member's schema: `conn` for a member on the primary."""
    if member.server is None:
        return conn
    if servers is None:
        raise placement.PlacementError(
            f"{member.slug} is on server {member.server}: retention needs its connection")
    return servers.get(member.server)


def device_classes(conn: psycopg.Connection) -> dict[str, str]:
    """Every known device's current data class (devices are never deleted, only
    deactivated, so rows of a removed device still find their class)."""
    rows = conn.execute(
        "SELECT dev_eui, coalesce(spec->>'data_class', 'technical') FROM hv.devices"
    ).fetchall()
    return {r[0]: r[1] for r in rows}


@dataclass(frozen=True)
class _Cutoffs:
    """Per-device cutoffs of one table, a default for other devices, and labels."""

    by_device: dict[str, dt.datetime]
    default: dt.datetime | None
    default_label: str

    @property
    def latest(self) -> dt.datetime | None:
        found = [*self.by_device.values(), *([self.default] if self.default else [])]
        return max(found) if found else None


def _cutoff(now: dt.datetime, *days: int | None) -> dt.datetime | None:
    """now minus the shortest declared days; None when none is declared."""
    known = [d for d in days if d is not None]
    return now - dt.timedelta(days=min(known)) if known else None


def _cutoffs(table: RetainedTable, member: Member, classes: dict[str, str],
             now: dt.datetime) -> _Cutoffs:
    raw = member.days.get(RAW)
    if table.basis == "raw":
        return _Cutoffs({}, _cutoff(now, raw), RAW)
    by_device: dict[str, dt.datetime] = {}
    for dev_eui, data_class in classes.items():
        days = member.days.get(data_class)
        cut = _cutoff(now, days) if table.basis == "class" else _cutoff(now, days, raw)
        if cut is not None:
            by_device[dev_eui] = cut
    default = None if table.basis == "class" else _cutoff(now, raw)
    return _Cutoffs(by_device, default, UNKNOWN)


_MAPPING = "SELECT * FROM unnest(%(euis)s::text[], %(cutoffs)s::timestamptz[])"


def _params(cut: _Cutoffs) -> dict[str, Any]:
    return {"euis": list(cut.by_device), "cutoffs": list(cut.by_device.values()),
            "default": cut.default, "latest": cut.latest}


@dataclass(frozen=True)
class _Chunk:
    schema: str
    name: str
    oid: int
    range_start: dt.datetime
    range_end: dt.datetime


def _chunks(conn: psycopg.Connection, schema: str, table: str, before: dt.datetime
            ) -> list[_Chunk]:
    """Chunks of a hypertable that end at or before `before`, oldest first."""
    rows = conn.execute(
        """
        SELECT c.chunk_schema, c.chunk_name, k.oid::bigint, c.range_start, c.range_end
        FROM timescaledb_information.chunks c
        JOIN pg_namespace n ON n.nspname = c.chunk_schema
        JOIN pg_class k ON k.relnamespace = n.oid AND k.relname = c.chunk_name
        WHERE c.hypertable_schema = %s AND c.hypertable_name = %s AND c.range_end <= %s
        ORDER BY c.range_start
        """,
        (schema, table, before),
    ).fetchall()
    return [_Chunk(*r) for r in rows]


def _plan_table(conn: psycopg.Connection, member: Member, table: RetainedTable,
                classes: dict[str, str], now: dt.datetime, lock: bool) -> TablePlan:
    plan = TablePlan(table.name)
    cut = _cutoffs(table, member, classes, now)
    if cut.latest is None:
        return plan
    candidates = _chunks(conn, member.schema, table.name, cut.latest)
    if lock:
        # Writes into these chunks would change what may be dropped: block them until
        # commit (reads go on). New data lands in recent chunks, which are not locked.
        for chunk in candidates:
            conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(
                sql.Identifier(chunk.schema, chunk.name)))
    rows = conn.execute(
        sql.SQL(
            """
            WITH c (dev_eui, cutoff) AS ({mapping})
            SELECT t.tableoid::bigint, t.dev_eui,
                   count(*) FILTER (WHERE t.{time} < coalesce(c.cutoff, %(default)s)),
                   count(*) FILTER (
                       WHERE NOT coalesce(t.{time} < coalesce(c.cutoff, %(default)s), false))
            FROM {schema}.{table} t LEFT JOIN c USING (dev_eui)
            WHERE t.{time} < %(latest)s
            GROUP BY 1, 2
            """
        ).format(mapping=sql.SQL(_MAPPING), time=sql.Identifier(table.time_column),
                 schema=sql.Identifier(member.schema), table=sql.Identifier(table.name)),
        _params(cut),
    ).fetchall()

    def label(dev_eui: str) -> str:
        return cut.default_label if table.basis == "raw" else classes.get(dev_eui, UNKNOWN)

    kept: Counter[int] = Counter()
    gone: dict[int, Counter[str]] = {}
    for oid, dev_eui, expired, keep in rows:
        kept[oid] += keep
        if expired:
            gone.setdefault(oid, Counter())[label(dev_eui)] += expired
    droppable = {c.oid for c in candidates if kept[c.oid] == 0}
    for c in candidates:
        if c.oid in droppable:
            plan.drops.append(ChunkDrop(f"{c.schema}.{c.name}", c.oid, c.range_start,
                                        c.range_end, gone.get(c.oid, Counter())))
    for oid, counts in gone.items():
        if oid not in droppable:
            plan.deleted.update(counts)
    return plan


def _uncovered(conn: psycopg.Connection, schema: str) -> list[str]:
    rows = conn.execute(
        "SELECT hypertable_name FROM timescaledb_information.hypertables"
        " WHERE hypertable_schema = %s ORDER BY 1", (schema,)
    ).fetchall()
    covered = {t.name for t in TABLES}
    return [r[0] for r in rows if r[0] not in covered]


def _dead_letters_plan(conn: psycopg.Connection, member: Member, now: dt.datetime
                       ) -> TablePlan:
    plan = TablePlan(DEAD_LETTERS)
    cutoff = _cutoff(now, member.days.get(RAW))
    if cutoff is not None:
        row = conn.execute(
            "SELECT count(*) FROM hv.dead_letters WHERE member_slug = %s AND received_at < %s",
            (member.slug, cutoff),
        ).fetchone()
        if row and row[0]:
            plan.deleted[RAW] = row[0]
    return plan


def _declared_classes(conn: psycopg.Connection, slug: str) -> set[str]:
    rows = conn.execute(
        "SELECT DISTINCT coalesce(spec->>'data_class', 'technical') FROM hv.devices"
        " WHERE member_slug = %s", (slug,)
    ).fetchall()
    return {r[0] for r in rows}


def _present(conn: psycopg.Connection, schema: str) -> list[RetainedTable]:
    """The retained tables that exist in this schema, in TABLES order."""
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename = ANY(%s)",
        (schema, [t.name for t in TABLES]),
    ).fetchall()
    found = {r[0] for r in rows}
    return [t for t in TABLES if t.name in found]


def _set_role(conn: psycopg.Connection, role: str | None) -> None:
    if role is None:
        conn.execute("RESET ROLE")
    else:
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))


def _plan_member(conn: psycopg.Connection, member: Member, classes: dict[str, str],
                 now: dt.datetime, lock: bool,
                 catalogue: psycopg.Connection | None = None) -> MemberPlan:
    """`conn` on the member's database server, `catalogue` on the primary (default:
    `conn`), which holds the devices and the dead letters."""
    catalogue = conn if catalogue is None else catalogue
    plan = MemberPlan(member.slug, now)
    declared = _declared_classes(catalogue, member.slug) | {RAW}
    plan.kept_classes = sorted(c for c in declared if c not in member.days)
    _set_role(conn, member.owner_role)
    for table in _present(conn, member.schema):
        plan.tables.append(_plan_table(conn, member, table, classes, now, lock))
    plan.uncovered_tables = _uncovered(conn, member.schema)
    _set_role(conn, None)
    plan.tables.append(_dead_letters_plan(catalogue, member, now))
    return plan


def plan(conn: psycopg.Connection, now: dt.datetime | None = None,
         members: Sequence[str] | None = None,
         servers: placement.Connections | None = None) -> list[MemberPlan]:
    """The dry run: what would go, per member, table and class. Writes nothing.

    `conn` is a superuser connection to the primary (hypervision.db.connect_admin);
    `servers` opens the other database servers (hypervision.placement). Member tables are
    read as each member's owner role, where the member is.
    """
    now = now or dt.datetime.now(dt.UTC)
    classes = device_classes(conn)
    plans = []
    for member in load_members(conn, members):
        db = _server(conn, member, servers)
        with placement.transaction(conn, db):
            for c in (conn,) if db is conn else (conn, db):
                c.execute("SET TRANSACTION READ ONLY")
                # A date column (daily rollups) compares to a cutoff at midnight UTC.
                c.execute("SET LOCAL TIME ZONE 'UTC'")
            plans.append(_plan_member(db, member, classes, now, lock=False, catalogue=conn))
    return plans


# drop_chunks wants its bounds in the type of the time column.
_BOUND_TYPES = {"timestamp with time zone": "timestamptz",
                "timestamp without time zone": "timestamp", "date": "date"}


def _drop_chunk(conn: psycopg.Connection, member: Member, table: RetainedTable,
                drop: ChunkDrop) -> None:
    """Drop exactly one chunk with drop_chunks, bounded by its own range."""
    hypertable = sql.Identifier(member.schema, table.name).as_string(conn)
    row = conn.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = %s::regclass AND attname = %s", (hypertable, table.time_column),
    ).fetchone()
    bound = sql.SQL(_BOUND_TYPES[row[0] if row else ""])
    dropped = conn.execute(
        sql.SQL("SELECT drop_chunks(%s::regclass, older_than => %s::{t},"
                " newer_than => %s::{t})").format(t=bound),
        (hypertable, drop.range_end, drop.range_start),
    ).fetchall()
    names = {r[0] for r in dropped}
    if names != {drop.chunk}:
        # Anything else means the bounds did not isolate the chunk: roll everything back.
        raise RuntimeError(f"drop_chunks on {hypertable} dropped {sorted(names)},"
                           f" expected only {drop.chunk}")


def _delete(conn: psycopg.Connection, member: Member, table: RetainedTable,
            classes: dict[str, str], now: dt.datetime) -> Counter[str]:
    """Delete the expired rows left after the drops; returns the counts per class."""
    cut = _cutoffs(table, member, classes, now)
    deleted: Counter[str] = Counter()
    if cut.latest is None:
        return deleted
    ids = {"time": sql.Identifier(table.time_column), "schema": sql.Identifier(member.schema),
           "table": sql.Identifier(table.name), "mapping": sql.SQL(_MAPPING)}
    statements = []
    if cut.by_device:
        statements.append(sql.SQL(
            """
            WITH c (dev_eui, cutoff) AS ({mapping}),
                 d AS (DELETE FROM {schema}.{table} t USING c
                       WHERE t.dev_eui = c.dev_eui AND t.{time} < c.cutoff
                         AND t.{time} < %(latest)s
                       RETURNING t.dev_eui)
            SELECT dev_eui, count(*) FROM d GROUP BY 1
            """).format(**ids))
    if cut.default is not None:
        statements.append(sql.SQL(
            """
            WITH d AS (DELETE FROM {schema}.{table} t
                       WHERE t.{time} < %(default)s AND t.dev_eui <> ALL(%(euis)s::text[])
                       RETURNING t.dev_eui)
            SELECT dev_eui, count(*) FROM d GROUP BY 1
            """).format(**ids))
    for statement in statements:
        for dev_eui, n in conn.execute(statement, _params(cut)).fetchall():
            label = cut.default_label if table.basis == "raw" else classes.get(dev_eui, UNKNOWN)
            deleted[label] += n
    return deleted


@dataclass
class MemberRun:
    """What a real run removed from one member, and its audit entry."""

    plan: MemberPlan
    removed: dict[tuple[str, str], int]
    audit_id: int


def run(conn: psycopg.Connection, now: dt.datetime | None = None,
        members: Sequence[str] | None = None, actor: str = "system:retention",
        source: str = "job", log: Callable[[str], None] = lambda _: None,
        servers: placement.Connections | None = None) -> list[MemberRun]:
    """Enforce retention, one transaction per member, each with its audit entry.

    The counts audited are those of rows actually removed: rows of dropped chunks as
    counted under lock just before the drop, plus the row counts DELETE returned. A
    member on another database server (`servers`, hypervision.placement) has its rows
    removed in that server's transaction, committed just before the primary's, which
    holds its dead letters and the audit entry: a crash between the two commits leaves
    the removal unaudited, and the next run finds nothing more to remove.
    """
    now = now or dt.datetime.now(dt.UTC)
    classes = device_classes(conn)
    results = []
    for member in load_members(conn, members):
        db = _server(conn, member, servers)
        with placement.transaction(conn, db):
            for c in (conn,) if db is conn else (conn, db):
                c.execute("SET LOCAL TIME ZONE 'UTC'")
            member_plan = _plan_member(db, member, classes, now, lock=True,
                                       catalogue=conn)
            removed: Counter[tuple[str, str]] = Counter()
            _set_role(db, member.owner_role)
            for table_plan in member_plan.tables:
                if table_plan.table == DEAD_LETTERS:
                    continue
                table = BY_NAME[table_plan.table]
                for drop in table_plan.drops:
                    _drop_chunk(db, member, table, drop)
                    removed.update({(table.name, c): n for c, n in drop.rows.items()})
                counts = _delete(db, member, table, classes, now)
                removed.update({(table.name, c): n for c, n in counts.items()})
            _set_role(db, None)
            cutoff = _cutoff(now, member.days.get(RAW))
            if cutoff is not None:
                n = conn.execute(
                    "DELETE FROM hv.dead_letters WHERE member_slug = %s AND received_at < %s",
                    (member.slug, cutoff),
                ).rowcount
                if n:
                    removed[(DEAD_LETTERS, RAW)] += n
            result = {k: v for k, v in removed.items() if v}
            summary = member_plan.summary()
            summary["rows"] = [{"table": t, "data_class": c, "rows": n}
                               for (t, c), n in sorted(result.items())]
            audit_id = audit.record(
                conn, actor=actor, member=member.slug, action="retention.run",
                target=member.schema, params={"now": now.isoformat(), "days": member.days},
                rows=sum(result.values()), source=source, after=summary,
            )
        log(f"{member.slug}: {sum(result.values())} row(s) removed")
        results.append(MemberRun(member_plan, result, audit_id))
    return results



def expire_unattributed_dead_letters(conn: psycopg.Connection, days: int, now: dt.datetime,
                                     actor: str, source: str) -> tuple[int, int]:
    """Delete the dead letters of no member received more than `days` ago, with an audit
    entry in the same transaction; returns (rows removed, audit entry id). Their payloads
    may hold anyone's data, and no member's rule covers them."""
    cutoff = now - dt.timedelta(days=days)
    with conn.transaction():
        removed = conn.execute(
            "DELETE FROM hv.dead_letters WHERE member_slug IS NULL AND received_at < %s",
            (cutoff,)).rowcount
        audit_id = audit.record(conn, actor=actor, member=None,
                                action="retention.dead_letters", target=DEAD_LETTERS,
                                params={"now": now.isoformat(), "days": days}, rows=removed,
                                source=source)
    return removed, audit_id

"""The audit trail: who read, exported or changed what, for which member, when, from where.

Entries live in `hv.audit_log` (migrations/control/0010_audit_log.sql). The database
makes the trail append-only and tamper-evident, not this module:

- a BEFORE INSERT trigger assigns the id and time and chains each entry to the previous
  one (`hash` = SHA-256 of the entry's canonical text, which holds `prev_hash`);
- triggers refuse UPDATE, DELETE and TRUNCATE, and application roles hold column INSERT
  only (role `hv_audit_writer`, see `grant_writer`);
- a superuser can still disable the triggers and edit rows: `verify` recomputes every
  hash in Python, independently of the SQL function, and reports any break.

Write an entry with `record` on the caller's connection, inside the transaction of the
change it records, so that the change and its entry commit or roll back together. See
platform/hypervision/api/README.md, "Audit trail".
"""

from __future__ import annotations

import getpass
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from hypervision.roles import AUDIT_WRITABLE_COLUMNS
from hypervision.roles import grant_audit_writer as grant_writer  # noqa: F401  (role DDL)

GENESIS = bytes(32)
SOURCES = ("api", "cli", "job", "sql")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# The content columns a writer may set; everything else is set by the chaining trigger.
WRITABLE = AUDIT_WRITABLE_COLUMNS


def _clean(value: Any) -> Any:
    """PostgreSQL text and jsonb cannot hold NUL characters; an audit entry must never
    fail because a caller passed one (e.g. from a URL), so they become U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, Mapping):
        return {_clean(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, allow_nan=False)


def _json(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(_clean(value), dumps=_dumps)


def record(
    conn: psycopg.Connection,
    *,
    actor: str,
    member: str | None,
    action: str,
    target: str = "",
    params: Mapping[str, Any] | None = None,
    rows: int | None = None,
    source: str = "cli",
    request_id: str | None = None,
    before: Any = None,
    after: Any = None,
    remote_addr: str | None = None,
) -> int:
    """Append one entry and return its id.

    `actor` is `user:<email>`, `token:<id>`, `system:<job>` or `cli:<os user>`;
    `member` the member slug concerned (None for platform-wide actions); `action` a
    dotted verb such as `measurements.read`. Runs on `conn` in its current transaction.
    """
    if source not in SOURCES:
        raise ValueError(f"audit source must be one of {SOURCES}, not {source!r}")
    row = conn.execute(
        """
        INSERT INTO hv.audit_log (actor, member_slug, action, target, params, rows, source,
                                  remote_addr, request_id, before, after)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        RETURNING id
        """,
        (
            _clean(actor), _clean(member), action, _clean(target or ""),
            _json(dict(params or {})), rows, source, _clean(remote_addr),
            _clean(request_id), _json(before), _json(after),
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def cli_actor() -> str:
    """The actor of a command run from a shell: the operating-system user."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"


def _field(value: str | None) -> str:
    if value is None:
        return "~;"
    return f"{len(value.encode('utf-8'))}:{value};"


def canonical(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash covers; must match SQL `hv.audit_canonical` exactly.

    `entry` holds the columns as read back with jsonb columns cast to text (`params`,
    `before`, `after`) and `at` as a timezone-aware datetime.
    """
    at: datetime = entry["at"]
    micros = (at - _EPOCH) // _MICROSECOND
    parts = [
        str(entry["id"]), str(micros), entry["actor"], entry["member_slug"], entry["action"],
        entry["target"], entry["params"],
        None if entry["rows"] is None else str(entry["rows"]),
        entry["source"], entry["remote_addr"], entry["request_id"], entry["before"],
        entry["after"], bytes(entry["prev_hash"]).hex(),
    ]
    return ("hv-audit-v1;" + "".join(_field(p) for p in parts)).encode("utf-8")


def entry_hash(entry: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(canonical(entry)).digest()


@dataclass
class Problem:
    """One break found by `verify`: the entry id concerned (0: the trail as a whole)."""

    entry_id: int
    what: str

    def __str__(self) -> str:
        return f"entry {self.entry_id}: {self.what}" if self.entry_id else self.what


@dataclass
class VerifyResult:
    """The outcome of `verify`. `head_hash` is worth writing down outside the platform:
    anyone holding it can later prove the trail up to that point was not rewritten."""

    entries: int = 0
    last_id: int = 0
    head_hash: str = GENESIS.hex()
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


_VERIFY_QUERY = (
    "SELECT id, at, actor, member_slug, action, target, params::text AS params, rows, source,"
    " remote_addr, request_id, before::text AS before, after::text AS after, prev_hash, hash"
    " FROM hv.audit_log ORDER BY id"
)
_GUARD_TRIGGERS = ("audit_log_chain", "audit_log_append_only", "audit_log_no_truncate")


@dataclass(frozen=True)
class Anchor:
    """The chain's head at one moment, written outside the database: entry `last_id`
    had hash `hash`. Whoever keeps it can prove the trail up to there was not rewritten,
    even by a superuser who recomputed every hash and moved the head."""

    at: str
    last_id: int
    hash: str

    def line(self) -> str:
        return f"{self.at} {self.last_id} {self.hash}\n"


def head(conn: psycopg.Connection) -> Anchor:
    """The chain's head now (in the caller's snapshot)."""
    row = conn.execute("SELECT last_id, encode(last_hash, 'hex'), now() FROM hv.audit_head"
                       " WHERE id = 1").fetchone()
    if row is None:
        return Anchor(datetime.now(UTC).isoformat(), 0, GENESIS.hex())
    return Anchor(row[2].astimezone(UTC).isoformat(), int(row[0]), str(row[1]))


def write_anchor(conn: psycopg.Connection | None, path: Path,
                 anchor: Anchor | None = None) -> Anchor:
    """Append the chain's head (or `anchor`) to an anchor file, one line per anchor."""
    if anchor is None:
        assert conn is not None, "the head is read from a connection"
        anchor = head(conn)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(anchor.line())
    return anchor


def read_anchors(path: Path) -> list[Anchor]:
    anchors = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            anchors.append(Anchor(parts[0], int(parts[1]), parts[2].lower()))
    return anchors


def verify(conn: psycopg.Connection, *, max_problems: int = 100,
           anchors: Sequence[Anchor] = ()) -> VerifyResult:
    """Recompute the whole chain and report every break.

    Steps: 1. walk the entries in id order and recompute each hash; 2. check each entry
    links to the hash of the one before it (a deleted or inserted entry breaks the link);
    3. check the head row names the last entry (entries deleted at the end); 4. check the
    guard triggers are present and enabled; 5. check every anchor kept outside the
    database (backups' manifests, the operator's anchor file) names an entry that still
    has that hash.
    """
    wanted = {a.last_id: a for a in anchors if a.last_id > 0}
    result = VerifyResult()
    previous = GENESIS
    previous_id = 0

    def report(entry_id: int, what: str) -> None:
        if len(result.problems) < max_problems:
            result.problems.append(Problem(entry_id, what))

    with conn.cursor(row_factory=dict_row) as cur:
        for entry in cur.stream(_VERIFY_QUERY):
            result.entries += 1
            stored_prev = bytes(entry["prev_hash"])
            if stored_prev != previous:
                report(entry["id"], "does not link to the entry before it"
                       f" (id {previous_id}): an entry was deleted, inserted or rewritten")
            if entry_hash(entry) != bytes(entry["hash"]):
                report(entry["id"], "its content does not match its hash: it was edited")
            previous = bytes(entry["hash"])
            previous_id = entry["id"]
            anchor = wanted.pop(entry["id"], None)
            if anchor is not None and anchor.hash != previous.hex():
                report(entry["id"], f"its hash is not the one anchored on {anchor.at}: the"
                       " trail up to it was rewritten")
    for anchor in wanted.values():
        report(anchor.last_id, f"anchored on {anchor.at} but no longer in the trail")
    result.last_id = previous_id
    result.head_hash = previous.hex()

    head = conn.execute("SELECT last_id, last_hash FROM hv.audit_head WHERE id = 1").fetchone()
    if head is None:
        report(0, "the chain head row is missing")
    elif (head[0], bytes(head[1])) != (previous_id, previous):
        report(0, f"the chain head names entry {head[0]} but the last entry is"
               f" {previous_id}: entries were deleted at the end or the head was moved")

    enabled: dict[str, Any] = dict(conn.execute(
        "SELECT tgname, tgenabled FROM pg_trigger"
        " WHERE tgrelid = 'hv.audit_log'::regclass AND NOT tgisinternal"
    ).fetchall())
    for name in _GUARD_TRIGGERS:
        state = enabled.get(name)
        if state is None:
            report(0, f"trigger {name} is missing")
        elif state in ("D", b"D"):
            report(0, f"trigger {name} is disabled")
    return result

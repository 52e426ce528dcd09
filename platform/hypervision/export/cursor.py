"""Incremental export cursors: an opaque token holding the database snapshot an export read.

Why a snapshot and not a time (see export/README.md, "Incremental exports"): every row of
`uplinks` and `measurements` carries `ingested_xid`, the id of the transaction that wrote
it (tenant migration 0020). An export reads through one MVCC snapshot and hands it back as
its cursor. The next export returns exactly the rows whose writing transaction that
snapshot did not see: an id at or above its `xmax`, or one of the ids it listed as still
in progress. A row written late, with an old timestamp, or committed long after its
transaction began, is therefore returned once, by the first export that can see it.

Transaction ids mean something on the server that issued them only. A cursor therefore
also names the copy of the member's schema it was read from (`schema_instance`, tenant
migration 2602: a new id where the schema is created, and on the target of each move), and
an export refuses a cursor of another copy, saying why, rather than exporting the wrong
rows.

Token: `hv2.` + base64url(`<instance uuid>@xmin:xmax:xip,...` + `.` + 8 hex digits of its
SHA-256), so a truncated or mistyped cursor is refused rather than silently exporting the
wrong rows. Tokens of the first form, `hv1.` (no instance), are still read: they are valid
on a copy that was created where it is, not moved there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

PREFIX = "hv2."
LEGACY_PREFIX = "hv1."
_INSTANCE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SNAPSHOT = re.compile(r"^(\d{1,20}):(\d{1,20}):((?:\d{1,20}(?:,\d{1,20})*)?)$")
# pg_current_snapshot() lists at most one id per backend; more means garbage.
MAX_IN_PROGRESS = 100_000


class CursorError(ValueError):
    """The cursor is not one this platform issued."""


@dataclass(frozen=True)
class Snapshot:
    """A PostgreSQL snapshot (`pg_snapshot`): ids below xmin are finished, ids from xmax
    on had not started, ids in `in_progress` were running."""

    xmin: int
    xmax: int
    in_progress: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        """From PostgreSQL's text form `xmin:xmax:xip1,xip2`."""
        match = _SNAPSHOT.match(text)
        if not match:
            raise CursorError("malformed snapshot")
        xmin, xmax = int(match[1]), int(match[2])
        xip = tuple(int(x) for x in match[3].split(",")) if match[3] else ()
        if xmin > xmax or len(xip) > MAX_IN_PROGRESS or any(
            not xmin <= x < xmax for x in xip
        ):
            raise CursorError("inconsistent snapshot")
        if xmax >= 2**63:
            raise CursorError("snapshot out of range")
        return cls(xmin, xmax, xip)

    def text(self) -> str:
        return f"{self.xmin}:{self.xmax}:{','.join(map(str, self.in_progress))}"

    def saw(self, xid: int) -> bool:
        """True when a transaction with this id had committed for this snapshot."""
        return xid < self.xmin or (xid < self.xmax and xid not in self.in_progress)


def _check(body: str) -> str:
    return hashlib.sha256(body.encode("ascii")).hexdigest()[:8]


@dataclass(frozen=True)
class Cursor:
    """What a token holds: the snapshot, and the schema copy it was read from (None for a
    `hv1.` token, which predates the instance)."""

    snapshot: Snapshot
    instance: str | None


def encode(snapshot: Snapshot, instance: str) -> str:
    if not _INSTANCE.match(instance):
        raise ValueError(f"not a schema instance id: {instance!r}")
    body = f"{instance}@{snapshot.text()}"
    raw = f"{body}.{_check(body)}".encode("ascii")
    return PREFIX + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode(token: str) -> Cursor:
    """The snapshot and instance in a cursor token; CursorError if it is not a valid one."""
    token = token.strip()
    prefix = next((p for p in (PREFIX, LEGACY_PREFIX) if token.startswith(p)), None)
    if prefix is None or len(token) > 2_000_000:
        raise CursorError(f"not a Hypervision export cursor (expected '{PREFIX}…')")
    payload = token[len(prefix):]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise CursorError("the cursor is not valid base64url") from None
    body, _, check = raw.rpartition(".")
    if not body or check != _check(body):
        raise CursorError("the cursor is damaged (checksum mismatch)")
    if prefix == LEGACY_PREFIX:
        return Cursor(Snapshot.parse(body), None)
    instance, at, snapshot = body.partition("@")
    if not at or not _INSTANCE.match(instance):
        raise CursorError("the cursor names no schema instance")
    return Cursor(Snapshot.parse(snapshot), instance)

"""One batch of envelopes, from bytes to rows: validate → attribute → decode → store.

1. Each envelope is parsed strictly (ingest.chirpstack); a rejected one becomes a dead letter.
2. The registry attributes it to the member owning its DevEUI; unknown or inactive devices
   and suspended members become dead letters.
3. Uplinks are decoded together (one codec call per batch, see ingest.decode).
4. Rows are grouped per member and written in one transaction (ingest.store), with the
   dead letters and the outcome counters: a batch is written entirely or not at all.
   Members placed on another database server (hypervision.placement) are written there
   first, in one transaction per server holding their rows and a *receipt* (their
   events' outcome counts, keyed by the member and the events' bytes); the primary's
   transaction then adds each receipt's counts once (hv.ingest_counted). A crash between
   the two commits leaves the batch to be delivered again: the receipt is found, nothing
   is written twice, and its counts, not "duplicate", are what the primary adds. A member
   whose server cannot be reached, or whose ingestion is paused (a move), is left out of
   the batch and queued again by the task; the other members go on.
5. In that transaction, the member's downlinks named by its txack/ack events move forward
   (ingest.downlinks).

Every envelope ends with exactly one Outcome. If the batch transaction fails for a reason
other than the database being unreachable, each envelope is retried alone so that one bad
event cannot hold back the others; one that still fails becomes a `store_failed` dead
letter. Connection errors propagate: the Celery task retries the whole batch later.
"""

from __future__ import annotations

import hashlib
import json
import logging
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from hypervision.placement import lock_and_read
from ingest.chirpstack import Envelope, Event, Rejected, parse, received_datetime
from ingest.decode import Catalogue, Decoded, UplinkToDecode
from ingest.downlinks import ANSWER_KINDS
from ingest.downlinks import track as track_downlinks
from ingest.outcomes import DeadReason, Outcome
from ingest.registry import DeviceEntry, Registry
from ingest.store import (
    DeadLetter,
    MemberBatch,
    MemberResult,
    acting_as,
    count_outcomes,
    prepare_staging,
    stage_batch,
    write_dead_letters,
    write_member,
)

log = logging.getLogger(__name__)

TRANSIENT_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)
# SQLSTATEs of a server that is going away or not yet accepting connections.
_UNAVAILABLE_STATES = {"57P01", "57P02", "57P03"}


def is_unavailable(exc: BaseException) -> bool:
    """True when the database cannot be reached at all (as opposed to a failed statement):
    then retrying later is the only way not to lose the batch."""
    if isinstance(exc, psycopg.InterfaceError):
        return True
    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate
        return state is None or state.startswith("08") or state in _UNAVAILABLE_STATES
    return False


@dataclass
class BatchResult:
    """Outcome counts of one batch, per (member, outcome)."""

    outcomes: Counter[tuple[str, Outcome]] = field(default_factory=Counter)
    # Events of members whose ingestion is paused or whose server is unreachable: not
    # written, no outcome yet; the task queues them again.
    deferred: list[Envelope] = field(default_factory=list)

    def total(self, outcome: Outcome) -> int:
        return sum(n for (_, o), n in self.outcomes.items() if o is outcome)

    def merge(self, other: BatchResult) -> None:
        self.outcomes.update(other.outcomes)
        self.deferred += other.deferred


@dataclass
class _Pending:
    """Everything one batch will write, built before the transaction opens."""

    members: dict[str, MemberBatch] = field(default_factory=dict)
    # (member, envelope, key) of each row whose fate the database decides:
    # key is the deduplicationId for uplinks, the digest for other events.
    uplinks: list[tuple[str, Envelope, Any, bool]] = field(default_factory=list)
    events: list[tuple[str, Envelope, bytes]] = field(default_factory=list)
    dead: list[tuple[DeadLetter, Envelope]] = field(default_factory=list)
    duplicates: list[tuple[str, Envelope]] = field(default_factory=list)
    # The day each attributed event is counted on (network_day), by id() of its envelope.
    days: dict[int, date] = field(default_factory=dict)


def _digest(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
        h.update(b"\0")
    return h.digest()


def _dead(envelope: Envelope, reason: DeadReason, detail: str, dev_eui: str | None,
          member: str | None) -> DeadLetter:
    return DeadLetter(
        received_at=received_datetime(envelope),
        origin=envelope.origin,
        event_type=envelope.event_type,
        dev_eui=dev_eui,
        member_slug=member,
        reason=reason.value,
        detail=detail,
        payload=envelope.payload,
        digest=_digest(envelope.origin.encode(), envelope.payload),
    )


def network_day(event: Event, envelope: Envelope) -> date:
    """The (UTC) day an event is counted on in hv.ingest_outcomes: the day the network
    received it, ChirpStack's `time` (the gateways' reception), so that history published
    late (a backfill, a replay, a backlog after an outage) counts on its own days rather
    than on the day it was processed. A time later than our own reception (a gateway or
    server clock ahead) counts on the day of our reception instead."""
    return min(event.time, received_datetime(envelope)).date()


def _foreign_origin(event: Event, entry: DeviceEntry) -> str | None:
    """Why the event does not come from the member's own ChirpStack tenant and
    application, or None. Checked once the member is provisioned (ids recorded)."""
    info = event.body.get("deviceInfo") or {}
    tenant, application = info.get("tenantId"), info.get("applicationId")
    if entry.chirpstack_tenant is not None and tenant != entry.chirpstack_tenant:
        return (f"DevEUI {event.dev_eui} is {entry.member_slug}'s, but the event comes from"
                f" ChirpStack tenant {tenant!r}")
    if entry.chirpstack_applications and application not in entry.chirpstack_applications:
        return (f"DevEUI {event.dev_eui} is {entry.member_slug}'s, but the event comes from"
                f" ChirpStack application {application!r}")
    return None


def _column_int(value: Any) -> int | None:
    """An integer for an `integer` column: protobuf's uint32 fields (dr, spreadingFactor)
    may hold more than it does; the column is then left empty, the event keeps the value."""
    return value if value is None or -(2**31) <= value < 2**31 else None


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _envelopes_of(pending: _Pending, slug: str) -> list[Envelope]:
    """The member's envelopes of the batch whose fate its server decides, in one order."""
    return ([e for s, e, *_ in pending.uplinks if s == slug]
            + [e for s, e, _ in pending.events if s == slug]
            + [e for s, e in pending.duplicates if s == slug])


def _receipt_key(slug: str, envelopes: Sequence[Envelope]) -> bytes:
    """What identifies one member's part of a batch, whichever delivery of it: the
    member and its events' bytes."""
    return _digest(b"receipt", slug.encode(),
                   *(_digest(e.origin.encode(), e.payload) for e in envelopes))


def _outcomes(pending: _Pending, slugs: set[str], stored_ids: set[Any],
              stored_digests: set[bytes]) -> Iterator[tuple[str, Envelope, Outcome]]:
    """The outcome of each event of these members, once their rows are written."""
    for slug, envelope, dedup_id, decoded_ok in pending.uplinks:
        if slug not in slugs:
            continue
        if dedup_id not in stored_ids:
            yield slug, envelope, Outcome.DUPLICATE
        else:
            yield slug, envelope, Outcome.STORED if decoded_ok else Outcome.DECODE_FAILED
    for slug, envelope, digest in pending.events:
        if slug in slugs:
            yield slug, envelope, (Outcome.STORED if digest in stored_digests
                                   else Outcome.DUPLICATE)
    for slug, envelope in pending.duplicates:
        if slug in slugs:
            yield slug, envelope, Outcome.DUPLICATE


class Processor:
    """Turns envelopes into rows. Holds the catalogue and registry; no connection of its
    own: `servers(name)` gives the connection to a member server other than the primary
    (hypervision.placement), None when every member is on the primary."""

    def __init__(self, catalogue: Catalogue, registry: Registry, max_payload_bytes: int,
                 guard_window_s: int,
                 servers: Callable[[str], psycopg.Connection] | None = None) -> None:
        self.catalogue = catalogue
        self.registry = registry
        self.max_payload_bytes = max_payload_bytes
        self.guard_window_s = guard_window_s
        self.servers = servers
        self._staged: weakref.WeakSet[psycopg.Connection] = weakref.WeakSet()

    # 1-3: validate, attribute, decode -----------------------------------------------

    def _attribute(self, envelope: Envelope) -> tuple[Event, DeviceEntry] | DeadLetter:
        try:
            event = parse(envelope, self.max_payload_bytes)
        except Rejected as exc:
            entry = self.registry.lookup(exc.dev_eui) if exc.dev_eui else None
            return _dead(envelope, exc.reason, exc.detail, exc.dev_eui,
                         entry.member_slug if entry else None)
        entry = self.registry.lookup(event.dev_eui)
        if entry is None:
            return _dead(envelope, DeadReason.UNKNOWN_DEVICE,
                         f"DevEUI {event.dev_eui} is not declared by any member", event.dev_eui,
                         None)
        foreign = _foreign_origin(event, entry)
        if foreign is not None:
            # Attributed to no member: the payload is not the DevEUI owner's data, and may
            # be another member's (only the operator sees it).
            return _dead(envelope, DeadReason.WRONG_APPLICATION, foreign, event.dev_eui, None)
        if not entry.active:
            return _dead(envelope, DeadReason.DEVICE_INACTIVE,
                         f"DevEUI {event.dev_eui} was removed from {entry.member_slug}",
                         event.dev_eui, entry.member_slug)
        if entry.suspended:
            return _dead(envelope, DeadReason.TENANT_SUSPENDED,
                         f"member {entry.member_slug} is suspended", event.dev_eui,
                         entry.member_slug)
        return event, entry

    def prepare(self, envelopes: Sequence[Envelope]) -> _Pending:
        pending = _Pending()
        ups: list[tuple[Envelope, Event, DeviceEntry]] = []
        seen_ids: set[Any] = set()
        seen_frames: set[tuple[str, int, bytes]] = set()
        for envelope in envelopes:
            attributed = self._attribute(envelope)
            if isinstance(attributed, DeadLetter):
                pending.dead.append((attributed, envelope))
                continue
            event, entry = attributed
            pending.days[id(envelope)] = network_day(event, envelope)
            member = pending.members.setdefault(
                entry.member_slug, MemberBatch(entry.member_slug, entry.schema, entry.writer_role)
            )
            if event.kind == "up":
                # Copies within one batch never reach the database twice.
                frame = (event.dev_eui, event.field("fCnt", 0), event.field("data", b""))
                if event.deduplication_id in seen_ids or frame in seen_frames:
                    pending.duplicates.append((entry.member_slug, envelope))
                    continue
                seen_ids.add(event.deduplication_id)
                seen_frames.add(frame)
                ups.append((envelope, event, entry))
            else:
                digest = _digest(envelope.payload)
                member.events.append((event.time, event.dev_eui, event.kind,
                                      event.deduplication_id, digest,
                                      event.json))
                pending.events.append((entry.member_slug, envelope, digest))

        decoded = self.catalogue.decode_batch([
            UplinkToDecode(
                model_id=entry.model_id,
                f_port=event.field("fPort", 0),
                data=event.field("data", b""),
                object=event.body.get("object"),
                recv_time=event.time,
                variables=entry.variables,
            )
            for _, event, entry in ups
        ])
        for (envelope, event, entry), result in zip(ups, decoded, strict=True):
            self._add_uplink(pending, envelope, event, entry, result)
        return pending

    def _add_uplink(self, pending: _Pending, envelope: Envelope, event: Event,
                    entry: DeviceEntry, result: Decoded) -> None:
        rx = event.field("rxInfo", [])
        best = max(rx, key=lambda r: r.get("rssi") or -1000, default=None)
        lora = ((event.field("txInfo", {}).get("modulation") or {}).get("lora")) or {}
        notes = None
        if result.warnings or result.disagreement:
            notes = {"warnings": result.warnings, "disagreement": result.disagreement}
        member = pending.members[entry.member_slug]
        member.uplinks.append((
            event.time, received_datetime(envelope), event.dev_eui, event.deduplication_id,
            event.field("fCnt", 0), event.field("fPort", 0), _column_int(event.field("dr", 0)),
            event.field("adr", False), event.field("confirmed", False),
            event.field("devAddr") or None, event.field("data", b""),
            best.get("rssi") if best else None, best.get("snr") if best else None, len(rx),
            [r["gatewayId"] for r in rx if r.get("gatewayId")],
            event.field("txInfo", {}).get("frequency"), _column_int(lora.get("spreadingFactor")),
            _json_or_none(event.body.get("object")), result.codec, result.codec_version,
            result.error, _json_or_none(notes), event.json,
        ))
        for reading in result.readings:
            member.measurements.append((reading.time or event.time, event.dev_eui,
                                        reading.metric, reading.value, reading.unit,
                                        event.deduplication_id))
        pending.uplinks.append((entry.member_slug, envelope, event.deduplication_id,
                                result.error is None))

    # 4: store --------------------------------------------------------------------------

    def write(self, conn: psycopg.Connection, pending: _Pending) -> BatchResult:
        """Write a prepared batch. `conn` is on the primary; members placed on other
        servers are written there first (`_write_elsewhere`), one transaction per server,
        while this transaction holds their placement locks (hypervision.placement).
        Members whose ingestion is paused, or whose server cannot be reached, are left out
        and returned in `BatchResult.deferred`, for the task to queue again."""
        result = BatchResult()
        counts: dict[tuple[date, str, str, str], list[int]] = {}

        def count(member: str | None, envelope: Envelope, outcome: Outcome) -> None:
            result.outcomes[(member or "", outcome)] += 1
            day = pending.days.get(id(envelope)) or received_datetime(envelope).date()
            key = (day, member or "", envelope.event_type, outcome.value)
            slot = counts.setdefault(key, [0, 0])
            slot[0] += 1
            slot[1] += len(envelope.payload)

        if conn not in self._staged:
            prepare_staging(conn)
            self._staged.add(conn)
        with conn.transaction():
            where = lock_and_read(conn, pending.members) if pending.members else {}
            here: dict[str, MemberBatch] = {}
            elsewhere: dict[str, list[MemberBatch]] = {}
            waiting: set[str] = set()
            for slug, member in sorted(pending.members.items()):  # one order in every batch
                placed = where.get(slug)
                if placed is not None and placed.paused:
                    waiting.add(slug)
                elif placed is None or placed.server is None:
                    here[slug] = member
                else:
                    elsewhere.setdefault(placed.server, []).append(member)

            # Members on other servers: their rows and receipts, committed there.
            receipts: list[tuple[str, str, bytes, list[list[Any]]]] = []
            for server, members in sorted(elsewhere.items()):
                try:
                    receipts += [(server, *r) for r in self._write_elsewhere(server, members,
                                                                             pending)]
                except Exception as exc:
                    if not is_unavailable(exc):
                        raise
                    # libpq's message names the address that failed, never a password.
                    log.warning("server %s unreachable (%s: %s): %d member(s) wait", server,
                                type(exc).__name__, " ".join(str(exc).split()), len(members))
                    waiting |= {m.slug for m in members}
            for slug in sorted(waiting):
                result.deferred += _envelopes_of(pending, slug)

            # Members on the primary, in this transaction.
            stored_ids: set[Any] = set()
            stored_digests: set[bytes] = set()
            stage_batch(conn, list(here.values()))
            for member in here.values():
                written = self._write_member(conn, member)
                stored_ids |= written.stored_uplinks
                stored_digests |= written.stored_event_digests
            for slug, envelope, outcome in _outcomes(pending, set(here), stored_ids,
                                                     stored_digests):
                count(slug, envelope, outcome)
            for letter, envelope in pending.dead:
                count(letter.member_slug, envelope, DeadReason(letter.reason).outcome)

            # Receipts of the other servers: counted once, whatever the deliveries.
            if receipts:
                new = {bytes(row[0]) for row in conn.execute(
                    "INSERT INTO hv.ingest_counted (key, member_slug, server)"
                    " SELECT * FROM unnest(%s::bytea[], %s::text[], %s::text[])"
                    " ON CONFLICT DO NOTHING RETURNING key",
                    ([r[2] for r in receipts], [r[1] for r in receipts],
                     [r[0] for r in receipts])).fetchall()}
                for _, _, key, rows in receipts:
                    for day, member, event_type, outcome, events, size in rows:
                        result.outcomes[(member, Outcome(outcome))] += events
                        if key in new:
                            slot = counts.setdefault(
                                (date.fromisoformat(day), member, event_type, outcome), [0, 0])
                            slot[0] += events
                            slot[1] += size
            write_dead_letters(conn, [letter for letter, _ in pending.dead])
            count_outcomes(conn, {k: (v[0], v[1]) for k, v in counts.items()})
        return result

    def _write_member(self, conn: psycopg.Connection, member: MemberBatch) -> MemberResult:
        written = write_member(conn, member, self.guard_window_s)
        # 5: a txack or ack moves the member's downlinks forward.
        answered = sorted({row[1] for row in member.events if row[2] in ANSWER_KINDS})
        if answered:
            with acting_as(conn, member.writer_role):
                track_downlinks(conn, member.schema, answered)
        return written

    def _write_elsewhere(self, server: str, members: list[MemberBatch],
                         pending: _Pending) -> list[tuple[str, bytes, list[list[Any]]]]:
        """Write these members' rows on their server in one transaction, each with a
        receipt: (member, key, counts), counts as [day, member, event type, outcome,
        events, bytes]. A member whose receipt is there already (its batch was delivered
        before, and its counts perhaps not yet added on the primary) is not written again:
        its receipt's counts are returned as they were."""
        if self.servers is None:
            raise RuntimeError(f"members on server {server}, and no connection to it")
        remote = self.servers(server)
        if remote not in self._staged:
            prepare_staging(remote)
            self._staged.add(remote)
        keys = {m.slug: _receipt_key(m.slug, _envelopes_of(pending, m.slug)) for m in members}
        done: list[tuple[str, bytes, list[list[Any]]]] = []
        with remote.transaction():
            for slug in sorted(keys):
                # Two deliveries of one batch at once: the second waits, then finds the
                # first one's receipt.
                remote.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                               (keys[slug].hex(),))
            found: dict[bytes, list[list[Any]]] = {
                bytes(key): counts for key, counts in remote.execute(
                    "SELECT key, counts FROM hv.ingest_receipts WHERE key = ANY(%s)",
                    (list(keys.values()),)).fetchall()}
            todo = [m for m in members if keys[m.slug] not in found]
            stored_ids: set[Any] = set()
            stored_digests: set[bytes] = set()
            stage_batch(remote, todo)
            for member in todo:
                written = self._write_member(remote, member)
                stored_ids |= written.stored_uplinks
                stored_digests |= written.stored_event_digests
            per_member: dict[str, dict[tuple[str, str, str, str], list[int]]] = {
                m.slug: {} for m in todo}
            for slug, envelope, outcome in _outcomes(pending, set(per_member), stored_ids,
                                                     stored_digests):
                slot = per_member[slug].setdefault(
                    (received_datetime(envelope).date().isoformat(), slug,
                     envelope.event_type, outcome.value), [0, 0])
                slot[0] += 1
                slot[1] += len(envelope.payload)
            for member in members:
                if member.slug in per_member:
                    rows = [[*k, *v] for k, v in sorted(per_member[member.slug].items())]
                    remote.execute(
                        "INSERT INTO hv.ingest_receipts (key, member_slug, counts)"
                        " VALUES (%s, %s, %s)",
                        (keys[member.slug], member.slug, Jsonb(rows)))
                else:
                    rows = found[keys[member.slug]]
                done.append((member.slug, keys[member.slug], rows))
        return done

    def process(self, conn: psycopg.Connection, envelopes: Sequence[Envelope]) -> BatchResult:
        """Process a batch in one transaction. Database errors that may pass (connection
        lost, deadlock, serialization) propagate for the task to retry; any other failure
        falls back to `process_isolated`."""
        try:
            return self.write(conn, self.prepare(envelopes))
        except TRANSIENT_ERRORS:
            raise
        except Exception:
            log.exception("batch of %d failed; retrying its events one by one", len(envelopes))
        return self.process_isolated(conn, envelopes)

    def process_isolated(self, conn: psycopg.Connection,
                         envelopes: Sequence[Envelope]) -> BatchResult:
        """Each envelope in its own transaction; one that fails becomes a dead letter."""
        result = BatchResult()
        for envelope in envelopes:
            try:
                result.merge(self.write(conn, self.prepare([envelope])))
            except Exception as exc:
                if is_unavailable(exc):
                    raise
                log.warning("event from %s failed alone: %s", envelope.origin, exc)
                result.merge(self.dead_letter(conn, [envelope], f"{type(exc).__name__}: {exc}"))
        return result

    def dead_letter(self, conn: psycopg.Connection, envelopes: Sequence[Envelope],
                    detail: str) -> BatchResult:
        """Record envelopes that could not be stored at all."""
        pending = _Pending()
        for envelope in envelopes:
            pending.dead.append((_dead(envelope, DeadReason.STORE_FAILED, detail[:2000],
                                       None, None), envelope))
        return self.write(conn, pending)

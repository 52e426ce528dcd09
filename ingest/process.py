"""One batch of envelopes, from bytes to rows: validate → attribute → decode → store.

1. Each envelope is parsed strictly (ingest.chirpstack); a rejected one becomes a dead letter.
2. The registry attributes it to the member owning its DevEUI; unknown or inactive devices
   and suspended members become dead letters.
3. Uplinks are decoded together (one codec call per batch, see ingest.decode).
4. Rows are grouped per member and written in one transaction (ingest.store), with the
   dead letters and the outcome counters: a batch is written entirely or not at all.

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import psycopg

from ingest.chirpstack import Envelope, Event, Rejected, parse, received_datetime
from ingest.decode import Catalogue, Decoded, UplinkToDecode
from ingest.outcomes import DeadReason, Outcome
from ingest.registry import DeviceEntry, Registry
from ingest.store import (
    DeadLetter,
    MemberBatch,
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

    def total(self, outcome: Outcome) -> int:
        return sum(n for (_, o), n in self.outcomes.items() if o is outcome)

    def merge(self, other: BatchResult) -> None:
        self.outcomes.update(other.outcomes)


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


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


class Processor:
    """Turns envelopes into rows. Holds the catalogue and registry; no connection."""

    def __init__(self, catalogue: Catalogue, registry: Registry, max_payload_bytes: int,
                 guard_window_s: int) -> None:
        self.catalogue = catalogue
        self.registry = registry
        self.max_payload_bytes = max_payload_bytes
        self.guard_window_s = guard_window_s
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
                                      envelope.payload.decode("utf-8")))
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
            event.field("fCnt", 0), event.field("fPort", 0), event.field("dr", 0),
            event.field("adr", False), event.field("confirmed", False),
            event.field("devAddr") or None, event.field("data", b""),
            best.get("rssi") if best else None, best.get("snr") if best else None, len(rx),
            [r["gatewayId"] for r in rx if r.get("gatewayId")],
            event.field("txInfo", {}).get("frequency"), lora.get("spreadingFactor"),
            _json_or_none(event.body.get("object")), result.codec, result.codec_version,
            result.error, _json_or_none(notes), envelope.payload.decode("utf-8"),
        ))
        for reading in result.readings:
            member.measurements.append((reading.time or event.time, event.dev_eui,
                                        reading.metric, reading.value, reading.unit,
                                        event.deduplication_id))
        pending.uplinks.append((entry.member_slug, envelope, event.deduplication_id,
                                result.error is None))

    # 4: store --------------------------------------------------------------------------

    def write(self, conn: psycopg.Connection, pending: _Pending) -> BatchResult:
        result = BatchResult()
        counts: dict[tuple[date, str, str, str], list[int]] = {}

        def count(member: str | None, envelope: Envelope, outcome: Outcome) -> None:
            result.outcomes[(member or "", outcome)] += 1
            key = (received_datetime(envelope).date(), member or "", envelope.event_type,
                   outcome.value)
            slot = counts.setdefault(key, [0, 0])
            slot[0] += 1
            slot[1] += len(envelope.payload)

        if conn not in self._staged:
            prepare_staging(conn)
            self._staged.add(conn)
        with conn.transaction():
            stored_ids: set[Any] = set()
            stored_digests: set[bytes] = set()
            stage_batch(conn, list(pending.members.values()))
            for _, member in sorted(pending.members.items()):  # one order in every batch
                written = write_member(conn, member, self.guard_window_s)
                stored_ids |= written.stored_uplinks
                stored_digests |= written.stored_event_digests
            for slug, envelope, dedup_id, decoded_ok in pending.uplinks:
                if dedup_id not in stored_ids:
                    count(slug, envelope, Outcome.DUPLICATE)
                else:
                    count(slug, envelope, Outcome.STORED if decoded_ok else Outcome.DECODE_FAILED)
            for slug, envelope, digest in pending.events:
                count(slug, envelope,
                      Outcome.STORED if digest in stored_digests else Outcome.DUPLICATE)
            for slug, envelope in pending.duplicates:
                count(slug, envelope, Outcome.DUPLICATE)
            for letter, envelope in pending.dead:
                count(letter.member_slug, envelope, DeadReason(letter.reason).outcome)
            write_dead_letters(conn, [letter for letter, _ in pending.dead])
            count_outcomes(conn, {k: (v[0], v[1]) for k, v in counts.items()})
        return result

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

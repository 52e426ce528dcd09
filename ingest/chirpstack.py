"""ChirpStack v4 integration events: from the bytes received to a typed, validated event.

What arrives (MQTT topic `application/{app}/device/{dev_eui}/event/{type}`, or the HTTP
integration's `?event={type}`) is an `Envelope`. `parse()` checks it strictly against the
schema of the real `chirpstack_api.integration` protobuf messages (compiled once by
ingest.chirpstack_schema): unknown fields and wrong types are rejected, never guessed. A
rejected envelope raises `Rejected` with a `DeadReason`. ChirpStack's JSON is camelCase,
with base64 bytes and `+00:00` timestamps; a field at its default may be absent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chirpstack_api import integration
from google.protobuf import json_format
from google.protobuf.message import Message

from ingest.chirpstack_schema import ValidationError, validator_for
from ingest.outcomes import DeadReason

EVENT_MESSAGES: dict[str, type[Message]] = {
    "up": integration.UplinkEvent,
    "join": integration.JoinEvent,
    "ack": integration.AckEvent,
    "txack": integration.TxAckEvent,
    "log": integration.LogEvent,
    "status": integration.StatusEvent,
    "location": integration.LocationEvent,
}
VALIDATORS = {kind: validator_for(message.DESCRIPTOR) for kind, message in EVENT_MESSAGES.items()}


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event as received, before any interpretation.

    origin: the MQTT topic, or `http` for the HTTP integration.
    event_type: `up`, `status`, ... (from the topic or the `event` query parameter).
    """

    origin: str
    event_type: str
    payload: bytes
    received_at: float  # epoch seconds, at the receiver

    def to_wire(self) -> list[Any]:
        return [self.origin, self.event_type, self.payload, self.received_at]

    @classmethod
    def from_wire(cls, item: list[Any]) -> Envelope:
        origin, event_type, payload, received_at = item
        return cls(str(origin), str(event_type), bytes(payload), float(received_at))

    @classmethod
    def from_topic(cls, topic: str, payload: bytes, received_at: float) -> Envelope:
        return cls(topic, topic.rsplit("/", 1)[-1], payload, received_at)


@dataclass(frozen=True, slots=True)
class Event:
    """A validated ChirpStack event: `body` holds its fields by JSON name, with bytes
    decoded and timestamps as datetimes; a field at its protobuf default may be absent,
    so read it with `field()`."""

    kind: str
    dev_eui: str
    time: datetime
    deduplication_id: uuid.UUID | None
    body: dict[str, Any]

    def field(self, name: str, default: Any = None) -> Any:
        value = self.body.get(name)
        return default if value is None else value

    def message(self) -> Message:
        """The event as its chirpstack_api.integration protobuf message (slow: not for
        the hot path)."""
        plain = {k: v for k, v in self.body.items() if v is not None}
        return json_format.ParseDict(_jsonable(plain), EVENT_MESSAGES[self.kind]())


def _jsonable(value: Any) -> Any:
    """Undo the validator's conversions (bytes, datetimes) for protobuf's JSON parser."""
    import base64

    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


class Rejected(Exception):
    def __init__(self, reason: DeadReason, detail: str, dev_eui: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.dev_eui = dev_eui


def _topic_dev_eui(origin: str) -> str | None:
    parts = origin.split("/")
    if len(parts) == 6 and parts[0] == "application" and parts[2] == "device":
        return parts[3].lower()
    return None


def parse(envelope: Envelope, max_payload_bytes: int) -> Event:
    """Validate one envelope into an Event, or raise Rejected."""
    topic_eui = _topic_dev_eui(envelope.origin)
    if len(envelope.payload) > max_payload_bytes:
        raise Rejected(
            DeadReason.OVERSIZED,
            f"{len(envelope.payload)} bytes, more than the {max_payload_bytes} allowed",
            topic_eui,
        )
    validator = VALIDATORS.get(envelope.event_type)
    if validator is None:
        raise Rejected(DeadReason.UNKNOWN_EVENT_TYPE, f"event type {envelope.event_type!r}",
                       topic_eui)
    try:
        body = validator.validate_json(envelope.payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] in ("json_invalid", "dict_type", "model_type") and not first["loc"]:
            raise Rejected(DeadReason.MALFORMED_JSON, first["msg"], topic_eui) from None
        where = ".".join(str(p) for p in first["loc"])
        detail = f"{where}: {first['msg']}"
        if len(exc.errors()) > 1:
            detail += f" (and {len(exc.errors()) - 1} more)"
        raise Rejected(DeadReason.INVALID_EVENT, detail[:500], topic_eui) from None

    device_info = body.get("deviceInfo") or {}
    dev_eui = (device_info.get("devEui") or "").lower()
    if len(dev_eui) != 16 or any(c not in "0123456789abcdef" for c in dev_eui):
        raise Rejected(DeadReason.INVALID_EVENT, "deviceInfo.devEui missing or invalid", topic_eui)
    if topic_eui is not None and topic_eui != dev_eui:
        raise Rejected(DeadReason.TOPIC_MISMATCH,
                       f"topic names {topic_eui}, payload names {dev_eui}", dev_eui)
    time = body.get("time")
    if time is None:
        raise Rejected(DeadReason.INVALID_EVENT, "time missing", dev_eui)
    time = time.astimezone(UTC)

    dedup: uuid.UUID | None = None
    raw_id = body.get("deduplicationId") or ""
    if raw_id:
        try:
            dedup = uuid.UUID(raw_id)
        except ValueError:
            raise Rejected(DeadReason.INVALID_EVENT, f"deduplicationId {raw_id!r} is not a UUID",
                           dev_eui) from None
    elif envelope.event_type == "up":
        raise Rejected(DeadReason.INVALID_EVENT, "deduplicationId missing", dev_eui)
    if envelope.event_type == "up" and (body.get("fPort") or 0) > 255:
        raise Rejected(DeadReason.INVALID_EVENT, f"fPort {body['fPort']} out of range", dev_eui)
    return Event(envelope.event_type, dev_eui, time, dedup, body)


def received_datetime(envelope: Envelope) -> datetime:
    return datetime.fromtimestamp(envelope.received_at, UTC)

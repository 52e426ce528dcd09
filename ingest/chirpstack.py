"""ChirpStack v4 integration events: from the bytes received to a typed, validated event.

What arrives (MQTT topic `application/{app}/device/{dev_eui}/event/{type}`, or the HTTP
integration's `?event={type}`) is an `Envelope`. `parse()` checks it strictly against the
real `chirpstack_api.integration` protobuf messages: unknown fields and wrong types are
rejected, never guessed. A rejected envelope raises `Rejected` with a `DeadReason`.
See shared notes on ChirpStack's JSON (camelCase, base64 bytes, `+00:00` timestamps).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chirpstack_api import integration
from google.protobuf import json_format
from google.protobuf.message import Message

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
    """A validated ChirpStack event."""

    kind: str
    dev_eui: str
    time: datetime
    deduplication_id: uuid.UUID | None
    message: Any  # the chirpstack_api.integration message
    body: dict[str, Any]  # the JSON object as received


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
    message_type = EVENT_MESSAGES.get(envelope.event_type)
    if message_type is None:
        raise Rejected(DeadReason.UNKNOWN_EVENT_TYPE, f"event type {envelope.event_type!r}",
                       topic_eui)
    try:
        body = json.loads(envelope.payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected(DeadReason.MALFORMED_JSON, str(exc), topic_eui) from None
    if not isinstance(body, dict):
        raise Rejected(DeadReason.MALFORMED_JSON, "the payload is not a JSON object", topic_eui)
    try:
        message = json_format.ParseDict(body, message_type())
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise Rejected(DeadReason.INVALID_EVENT, str(exc)[:500], topic_eui) from None

    dev_eui = message.device_info.dev_eui.lower() if message.HasField("device_info") else ""
    if len(dev_eui) != 16 or any(c not in "0123456789abcdef" for c in dev_eui):
        raise Rejected(DeadReason.INVALID_EVENT, "deviceInfo.devEui missing or invalid", topic_eui)
    if topic_eui is not None and topic_eui != dev_eui:
        raise Rejected(DeadReason.TOPIC_MISMATCH,
                       f"topic names {topic_eui}, payload names {dev_eui}", dev_eui)
    if not message.HasField("time"):
        raise Rejected(DeadReason.INVALID_EVENT, "time missing", dev_eui)
    time = message.time.ToDatetime(tzinfo=UTC)

    dedup: uuid.UUID | None = None
    raw_id = getattr(message, "deduplication_id", "")
    if raw_id:
        try:
            dedup = uuid.UUID(raw_id)
        except ValueError:
            raise Rejected(DeadReason.INVALID_EVENT, f"deduplicationId {raw_id!r} is not a UUID",
                           dev_eui) from None
    elif envelope.event_type == "up":
        raise Rejected(DeadReason.INVALID_EVENT, "deduplicationId missing", dev_eui)
    if envelope.event_type == "up" and message.f_port > 255:
        raise Rejected(DeadReason.INVALID_EVENT, f"fPort {message.f_port} out of range", dev_eui)
    return Event(envelope.event_type, dev_eui, time, dedup, message, body)


def received_datetime(envelope: Envelope) -> datetime:
    return datetime.fromtimestamp(envelope.received_at, UTC)

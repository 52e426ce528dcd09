"""ChirpStack v4 integration events: from the bytes received to a typed, validated event.

What arrives (MQTT topic `application/{app}/device/{dev_eui}/event/{type}`, or the HTTP
integration's `?event={type}`) is an `Envelope`. ChirpStack writes events as protobuf JSON
(`json = true`, its default) or as binary protobuf (`json = false`); the envelope says which
(`json`, `protobuf`, or `auto`: JSON when the payload starts with `{`). `parse()` reads it
as protobuf's own parser would, against the real `chirpstack_api.integration` messages:
JSON through the validators compiled by ingest.chirpstack_schema, binary through protobuf
itself. Unknown fields (a newer ChirpStack) are accepted and kept in the stored event;
wrong types are rejected, never guessed. A rejected envelope raises `Rejected` with a
`DeadReason`. See ingest/README.md, "ChirpStack events".
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from chirpstack_api import integration
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError, Message

from ingest.chirpstack_schema import ValidationError, to_proto_json, validator_for
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


def _descriptor(message: type[Message]) -> Descriptor:
    """A message's descriptor. At run time protobuf's C implementation (upb) provides it,
    with the interface of the pure Python one that the stubs name."""
    return cast(Descriptor, message.DESCRIPTOR)


VALIDATORS = {kind: validator_for(_descriptor(message)) for kind, message in EVENT_MESSAGES.items()}
ENCODINGS = ("json", "protobuf", "auto")
# Where a binary event held fields this chirpstack_api does not know (a newer ChirpStack),
# its stored JSON keeps the whole original message here, in base64: protobuf JSON cannot
# name unknown fields.
PROTOBUF_KEY = "protobufPayload"


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event as received, before any interpretation.

    origin: the MQTT topic, or `http` for the HTTP integration.
    event_type: `up`, `status`, ... (from the topic or the `event` query parameter).
    encoding: `json`, `protobuf` or `auto` (see the module's docstring).
    """

    origin: str
    event_type: str
    payload: bytes
    received_at: float  # epoch seconds, at the receiver
    encoding: str = "json"

    def to_wire(self) -> list[Any]:
        return [self.origin, self.event_type, self.payload, self.received_at, self.encoding]

    @classmethod
    def from_wire(cls, item: list[Any]) -> Envelope:
        # Batches queued by a receiver older than the encoding setting have 4 items.
        origin, event_type, payload, received_at, *rest = item
        encoding = str(rest[0]) if rest else "json"
        return cls(str(origin), str(event_type), bytes(payload), float(received_at), encoding)

    @classmethod
    def from_topic(cls, topic: str, payload: bytes, received_at: float,
                   encoding: str = "json") -> Envelope:
        return cls(topic, topic.rsplit("/", 1)[-1], payload, received_at, encoding)

    def is_json(self) -> bool:
        if self.encoding == "auto":
            return self.payload.lstrip(b" \t\r\n")[:1] == b"{"
        return self.encoding != "protobuf"


@dataclass(frozen=True, slots=True)
class Event:
    """A validated ChirpStack event: `body` holds its fields by JSON name, with bytes
    decoded and timestamps as datetimes (ingest.chirpstack_schema.Instant); a field at its
    protobuf default may be absent, so read it with `field()`. `json` is the event as
    stored: protobuf JSON with ChirpStack's field names, unknown fields kept."""

    kind: str
    dev_eui: str
    time: datetime
    deduplication_id: uuid.UUID | None
    body: dict[str, Any]
    json: str

    def field(self, name: str, default: Any = None) -> Any:
        value = self.body.get(name)
        return default if value is None else value

    def message(self) -> Message:
        """The event as its chirpstack_api.integration protobuf message (slow: not for
        the hot path)."""
        plain = {k: v for k, v in self.body.items() if v is not None}
        return json_format.ParseDict(to_proto_json(plain), EVENT_MESSAGES[self.kind]())


def _json_names(value: Any, descriptor: Descriptor) -> tuple[Any, bool]:
    """The JSON object of a message with its original field names (`dev_eui`) renamed to
    JSON names (`devEui`), unknown keys kept; and whether anything was renamed."""
    if not isinstance(value, dict) or descriptor.full_name.startswith("google.protobuf."):
        return value, False
    renamed = False
    by_json_name = {f.json_name: f for f in descriptor.fields}
    out: dict[str, Any] = {}
    for key, item in value.items():
        field = by_json_name.get(key)
        if field is None:
            field = descriptor.fields_by_name.get(key)
            if field is not None:
                key, renamed = field.json_name, True
        message = field.message_type if field is not None else None
        if message is not None and message.GetOptions().map_entry:
            value_type = message.fields_by_name["value"].message_type
            if value_type is not None and isinstance(item, dict):
                pairs = {k: _json_names(v, value_type) for k, v in item.items()}
                item = {k: v for k, (v, _) in pairs.items()}
                renamed = renamed or any(r for _, r in pairs.values())
        elif message is not None and isinstance(item, list):
            items = [_json_names(v, message) for v in item]
            item = [v for v, _ in items]
            renamed = renamed or any(r for _, r in items)
        elif message is not None:
            item, inner = _json_names(item, message)
            renamed = renamed or inner
        out[key] = item
    return out, renamed


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
    text: bytes | str
    if envelope.is_json():
        text = envelope.payload
        stored = None
    else:
        text = stored = _protobuf_as_json(envelope, topic_eui)
    try:
        body = validator.validate_json(text)
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
    if stored is None:
        stored = envelope.payload.decode("utf-8")
        if envelope.event_type != "up":
            # Other events are read back by SQL by their JSON names (status, downlinks):
            # store those names even when the event used the original ones. Uplinks are
            # read from their columns; their JSON is kept as received.
            renamed, changed = _json_names(json.loads(stored),
                                           _descriptor(EVENT_MESSAGES[envelope.event_type]))
            if changed:
                stored = json.dumps(renamed, ensure_ascii=False)
    return Event(envelope.event_type, dev_eui, time, dedup, body, stored)


def _protobuf_as_json(envelope: Envelope, topic_eui: str | None) -> str:
    """A binary protobuf event as protobuf JSON, every scalar written (as ChirpStack's JSON
    does), so that both encodings are validated and stored alike."""
    message = EVENT_MESSAGES[envelope.event_type]()
    try:
        message.ParseFromString(envelope.payload)
    except DecodeError as exc:
        raise Rejected(DeadReason.MALFORMED_PROTOBUF, f"not a {message.DESCRIPTOR.name}: {exc}",
                       topic_eui) from None
    size = message.ByteSize()
    message.DiscardUnknownFields()
    try:
        document = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    except (ValueError, TypeError, json_format.Error) as exc:
        # Decodable, but with a value JSON cannot hold (a Timestamp out of range, NaN in
        # a Struct): invalid, as the same event in JSON would be.
        raise Rejected(DeadReason.INVALID_EVENT, f"{message.DESCRIPTOR.name}: {exc}"[:500],
                       topic_eui) from None
    if message.ByteSize() != size:
        document[PROTOBUF_KEY] = base64.b64encode(envelope.payload).decode()
    return json.dumps(document, ensure_ascii=False)


def received_datetime(envelope: Envelope) -> datetime:
    return datetime.fromtimestamp(envelope.received_at, UTC)

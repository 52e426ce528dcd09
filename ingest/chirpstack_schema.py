"""Validators for ChirpStack's JSON events, derived from the real `chirpstack_api` messages.

protobuf's own `json_format.ParseDict` is pure Python and costs ~130 µs per uplink, more
than everything else a worker does for it. So the schema of each integration message is
read once from its protobuf descriptor and compiled into a pydantic-core validator (Rust),
which checks the same things at a fraction of the cost:

- field names as ChirpStack writes them (lowerCamelCase JSON names); an unknown field is
  an error, at every level;
- scalar types strictly: integers within their protobuf range (as numbers or decimal
  strings, as protobuf JSON allows), floats, booleans, strings;
- bytes as base64 (where protobuf's parser silently drops invalid characters, this
  refuses them), enums by name, Timestamps as RFC 3339 strings, Struct fields
  (the codec `object`) as JSON objects, maps as objects of the declared value type;
- `null` for any field, meaning "absent", as protobuf JSON allows.

Validated events come back as plain dicts keyed by the JSON names, with bytes decoded and
timestamps as aware datetimes. `tests/ingest/test_chirpstack_schema.py` checks that these
validators refuse what protobuf's parser refuses and read valid events identically.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Literal

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from pydantic import BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict

__all__ = ["ValidationError", "validator_for"]

F = FieldDescriptor
_INT_RANGES = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1), F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: (-(2**31), 2**31 - 1), F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_FIXED32: (0, 2**32 - 1), F.TYPE_INT64: (-(2**63), 2**63 - 1),
    F.TYPE_SINT64: (-(2**63), 2**63 - 1), F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1), F.TYPE_FIXED64: (0, 2**64 - 1),
}


def _base64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("bytes must be a base64 string")
    # protobuf JSON also accepts the URL-safe alphabet.
    standard = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(standard, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"invalid base64: {exc}") from None


def _int64_string(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an integer") from None
    return value


def _timestamp(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("a timestamp must be an RFC 3339 string")
    # Python's parser takes at most 6 fraction digits; ChirpStack writes up to 9.
    text = value.replace("Z", "+00:00").replace("z", "+00:00")
    if "." in text:
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset")
    return parsed


Bytes = Annotated[bytes, BeforeValidator(_base64)]
Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]


def _scalar(field: FieldDescriptor, cache: dict[str, Any]) -> Any:
    t = field.type
    if t in _INT_RANGES:
        low, high = _INT_RANGES[t]
        # protobuf JSON takes integers as numbers or decimal strings (64-bit ones are
        # written as strings).
        return Annotated[int, Field(ge=low, le=high, strict=True), BeforeValidator(_int64_string)]
    if t in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return Annotated[float, Field(strict=True)]
    if t == F.TYPE_BOOL:
        return Annotated[bool, Field(strict=True)]
    if t == F.TYPE_STRING:
        return Annotated[str, Field(strict=True)]
    if t == F.TYPE_BYTES:
        return Bytes
    if t == F.TYPE_ENUM:
        return Literal[tuple(v.name for v in field.enum_type.values)]
    if t == F.TYPE_MESSAGE:
        return _message(field.message_type, cache)
    raise TypeError(f"unsupported protobuf type {t} for {field.full_name}")


def _message(descriptor: Descriptor, cache: dict[str, Any]) -> Any:
    name = descriptor.full_name
    if name == "google.protobuf.Timestamp":
        return Timestamp
    if name == "google.protobuf.Struct":
        return dict[str, Any]
    if name in ("google.protobuf.Value", "google.protobuf.ListValue"):
        return Any
    if name in cache:
        return cache[name]
    cache[name] = Any  # recursive messages (none in the integration API) stay unchecked
    fields: dict[str, Any] = {}
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            _, value_field = field.message_type.fields
            kind: Any = dict[str, _scalar(value_field, cache) | None]  # type: ignore[misc]
        else:
            kind = _scalar(field, cache)
            if field.is_repeated:
                kind = list[kind]  # type: ignore[valid-type]
        fields[field.json_name] = kind | None
    typed = TypedDict(  # type: ignore[operator]
        descriptor.name, {k: v for k, v in fields.items()}, total=False
    )
    typed.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    cache[name] = typed
    return typed


def validator_for(descriptor: Descriptor) -> TypeAdapter[Any]:
    """A compiled validator of one message's JSON form; `.validate_json(bytes)` returns a
    dict keyed by JSON names, or raises pydantic.ValidationError."""
    return TypeAdapter(_message(descriptor, {}))

"""Validators for ChirpStack's JSON events, derived from the real `chirpstack_api` messages.

protobuf's own `json_format.Parse` is pure Python and costs ~130 µs per uplink, more than
everything else a worker does for it. So the schema of each integration message is read
once from its protobuf descriptor and compiled into a pydantic-core validator (Rust). It
accepts what protobuf's JSON parser accepts and yields the same values:

- field names as lowerCamelCase JSON names (as ChirpStack writes them) or as the original
  snake_case names; unknown fields (from a newer ChirpStack) are ignored here and kept in
  the raw event by the caller;
- integers as numbers, integral floats or decimal strings, within their protobuf range;
  floats as numbers or strings (`"NaN"`, `"Infinity"`); strict booleans and strings;
- bytes in base64, standard or URL-safe, padded or not; enums by name or number;
- Timestamps as RFC 3339 strings with up to 9 fraction digits and any offset (an
  `Instant`, keeping the nanoseconds); Durations such as `"1s"` or `"-3.5s"` (a `Span`);
  Struct, Value and ListValue as plain JSON; maps as objects; at most one member of a
  oneof;
- `null` for any field, meaning "absent", except inside lists and maps.

The common shapes are checked in Rust; anything else falls back to a Python function that
follows protobuf's own rules. Two deliberate differences, both refusing what no protobuf
serialiser writes: bytes with characters outside the base64 alphabets (protobuf's Python
parser silently drops them, Go's and Rust's refuse them), and a message given as `""` or
`[]` (protobuf's Python parser takes them as an empty message).

Validated events come back as plain dicts keyed by the JSON names. The generated parity
tests (`tests/ingest/test_chirpstack_parity.py`) check all of this against
`json_format.Parse` on every integration message. See ingest/README.md.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from pydantic_core import PydanticCustomError, SchemaValidator, ValidationError
from pydantic_core import core_schema as cs

__all__ = ["Instant", "Span", "ValidationError", "to_proto_json", "validator_for"]

F = FieldDescriptor
_INT_RANGES = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1), F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: (-(2**31), 2**31 - 1), F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_FIXED32: (0, 2**32 - 1), F.TYPE_INT64: (-(2**63), 2**63 - 1),
    F.TYPE_SINT64: (-(2**63), 2**63 - 1), F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1), F.TYPE_FIXED64: (0, 2**64 - 1),
}
# The largest finite 32-bit float, as protobuf's parser bounds `float` fields.
FLOAT_MAX = float.fromhex("0x1.fffffep+127")


class Instant(datetime):
    """An aware datetime (at the offset it was written with) that keeps a protobuf
    Timestamp's nanoseconds."""

    __slots__ = ("_nanos",)
    _nanos: int

    @property
    def nanosecond(self) -> int:
        """The fraction of the second in nanoseconds (0 to 999 999 999)."""
        return getattr(self, "_nanos", self.microsecond * 1000)

    def proto_json(self) -> str:
        """The Timestamp as protobuf JSON writes it (UTC, 0, 3, 6 or 9 fraction digits)."""
        text = self.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        nanos = self.nanosecond
        if nanos:
            digits = f"{nanos:09d}"
            digits = digits[:3] if nanos % 1_000_000 == 0 else (
                digits[:6] if nanos % 1000 == 0 else digits)
            text += "." + digits
        return text + "Z"


class Span(timedelta):
    """A timedelta that keeps a protobuf Duration's nanoseconds."""

    __slots__ = ("_nanos",)
    _nanos: int

    @property
    def nanoseconds(self) -> int:
        """The whole duration in nanoseconds."""
        exact = getattr(self, "_nanos", None)
        if exact is not None:
            return int(exact)
        return ((self.days * 86400 + self.seconds) * 1_000_000 + self.microseconds) * 1000

    def proto_json(self) -> str:
        nanos = self.nanoseconds
        sign = "-" if nanos < 0 else ""
        seconds, fraction = divmod(abs(nanos), 1_000_000_000)
        return f"{sign}{seconds}.{fraction:09d}s" if fraction else f"{sign}{seconds}s"


def _fail(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


# Scalars: the slow paths, which follow json_format's rules -------------------------------


def _integer(low: int, high: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        # Numbers, integral floats, decimal strings without spaces, "1e3" (json_format).
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise _fail("int_type", "an integer is required")
        if isinstance(value, float) and not value.is_integer():
            raise _fail("int_parsing", f"{value!r} is not an integer")
        if isinstance(value, str) and " " in value:
            raise _fail("int_parsing", f"{value!r} is not an integer")
        try:
            number = int(value)
        except (ValueError, OverflowError):
            try:
                as_float = float(value)
            except ValueError:
                raise _fail("int_parsing", f"{value!r} is not an integer") from None
            if not as_float.is_integer():
                raise _fail("int_parsing", f"{value!r} is not an integer") from None
            number = int(as_float)
        if not low <= number <= high:
            raise _fail("int_range", f"{number} is outside [{low}, {high}]")
        return number

    return convert


def _floating(single: bool) -> Callable[[Any], float]:
    def convert(value: Any) -> float:
        if isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                raise _fail("float_parsing", "NaN and infinities must be quoted")
            if single and not -FLOAT_MAX <= value <= FLOAT_MAX:
                raise _fail("float_range", f"{value} is too large for a 32-bit float")
        if value == "nan" or isinstance(value, list | dict) or value is None:
            raise _fail("float_parsing", f"{value!r} is not a number")
        try:
            return float(value)
        except (ValueError, TypeError):
            raise _fail("float_parsing", f"{value!r} is not a number") from None

    return convert


_BASE64 = re.compile(r"[A-Za-z0-9+/\-_=]*")


def _bytes(value: Any) -> bytes:
    if not isinstance(value, str):
        raise _fail("bytes_type", "bytes must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)  # the usual, canonical form
    except binascii.Error:
        pass
    if not _BASE64.fullmatch(value):
        raise _fail("bytes_base64", "invalid base64: characters outside its alphabets")
    # URL-safe alphabet and missing padding, as protobuf's parser reads them.
    try:
        return base64.urlsafe_b64decode(value + "=" * (4 - len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise _fail("bytes_base64", f"invalid base64: {exc}") from None


def _enum_number(enum: EnumDescriptor) -> Callable[[Any], Any]:
    names = {v.number: v.name for v in enum.values}

    def convert(value: Any) -> Any:
        # A known name was taken by the literal branch; protobuf then tries int(value).
        if isinstance(value, list | dict) or value is None:
            raise _fail("enum", f"{value!r} is not a {enum.name}")
        try:
            number = int(value)
        except (ValueError, TypeError, OverflowError):
            raise _fail("enum", f"{value!r} is not a {enum.name}") from None
        if number not in names and (enum.is_closed or not -(2**31) <= number < 2**31):
            raise _fail("enum", f"{number} is not a {enum.name}")
        return names.get(number, number)

    return convert


def _map_key(field: FieldDescriptor) -> cs.CoreSchema:
    if field.type == F.TYPE_STRING:
        return cs.str_schema()
    if field.type == F.TYPE_BOOL:
        return cs.no_info_plain_validator_function(_bool_key)
    low, high = _INT_RANGES[field.type]
    return cs.no_info_plain_validator_function(_integer(low, high))


def _bool_key(value: Any) -> bool:
    if value in ("true", "false"):
        return bool(value == "true")
    raise _fail("bool_parsing", f"map key {value!r} is not true or false")


# Well-known types ----------------------------------------------------------------------

# The form protobuf (and ChirpStack) writes; fromisoformat then reads it in C, fraction
# digits beyond the sixth aside, which are kept apart as nanoseconds.
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.(\d{1,9}))?(?:Z|[+-]\d\d:\d\d)")
_EPOCH = Instant(1970, 1, 1, tzinfo=UTC)
_LAST = Instant(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
_FIRST = Instant(1, 1, 1, tzinfo=UTC)


def _instant(seconds: int, nanos: int) -> Instant:
    result = _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
    result._nanos = nanos
    return result


def _timestamp(value: Any) -> Instant:
    if not isinstance(value, str):
        raise _fail("timestamp_type", "a timestamp must be an RFC 3339 string")
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        return _timestamp_like_protobuf(value)
    try:
        result = Instant.fromisoformat(value)
        if not value.endswith(("Z", "+00:00")) and not _FIRST <= result <= _LAST:
            raise ValueError("out of range")
    except (ValueError, OverflowError):
        # An impossible date (2026-02-30), an offset of 24 h or more, or out of range:
        # protobuf's own parser decides.
        return _timestamp_like_protobuf(value)
    fraction = match.group(1)
    result._nanos = int(fraction.ljust(9, "0")) if fraction else 0
    return result


def _timestamp_like_protobuf(value: str) -> Instant:
    """Any other spelling protobuf's own parser takes (single-digit fields, ...)."""
    message = timestamp_pb2.Timestamp()
    try:
        message.FromJsonString(value)
        return _instant(message.seconds, message.nanos)
    except (ValueError, TypeError, OverflowError):
        raise _fail("timestamp_parsing", f"{value!r} is not an RFC 3339 timestamp") from None


_DURATION = re.compile(r"(-?)(\d{1,12})(?:\.(\d{1,9}))?s")
_DURATION_MAX_SECONDS = 315_576_000_000


def _duration(value: Any) -> Span:
    if not isinstance(value, str):
        raise _fail("duration_type", "a duration must be a string such as \"1.5s\"")
    match = _DURATION.fullmatch(value)
    if match is None:
        message = duration_pb2.Duration()
        try:
            message.FromJsonString(value)
        except (ValueError, TypeError, OverflowError):
            raise _fail("duration_parsing", f"{value!r} is not a duration") from None
        seconds, nanos = message.seconds, message.nanos
    else:
        sign, whole, fraction = match.groups()
        seconds, nanos = int(whole), int(fraction.ljust(9, "0")) if fraction else 0
        if sign:
            seconds, nanos = -seconds, -nanos
        if abs(seconds) > _DURATION_MAX_SECONDS:
            raise _fail("duration_range", f"{value!r} is out of range")
    total = seconds * 1_000_000_000 + nanos
    micros = abs(total) // 1000
    span = Span(microseconds=-micros if total < 0 else micros)
    span._nanos = total
    return span


# Schemas -------------------------------------------------------------------------------


def _scalar(field: FieldDescriptor) -> cs.CoreSchema:
    t = field.type
    if t in _INT_RANGES:
        low, high = _INT_RANGES[t]
        return cs.union_schema(
            [cs.int_schema(strict=True, ge=low, le=high),
             cs.no_info_plain_validator_function(_integer(low, high))],
            mode="left_to_right", custom_error_type="protobuf_integer",
            custom_error_message=f"an integer in [{low}, {high}] is required",
        )
    if t in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        single = t == F.TYPE_FLOAT
        bound = FLOAT_MAX if single else None
        return cs.union_schema(
            [cs.float_schema(strict=True, allow_inf_nan=False, ge=-bound if bound else None,
                             le=bound),
             cs.no_info_plain_validator_function(_floating(single))],
            mode="left_to_right", custom_error_type="protobuf_number",
            custom_error_message="a number is required",
        )
    if t == F.TYPE_BOOL:
        return cs.bool_schema(strict=True)
    if t == F.TYPE_STRING:
        # Unpaired surrogates, which protobuf refuses, are refused by the JSON parser.
        return cs.str_schema(strict=True)
    if t == F.TYPE_BYTES:
        return cs.no_info_plain_validator_function(_bytes)
    if t == F.TYPE_ENUM:
        enum = field.enum_type
        assert enum is not None  # set on every enum field
        return cs.union_schema(
            [cs.literal_schema([v.name for v in enum.values]),
             cs.no_info_plain_validator_function(_enum_number(enum))],
            mode="left_to_right", custom_error_type="protobuf_enum",
            custom_error_message=f"not a {enum.name} name or number",
        )
    raise TypeError(f"unsupported protobuf type {t} for {field.full_name}")


def _value(field: FieldDescriptor, building: set[str]) -> cs.CoreSchema:
    if field.type == F.TYPE_MESSAGE:
        assert field.message_type is not None  # set on every message field
        return _message(field.message_type, building)
    return _scalar(field)


def _message(descriptor: Descriptor, building: set[str]) -> cs.CoreSchema:
    name = descriptor.full_name
    if name == "google.protobuf.Timestamp":
        return cs.no_info_plain_validator_function(_timestamp)
    if name == "google.protobuf.Duration":
        return cs.no_info_plain_validator_function(_duration)
    if name == "google.protobuf.Struct":
        return cs.dict_schema(cs.str_schema(), cs.any_schema(), strict=True)
    if name == "google.protobuf.ListValue":
        return cs.list_schema(cs.any_schema(), strict=True)
    if name == "google.protobuf.Value":
        return cs.any_schema()
    if name.startswith("google.protobuf."):
        raise TypeError(f"unsupported well-known type {name}")
    if name in building:
        return cs.any_schema()  # recursive messages (none in the integration API)
    building = building | {name}
    fields: dict[str, cs.TypedDictField] = {}
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_field, value_field = field.message_type.fields
            schema: cs.CoreSchema = cs.dict_schema(
                _map_key(key_field), _value(value_field, building), strict=True)
        else:
            schema = _value(field, building)
            if field.is_repeated:
                schema = cs.list_schema(schema, strict=True)
        alias: list[list[str | int]] | None = (
            [[field.json_name], [field.name]] if field.name != field.json_name else None)
        fields[field.json_name] = cs.typed_dict_field(
            cs.nullable_schema(schema), required=False, validation_alias=alias)
    typed = cs.typed_dict_schema(fields, extra_behavior="ignore", total=False)
    groups = [tuple(f.json_name for f in oneof.fields) for oneof in descriptor.oneofs]
    if groups:
        return cs.no_info_after_validator_function(_one_of(groups), typed)
    return typed


def _one_of(groups: list[tuple[str, ...]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def check(value: dict[str, Any]) -> dict[str, Any]:
        for group in groups:
            if sum(1 for name in group if value.get(name) is not None) > 1:
                raise _fail("oneof", f"at most one of {', '.join(group)} may be set")
        return value

    return check


def validator_for(descriptor: Descriptor) -> SchemaValidator:
    """A compiled validator of one message's JSON form; `.validate_json(bytes)` returns a
    dict keyed by JSON names, or raises pydantic_core.ValidationError."""
    return SchemaValidator(_message(descriptor, set()))


def to_proto_json(value: Any) -> Any:
    """Undo the validator's conversions (bytes, Instant, Span) for protobuf's JSON parser."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Instant | Span):
        return value.proto_json()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: to_proto_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_proto_json(v) for v in value]
    return value

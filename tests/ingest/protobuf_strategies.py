"""Hypothesis strategies derived from protobuf descriptors, and the comparison of a
validated document with the message protobuf parsed.

Everything is read from `DESCRIPTOR.fields`, recursively (types, labels, oneofs, maps,
enums, well-known types), so a field added by a future chirpstack-api is generated and
checked without touching these tests.

- `messages(descriptor)`: messages built by protobuf itself, every field set (at its
  default or not), each oneof branch, repeated fields empty or long, 64-bit extremes,
  NaN and infinities, Timestamps with nanoseconds, Durations of both signs, Structs with
  nested lists and nulls.
- `as_json(message, original_names)`: the proto3 JSON ChirpStack writes (every scalar
  written, 64-bit integers as strings, bytes in base64, timestamps with `+00:00`).
- `respelled(document)`: the same values spelled otherwise, as protobuf's parser accepts
  them (integers as strings, enums by number, unpadded or URL-safe base64, other offsets).
- `with_unknown_fields(document)`: fields no chirpstack-api defines, at any level.
- `mutated(document)`: one value made invalid (wrong type, unknown enum name, bad base64,
  out-of-range integer, bad timestamp or duration).
- `same_values(validated, message)`: the validator's dict against protobuf's message.
"""

from __future__ import annotations

import base64
import calendar
import math
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from google.protobuf import json_format, message_factory, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

F = FieldDescriptor
INT_RANGES = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1), F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: (-(2**31), 2**31 - 1), F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_FIXED32: (0, 2**32 - 1), F.TYPE_INT64: (-(2**63), 2**63 - 1),
    F.TYPE_SINT64: (-(2**63), 2**63 - 1), F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1), F.TYPE_FIXED64: (0, 2**64 - 1),
}
FLOAT32_MAX = float.fromhex("0x1.fffffep+127")
TIMESTAMP_SECONDS = (-62135596800, 253402300799)
YEAR_1000 = -30610224000
DURATION_SECONDS = 315576000000
WKT = "google.protobuf."


def is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


# Building messages -------------------------------------------------------------------------

def _integers(field: FieldDescriptor) -> st.SearchStrategy[int]:
    low, high = INT_RANGES[field.type]
    return st.one_of(st.sampled_from([low, high, 0, 1, low + 1, high - 1]),
                     st.integers(low, high))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=12,
)


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    t = field.type
    if t in INT_RANGES:
        return _integers(field)
    if t == F.TYPE_FLOAT:
        # protobuf's Python parser refuses the largest 32-bit float as its own serialiser
        # writes it (3.4028235e+38 is above the bound it checks): a quirk not worth
        # copying, and a value no ChirpStack field holds.
        return st.floats(width=32).filter(lambda x: abs(x) != FLOAT32_MAX)
    if t == F.TYPE_DOUBLE:
        return st.floats()
    if t == F.TYPE_BOOL:
        return st.booleans()
    if t == F.TYPE_STRING:
        return st.text(max_size=24)
    if t == F.TYPE_BYTES:
        return st.binary(max_size=40)
    if t == F.TYPE_ENUM:
        known = st.sampled_from([v.number for v in field.enum_type.values])
        if field.enum_type.is_closed:
            return known
        # Open (proto3) enums hold numbers unknown to the schema too; rarely.
        return st.one_of(known, known, known, st.integers(-(2**31), 2**31 - 1))
    raise TypeError(f"no strategy for {field.full_name}")


def _wkt(descriptor: Descriptor) -> st.SearchStrategy[Message]:
    cls = message_factory.GetMessageClass(descriptor)
    name = descriptor.full_name
    if name == WKT + "Timestamp":
        # From year 1000: protobuf's Python serialiser writes earlier years without their
        # leading zeros ("764-08-08T...") and its parser then refuses them.
        return st.builds(lambda s, n: cls(seconds=s, nanos=n),
                         st.integers(YEAR_1000, TIMESTAMP_SECONDS[1]),
                         st.one_of(st.just(0), st.integers(0, 999).map(lambda x: x * 1_000_000),
                                   st.integers(0, 999_999).map(lambda x: x * 1000),
                                   st.integers(0, 999_999_999)))

    if name == WKT + "Duration":
        def duration(seconds: int, nanos: int, negative: bool) -> Message:
            sign = -1 if negative else 1
            return cls(seconds=sign * seconds, nanos=sign * nanos)

        return st.one_of(
            st.sampled_from([cls(seconds=1), cls(nanos=1000), cls(seconds=-3, nanos=-500000000),
                             cls(seconds=DURATION_SECONDS), cls(seconds=-DURATION_SECONDS)]),
            st.builds(duration, st.integers(0, DURATION_SECONDS), st.integers(0, 999_999_999),
                      st.booleans()),
        )

    def from_json(value: Any) -> Message:
        return json_format.ParseDict(value, cls())

    if name == WKT + "Struct":
        return st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=5).map(from_json)
    if name == WKT + "ListValue":
        return st.lists(JSON_VALUES, max_size=5).map(from_json)
    if name == WKT + "Value":
        return JSON_VALUES.map(from_json)
    raise TypeError(f"no strategy for {name}")


def _single(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == F.TYPE_MESSAGE:
        return messages(field.message_type, depth + 1)
    return _scalar(field)


def _repeated(element: st.SearchStrategy[Any], depth: int) -> st.SearchStrategy[list[Any]]:
    short = st.one_of(st.just([]), st.lists(element, min_size=1, max_size=3))
    if depth > 1:  # long lists of long lists cost much and prove nothing more
        return short
    return st.one_of(short, st.lists(element, min_size=12, max_size=16))


@st.composite
def _message(draw: st.DrawFn, descriptor: Descriptor, depth: int) -> Message:
    message = message_factory.GetMessageClass(descriptor)()
    chosen = {oneof.name: draw(st.sampled_from([*oneof.fields, None]))
              for oneof in descriptor.oneofs}
    for field in descriptor.fields:
        oneof = field.containing_oneof
        if oneof is not None and chosen[oneof.name] is not field:
            continue
        if is_map(field):
            key_field, value_field = field.message_type.fields
            if depth > 4:
                continue
            entries = draw(st.dictionaries(_scalar(key_field), _single(value_field, depth),
                                           max_size=4))
            target = getattr(message, field.name)
            for key, value in entries.items():
                if value_field.type == F.TYPE_MESSAGE:
                    target[key].CopyFrom(value)
                else:
                    target[key] = value
        elif field.is_repeated:
            if depth > 4:
                continue
            values = draw(_repeated(_single(field, depth), depth))
            target = getattr(message, field.name)
            if field.type == F.TYPE_MESSAGE:
                for value in values:
                    target.add().CopyFrom(value)
            else:
                target.extend(values)
        elif field.type == F.TYPE_MESSAGE:
            # A nested message is absent now and then, as ChirpStack leaves them out.
            if depth > 4 or (oneof is None and not draw(st.integers(0, 4))):
                continue
            getattr(message, field.name).CopyFrom(draw(_single(field, depth)))
        else:
            setattr(message, field.name, draw(_scalar(field)))
    return message


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    if descriptor.full_name.startswith(WKT):
        return _wkt(descriptor)
    return _message(descriptor, depth)


# Writing them as ChirpStack does -----------------------------------------------------------

def _walk(document: Any, descriptor: Descriptor,
          visit: Callable[[dict[str, Any], str, FieldDescriptor], None],
          original_names: bool = False) -> None:
    """Call visit(parent, key, field) for every known field of every message in document."""
    if not isinstance(document, dict) or descriptor.full_name.startswith(WKT):
        return
    for field in descriptor.fields:
        key = field.name if original_names else field.json_name
        if key not in document:
            continue
        visit(document, key, field)
        value = document.get(key)
        if field.type != F.TYPE_MESSAGE or value is None:
            continue
        if is_map(field):
            value_type = field.message_type.fields_by_name["value"].message_type
            if value_type is not None and isinstance(value, dict):
                for item in value.values():
                    _walk(item, value_type, visit, original_names)
        elif field.is_repeated and isinstance(value, list):
            for item in value:
                _walk(item, field.message_type, visit, original_names)
        else:
            _walk(value, field.message_type, visit, original_names)


def as_json(message: Message, original_names: bool = False) -> dict[str, Any]:
    """proto3 JSON as ChirpStack writes it: every scalar, enums by name, 64-bit integers as
    strings, bytes in standard base64, timestamps with a `+00:00` offset."""
    document = json_format.MessageToDict(message, always_print_fields_with_no_presence=True,
                                         preserving_proto_field_name=original_names)

    def offset(parent: dict[str, Any], key: str, field: FieldDescriptor) -> None:
        if field.message_type is not None and \
                field.message_type.full_name == WKT + "Timestamp":
            if field.is_repeated:
                parent[key] = [v.replace("Z", "+00:00") for v in parent[key]]
            elif isinstance(parent[key], str):
                parent[key] = parent[key].replace("Z", "+00:00")

    _walk(document, message.DESCRIPTOR, offset, original_names)
    return document


# Equivalent spellings, unknown fields, mutations -------------------------------------------

def _paths(document: Any, descriptor: Descriptor) -> list[tuple[dict[str, Any], str,
                                                                 FieldDescriptor]]:
    found: list[tuple[dict[str, Any], str, FieldDescriptor]] = []
    _walk(document, descriptor, lambda p, k, f: found.append((p, k, f)))
    return found


def _respell_scalar(draw: st.DrawFn, field: FieldDescriptor, value: Any) -> Any:
    t = field.type
    if t in INT_RANGES and isinstance(value, int | str):
        return draw(st.sampled_from([str(int(value)), float(int(value))
                                     if abs(int(value)) < 2**53 else str(int(value))]))
    if t == F.TYPE_ENUM and isinstance(value, str):
        return field.enum_type.values_by_name[value].number
    if t == F.TYPE_BYTES and isinstance(value, str):
        raw = base64.b64decode(value)
        return draw(st.sampled_from([base64.urlsafe_b64encode(raw).decode(),
                                     base64.b64encode(raw).decode().rstrip("=")]))
    if t in (F.TYPE_FLOAT, F.TYPE_DOUBLE) and isinstance(value, float) and \
            math.isfinite(value):
        return repr(value)
    if field.message_type is not None and isinstance(value, str) and \
            field.message_type.full_name == WKT + "Timestamp" and value.endswith("+00:00"):
        return value[:-6] + "Z"
    return value


@st.composite
def respelled(draw: st.DrawFn, document: dict[str, Any],
              descriptor: Descriptor) -> dict[str, Any]:
    """Some values of document spelled as protobuf's parser also accepts them."""
    for parent, key, field in _paths(document, descriptor):
        if field.type == F.TYPE_MESSAGE or not draw(st.booleans()):
            continue
        if field.is_repeated and isinstance(parent[key], list):
            parent[key] = [_respell_scalar(draw, field, v) for v in parent[key]]
        elif not field.is_repeated:
            parent[key] = _respell_scalar(draw, field, parent[key])
    for parent, key, field in _paths(document, descriptor):
        if field.message_type is not None and field.message_type.full_name == \
                WKT + "Timestamp" and isinstance(parent[key], str) and draw(st.booleans()):
            parent[key] = _shift_offset(parent[key])
    return document


def _shift_offset(value: str) -> str:
    """The same instant written at +02:00 (or as it was, near the ends of the range)."""
    message = json_format.ParseDict(value, timestamp_pb2.Timestamp())
    if not YEAR_1000 + 7200 <= message.seconds <= TIMESTAMP_SECONDS[1] - 7200:
        return value
    local = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=message.seconds + 7200)
    text = local.replace(tzinfo=timezone(timedelta(hours=2))).strftime("%Y-%m-%dT%H:%M:%S")
    if message.nanos:
        text += f".{message.nanos:09d}"
    return text + "+02:00"


@st.composite
def with_unknown_fields(draw: st.DrawFn, document: dict[str, Any],
                        descriptor: Descriptor) -> dict[str, Any]:
    """document with fields no version of the message defines, at some levels."""
    name = st.from_regex(r"zz[A-Za-z]{1,8}", fullmatch=True)
    document[draw(name)] = draw(JSON_VALUES)
    for parent, key, field in _paths(document, descriptor):
        value = parent[key]
        if field.type == F.TYPE_MESSAGE and not is_map(field) and isinstance(value, dict) \
                and not field.message_type.full_name.startswith(WKT) and draw(st.booleans()):
            value[draw(name)] = draw(JSON_VALUES)
    return document


def _invalid_values(field: FieldDescriptor) -> list[Any]:
    """Values protobuf's JSON parser refuses for one (non-repeated) value of field."""
    t = field.type
    if field.message_type is not None:
        name = field.message_type.full_name
        if name == WKT + "Timestamp":
            return ["yesterday", 1710408413, "2026-13-01T00:00:00Z", "2026-03-14T09:26:53z",
                    "2026-03-14T09:26:53.1234567891Z", "10000-01-01T00:00:00Z"]
        if name == WKT + "Duration":
            return ["1", "1m", 1.5, "1.5.5s", "315576000001s", True]
        if name == WKT + "Struct":
            return [[1, 2], 3, "text", True]
        if name == WKT + "ListValue":
            return [{"a": 1}, 3, "text"]
        if name == WKT + "Value":
            return []
        return [7, True, 1.5, [1]]
    if t in INT_RANGES:
        low, high = INT_RANGES[t]
        return ["ten", True, 1.5, [], {}, high + 1, low - 1, str(high + 1), "1 2", "0x10"]
    if t in (F.TYPE_FLOAT, F.TYPE_DOUBLE):
        bad = ["high", [], {}, "nan", "1,5"]
        return [*bad, 1e39] if t == F.TYPE_FLOAT else bad
    if t == F.TYPE_BOOL:
        return ["true", 1, 0, [], "yes"]
    if t == F.TYPE_STRING:
        return [1, True, [], {}]
    if t == F.TYPE_BYTES:
        return ["A", "AAAAA", 12, [], True]
    if t == F.TYPE_ENUM:
        names = [v.name for v in field.enum_type.values]
        return [f"NOT_{names[0]}", names[0].lower(), "1.5", [], {}]
    raise TypeError(f"no invalid values for {field.full_name}")


@st.composite
def mutated(draw: st.DrawFn, document: dict[str, Any],
            descriptor: Descriptor) -> tuple[Any, str]:
    """document with one value that protobuf refuses; and where (for failure reports)."""
    candidates = [p for p in _paths(document, descriptor)
                  if not (p[2].message_type is not None
                          and p[2].message_type.full_name == WKT + "Value")]
    if not candidates:  # an empty message: only the whole document can be wrong
        return draw(st.sampled_from([[1], 7, "text"])), "(the whole message)"
    parent, key, field = draw(st.sampled_from(candidates))
    if is_map(field):
        value_field = field.message_type.fields_by_name["value"]
        options: list[Any] = [[1], "map", {"k": None}]
        if value_field.type != F.TYPE_MESSAGE or not value_field.message_type.full_name \
                .startswith(WKT + "Value"):
            options += [{"k": v} for v in _invalid_values(value_field)[:2]]
        key_field = field.message_type.fields_by_name["key"]
        if key_field.type in INT_RANGES:
            options.append({"notanumber": draw(_single(value_field, 9)) if value_field.type
                            != F.TYPE_MESSAGE else {}})
    elif field.is_repeated:
        options = [{"a": 1}, "list", 3, [None]] + [[v] for v in _invalid_values(field)]
    else:
        options = _invalid_values(field)
    if not options:
        return document, "(nothing to mutate)"
    parent[key] = draw(st.sampled_from(options))
    return document, f"{key}={parent[key]!r}"


# Comparing -------------------------------------------------------------------------------

def float32(value: float) -> float:
    try:
        return struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)


def _same_float(ours: Any, theirs: float, single: bool) -> bool:
    ours = float(ours)
    if single:
        ours = float32(ours)
    return (math.isnan(ours) and math.isnan(theirs)) or ours == theirs


def _same_json(ours: Any, theirs: Any) -> bool:
    """Struct/Value contents: numbers are doubles in protobuf."""
    if isinstance(theirs, float) and not isinstance(ours, bool):
        return isinstance(ours, int | float) and float(ours) == theirs
    if isinstance(theirs, dict):
        return isinstance(ours, dict) and ours.keys() == theirs.keys() and all(
            _same_json(ours[k], theirs[k]) for k in theirs)
    if isinstance(theirs, list):
        return isinstance(ours, list) and len(ours) == len(theirs) and all(
            _same_json(a, b) for a, b in zip(ours, theirs, strict=True))
    return ours == theirs and type(ours) is type(theirs)


def _same_single(ours: Any, theirs: Any, field: FieldDescriptor, where: str) -> None:
    t = field.type
    if t == F.TYPE_MESSAGE:
        name = field.message_type.full_name
        if name == WKT + "Timestamp":
            seconds = calendar.timegm(ours.utctimetuple())
            assert (seconds, ours.nanosecond) == (theirs.seconds, theirs.nanos), where
        elif name == WKT + "Duration":
            assert ours.nanoseconds == theirs.seconds * 10**9 + theirs.nanos, where
        elif name in (WKT + "Struct", WKT + "ListValue", WKT + "Value"):
            assert _same_json(ours, json_format.MessageToDict(theirs)), where
        else:
            same_values(ours, theirs, where)
    elif t in (F.TYPE_FLOAT, F.TYPE_DOUBLE):
        assert _same_float(ours, theirs, t == F.TYPE_FLOAT), f"{where}: {ours} != {theirs}"
    elif t == F.TYPE_ENUM:
        number = field.enum_type.values_by_name[ours].number if isinstance(ours, str) else ours
        assert number == theirs, f"{where}: {ours} != {theirs}"
    else:
        assert ours == theirs and type(ours) is type(theirs), f"{where}: {ours!r} != {theirs!r}"


def same_values(ours: dict[str, Any], message: Message, where: str = "") -> None:
    """Assert that the validator's dict holds exactly what protobuf's message holds."""
    where = where or message.DESCRIPTOR.name
    for field in message.DESCRIPTOR.fields:
        here = f"{where}.{field.json_name}"
        value = ours.get(field.json_name)
        theirs = getattr(message, field.name)
        if is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            value = value or {}
            assert set(value) == set(theirs), here
            for key in theirs:
                _same_single(value[key], theirs[key], value_field, f"{here}[{key!r}]")
        elif field.is_repeated:
            value = value or []
            assert len(value) == len(theirs), here
            for i, (a, b) in enumerate(zip(value, theirs, strict=True)):
                _same_single(a, b, field, f"{here}[{i}]")
        elif field.type == F.TYPE_MESSAGE and field.message_type.full_name == WKT + "Value":
            # JSON null is a Value (null_value) in protobuf, None here.
            assert _same_json(value, json_format.MessageToDict(theirs)), here
        elif field.type == F.TYPE_MESSAGE:
            assert (value is not None) == message.HasField(field.name), here
            if value is not None:
                _same_single(value, theirs, field, here)
        elif value is None:
            assert not theirs, f"{here}: absent here, {theirs!r} in protobuf"
        else:
            _same_single(value, theirs, field, here)

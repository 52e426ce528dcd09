"""The fast validators (ingest.chirpstack_schema) read every integration message exactly as
protobuf's own JSON parser does, proven on messages generated from the descriptors.

For every message of `chirpstack_api.integration` (and, for the 64-bit integers and
integer-keyed maps the integration messages lack, two messages of the same package family
that have them), Hypothesis builds messages with protobuf itself and writes them as
ChirpStack does, with JSON names and with the original names, respelled in the other
forms protobuf accepts, and with fields no chirpstack-api defines. The validator must
accept each one and yield the values `json_format.Parse` yields. Mutated into invalid
documents, both must refuse them. Binary protobuf events must give the same event as
their JSON.

Examples per message and test: HV_PARITY_EXAMPLES (default 75, each read in four
spellings: 300 valid documents and 75 mutations per message; see tests/README.md).
"""

from __future__ import annotations

import copy
import json
import os
import time
import uuid

import pytest
from chirpstack_api import api, gw, integration
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from ingest.chirpstack import EVENT_MESSAGES, Envelope, parse
from ingest.chirpstack_schema import ValidationError, validator_for
from tests.ingest.protobuf_strategies import (
    as_json,
    messages,
    mutated,
    respelled,
    same_values,
    with_unknown_fields,
)

PARITY = settings(
    max_examples=int(os.environ.get("HV_PARITY_EXAMPLES", "75")),
    deadline=None,  # a shared, loaded machine: never time an example
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.large_base_example],
)
# Every message of the integration API, and two with the types it lacks today: int64
# (GlobalSearchRequest) and maps with integer keys (GatewayStats).
TOP: list[Descriptor] = [
    *integration.integration_pb2.DESCRIPTOR.message_types_by_name.values(),
    gw.GatewayStats.DESCRIPTOR, api.GlobalSearchRequest.DESCRIPTOR,
]


def _nested(descriptors: list[Descriptor]) -> list[Descriptor]:
    """Every message reached from these, recursively (maps and well-known types aside)."""
    found: dict[str, Descriptor] = {}
    todo = list(descriptors)
    while todo:
        descriptor = todo.pop()
        for field in descriptor.fields:
            sub = field.message_type
            if sub is None or sub.full_name.startswith("google.protobuf."):
                continue
            if sub.GetOptions().map_entry:
                sub = sub.fields_by_name["value"].message_type
                if sub is None or sub.full_name.startswith("google.protobuf."):
                    continue
            if sub.full_name not in found and sub not in descriptors:
                found[sub.full_name] = sub
                todo.append(sub)
    return [found[name] for name in sorted(found)]


# The nested messages of the integration API (the two extra messages are for their own
# field types: their nested messages are not integration messages).
NESTED = _nested(TOP[:-2])
MESSAGES = TOP + [d for d in NESTED if d not in TOP]
VALIDATORS = {d.full_name: validator_for(d) for d in MESSAGES}


def _protobuf(text: str, descriptor: Descriptor, ignore_unknown: bool = False) -> object:
    cls = message_factory.GetMessageClass(descriptor)
    return json_format.Parse(text, cls(), ignore_unknown_fields=ignore_unknown)


def _ids(descriptor: Descriptor) -> str:
    return descriptor.full_name


def test_every_event_type_and_nested_message_is_covered() -> None:
    names = {d.full_name for d in MESSAGES}
    assert {m.DESCRIPTOR.full_name for m in EVENT_MESSAGES.values()} <= names
    # The nested messages are reached through their parents; the walk must find them.
    assert {"gw.UplinkRxInfo", "gw.DownlinkTxInfo", "gw.Timing", "gw.Modulation",
            "common.Location", "integration.DeviceInfo", "gw.DelayTimingInfo"} <= {
                d.full_name for d in MESSAGES}


@pytest.mark.parametrize("descriptor", MESSAGES, ids=_ids)
@PARITY
@given(data=st.data())
def test_what_protobuf_writes_is_read_with_the_values_protobuf_reads(
        descriptor: Descriptor, data: st.DataObject) -> None:
    validator = VALIDATORS[descriptor.full_name]
    message = data.draw(messages(descriptor), label="message")
    for original_names in (False, True):
        document = as_json(message, original_names)
        text = json.dumps(document)
        same_values(validator.validate_json(text), _protobuf(text, descriptor))
    # The same values in the other spellings protobuf accepts.
    respelt = data.draw(respelled(as_json(message), descriptor), label="respelled")
    text = json.dumps(respelt)
    theirs = _protobuf(text, descriptor)
    # (Compared as JSON: NaNs of different bits are one NaN there.)
    assert json_format.MessageToDict(theirs) == json_format.MessageToDict(message), \
        "the respelling changed a value"
    same_values(validator.validate_json(text), theirs)
    # Fields of a newer ChirpStack: accepted, the known values unchanged.
    newer = data.draw(with_unknown_fields(as_json(message), descriptor), label="newer")
    text = json.dumps(newer)
    same_values(validator.validate_json(text), _protobuf(text, descriptor, ignore_unknown=True))


@pytest.mark.parametrize("descriptor", MESSAGES, ids=_ids)
@PARITY
@given(data=st.data())
def test_a_value_protobuf_refuses_is_refused(descriptor: Descriptor,
                                             data: st.DataObject) -> None:
    message = data.draw(messages(descriptor), label="message")
    document, where = data.draw(mutated(as_json(message), descriptor), label="mutation")
    note(f"mutated: {where}")
    text = json.dumps(document)
    with pytest.raises((json_format.ParseError, ValueError, TypeError)):
        _protobuf(text, descriptor)
    with pytest.raises(ValidationError):
        VALIDATORS[descriptor.full_name].validate_json(text)


@pytest.mark.parametrize("kind", sorted(EVENT_MESSAGES))
@PARITY
@given(data=st.data())
def test_a_binary_event_is_the_same_event_as_its_json(kind: str, data: st.DataObject) -> None:
    cls = EVENT_MESSAGES[kind]
    message = data.draw(messages(cls.DESCRIPTOR), label="message")
    # What parse() itself requires of any event: a device, a time, an uplink's id.
    message.device_info.dev_eui = "0101010101010101"
    if not message.HasField("time"):
        message.time.GetCurrentTime()
    if "deduplication_id" in cls.DESCRIPTOR.fields_by_name:
        message.deduplication_id = str(uuid.uuid4())
    if kind == "up":
        message.f_port %= 256
    topic = f"application/{uuid.uuid4()}/device/0101010101010101/event/{kind}"
    binary = message.SerializeToString()
    as_text = json.dumps(as_json(message)).encode()
    for payload, encoding in ((binary, "protobuf"), (binary, "auto"), (as_text, "auto"),
                              (as_text, "json")):
        event = parse(Envelope.from_topic(topic, payload, time.time(), encoding), 1 << 20)
        same_values(event.body, message)
        stored = json.loads(event.json)
        assert stored == json.loads(json.dumps(copy.deepcopy(stored)))
        same_values(VALIDATORS[cls.DESCRIPTOR.full_name].validate_json(event.json), message)

"""Hand-picked cases of the compiled validators against protobuf's own JSON parser, on
ChirpStack's uplink (the generated cases are in test_chirpstack_parity.py)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from chirpstack_api import integration
from google.protobuf import json_format

from ingest.chirpstack_schema import ValidationError, validator_for

EXAMPLE = json.loads(
    (Path(__file__).resolve().parents[1] / "payloads" / "chirpstack" / "up.json").read_text()
)
VALIDATOR = validator_for(integration.UplinkEvent.DESCRIPTOR)

# One wrong value per kind of field, as a JSON path and the value put there.
MUTATIONS: list[tuple[str, Any]] = [
    ("fCnt", "ten"), ("fCnt", -1), ("fCnt", 2**32), ("fCnt", 1.5), ("fPort", True),
    ("dr", {}), ("adr", "yes"), ("adr", 1), ("confirmed", []), ("devAddr", 42),
    ("data", "not base64!"), ("data", 12), ("time", "yesterday"), ("time", 1710408413),
    ("deviceInfo.devEui", 101), ("deviceInfo.deviceClassEnabled", "CLASS_Z"),
    ("deviceInfo.tags", {"a": 1}), ("deviceInfo.tags", ["a"]), ("object", [1, 2]),
    ("rxInfo", {}), ("rxInfo.0.rssi", "-36 dBm"), ("rxInfo.0.snr", "high"),
    ("rxInfo.0.crcStatus", "CRC_MAYBE"),
    ("rxInfo.0.nsTime", "2026-13-45T00:00:00Z"), ("rxInfo.0.metadata", {"a": 1}),
    ("txInfo.frequency", "868.1 MHz"), ("txInfo.modulation.lora.spreadingFactor", "SF7"),
    ("txInfo.modulation.lora.codeRate", "4/5"), ("data", "A"), ("data", "AAAAA"),
    ("rxInfo.0.metadata", {"a": None}), ("rxInfo", [None]),
    ("txInfo.modulation.fsk", {"frequencyDeviation": 1}),
]


def mutated(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLE)
    *parents, last = path.split(".")
    node: Any = body
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return body


def protobuf_accepts(body: dict[str, Any]) -> bool:
    try:
        json_format.ParseDict(body, integration.UplinkEvent())
        return True
    except (json_format.ParseError, ValueError, TypeError):
        return False


def validator_accepts(body: dict[str, Any]) -> bool:
    try:
        VALIDATOR.validate_json(json.dumps(body))
        return True
    except ValidationError:
        return False


def cases() -> Iterator[Any]:
    for path, value in MUTATIONS:
        yield pytest.param(path, value, id=f"{path}={value!r}"[:60])


@pytest.mark.parametrize(("path", "value"), list(cases()))
def test_a_wrong_or_unknown_field_is_refused_like_protobuf_refuses_it(path: str,
                                                                      value: Any) -> None:
    body = mutated(path, value)
    assert not protobuf_accepts(body), "the mutation should be invalid for protobuf too"
    assert not validator_accepts(body)


def test_the_example_gives_the_same_values_as_the_protobuf_message() -> None:
    ours = VALIDATOR.validate_json(json.dumps(EXAMPLE))
    message = json_format.ParseDict(EXAMPLE, integration.UplinkEvent())
    assert ours["fCnt"] == message.f_cnt
    assert ours["data"] == message.data
    assert ours["rxInfo"][0]["context"] == message.rx_info[0].context
    assert ours["rxInfo"][0]["snr"] == pytest.approx(message.rx_info[0].snr)
    # The nanoseconds are kept, as protobuf keeps them.
    assert ours["time"].nanosecond == message.time.nanos == 412345678
    assert ours["time"] == message.time.ToDatetime(tzinfo=UTC)
    assert ours["txInfo"]["modulation"]["lora"]["codeRate"] == "CR_4_5"


def test_integers_may_be_decimal_strings_as_in_protobuf_json() -> None:
    body = mutated("rxInfo.0.rssi", "-36")
    assert protobuf_accepts(body)
    assert VALIDATOR.validate_json(json.dumps(body))["rxInfo"][0]["rssi"] == -36


def test_it_refuses_invalid_base64_that_protobuf_would_silently_drop() -> None:
    body = mutated("rxInfo.0.context", "%%%")
    assert protobuf_accepts(body)
    assert not validator_accepts(body)


@pytest.mark.parametrize("message", [integration.UplinkEvent, integration.StatusEvent,
                                     integration.JoinEvent, integration.AckEvent,
                                     integration.TxAckEvent, integration.LogEvent,
                                     integration.LocationEvent])
def test_every_event_written_by_protobuf_with_all_fields_is_accepted(message: Any) -> None:
    body = json_format.MessageToDict(message(), always_print_fields_with_no_presence=True)
    validated = validator_for(message.DESCRIPTOR).validate_json(json.dumps(body))
    assert set(validated) == set(body)

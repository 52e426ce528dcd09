"""Strict parsing of ChirpStack v4 events (real chirpstack_api messages)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ingest.chirpstack import Envelope, Rejected, parse
from ingest.outcomes import DeadReason

EXAMPLE = Path(__file__).resolve().parents[1] / "payloads" / "chirpstack" / "up.json"
TOPIC = "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/0101010101010101/event/up"


def envelope(body: object, topic: str = TOPIC, raw: bytes | None = None) -> Envelope:
    payload = raw if raw is not None else json.dumps(body).encode()
    return Envelope.from_topic(topic, payload, time.time())


def example() -> dict:
    return json.loads(EXAMPLE.read_text())


def rejected(env: Envelope, max_bytes: int = 65536) -> Rejected:
    with pytest.raises(Rejected) as info:
        parse(env, max_bytes)
    return info.value


def test_it_parses_an_uplink_as_chirpstack_publishes_it() -> None:
    event = parse(envelope(example()), 65536)
    assert event.kind == "up"
    assert event.dev_eui == "0101010101010101"
    assert str(event.deduplication_id) == "3ac7e3c4-4401-4b8d-9386-a5c902f9202d"
    assert event.field("fCnt") == 10
    assert event.field("data") == b"\x01\x75\x5c"
    assert event.time.isoformat() == "2026-03-14T09:26:53.412345+00:00"
    assert event.field("rxInfo")[0]["rssi"] == -36
    assert event.body["object"]["battery"] == 92.0
    # The same event as the real chirpstack_api message.
    message = event.message()
    assert (message.f_cnt, message.rx_info[0].rssi, message.data) == (10, -36, b"\x01\x75\x5c")


def test_it_rejects_malformed_json() -> None:
    assert rejected(envelope(None, raw=b'{"deduplicationId": ')).reason is DeadReason.MALFORMED_JSON
    assert rejected(envelope(None, raw=b"\xff\xfe\x00")).reason is DeadReason.MALFORMED_JSON
    assert rejected(envelope([1, 2])).reason is DeadReason.MALFORMED_JSON


def test_it_rejects_a_value_of_the_wrong_type() -> None:
    body = example()
    body["fCnt"] = "ten"
    error = rejected(envelope(body))
    assert error.reason is DeadReason.INVALID_EVENT
    assert "fCnt" in error.detail
    assert error.dev_eui == "0101010101010101"


def test_it_rejects_unknown_fields_instead_of_guessing() -> None:
    body = example()
    body["fcnt"] = 3
    assert rejected(envelope(body)).reason is DeadReason.INVALID_EVENT


def test_it_rejects_an_oversized_payload_before_parsing_it() -> None:
    body = example()
    body["data"] = "A" * 5000
    error = rejected(envelope(body), max_bytes=2048)
    assert error.reason is DeadReason.OVERSIZED


def test_it_rejects_a_payload_for_another_device_than_the_topic_names() -> None:
    body = example()
    body["deviceInfo"]["devEui"] = "0202020202020202"
    assert rejected(envelope(body)).reason is DeadReason.TOPIC_MISMATCH


def test_it_rejects_an_uplink_without_deduplication_id() -> None:
    body = example()
    body["deduplicationId"] = ""
    assert rejected(envelope(body)).reason is DeadReason.INVALID_EVENT


def test_it_rejects_unknown_event_types() -> None:
    topic = TOPIC.replace("/event/up", "/event/integration")
    assert rejected(envelope(example(), topic=topic)).reason is DeadReason.UNKNOWN_EVENT_TYPE


def test_it_parses_status_and_join_events() -> None:
    status = {
        "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
        "time": "2026-03-14T09:26:53.412+00:00",
        "deviceInfo": example()["deviceInfo"],
        "margin": 7,
        "externalPowerSource": False,
        "batteryLevelUnavailable": False,
        "batteryLevel": 85.5,
    }
    event = parse(envelope(status, topic=TOPIC.replace("/up", "/status")), 65536)
    assert (event.kind, event.field("batteryLevel"), event.field("margin")) == ("status", 85.5, 7)
    join = {
        "deduplicationId": "c9dbe358-2578-4fb7-b295-66b44edc45a6",
        "time": "2026-03-14T09:20:00+00:00",
        "deviceInfo": example()["deviceInfo"],
        "devAddr": "00189440",
        "regionConfigId": "eu868",
    }
    event = parse(envelope(join, topic=TOPIC.replace("/up", "/join")), 65536)
    assert event.kind == "join" and event.field("devAddr") == "00189440"

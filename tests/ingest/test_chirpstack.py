"""Strict parsing of ChirpStack v4 events (real chirpstack_api messages)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from chirpstack_api import integration
from google.protobuf import json_format

from ingest.chirpstack import PROTOBUF_KEY, Envelope, Rejected, parse
from ingest.outcomes import DeadReason

EXAMPLE = Path(__file__).resolve().parents[1] / "payloads" / "chirpstack" / "up.json"
TXACK = EXAMPLE.with_name("txack.json")
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


def test_it_accepts_fields_of_a_newer_chirpstack_and_keeps_them_in_the_stored_event() -> None:
    body = example()
    # Fields that do not exist in the pinned chirpstack-api, at two levels.
    body["futureField"] = {"nested": [1, None]}
    body["rxInfo"][0]["beamId"] = 3
    assert "future_field" not in integration.UplinkEvent.DESCRIPTOR.fields_by_name
    event = parse(envelope(body), 65536)
    assert event.field("fCnt") == 10 and "futureField" not in event.body
    stored = json.loads(event.json)
    assert stored["futureField"] == {"nested": [1, None]}
    assert stored["rxInfo"][0]["beamId"] == 3


def test_it_reads_the_original_field_names_and_stores_the_json_names() -> None:
    status = {
        "deduplication_id": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
        "time": "2026-03-14T09:26:53Z",
        "device_info": {**example()["deviceInfo"], "dev_eui": "0101010101010101",
                        "device_class_enabled": "CLASS_C"},
        "battery_level": 85.5,
        "external_power_source": True,
        "margin": 7,
        "newer_field": 1,
    }
    del status["device_info"]["devEui"], status["device_info"]["deviceClassEnabled"]
    event = parse(envelope(status, topic=TOPIC.replace("/up", "/status")), 65536)
    assert event.dev_eui == "0101010101010101"
    assert event.field("batteryLevel") == 85.5 and event.field("externalPowerSource") is True
    stored = json.loads(event.json)
    assert stored["batteryLevel"] == 85.5 and stored["deviceInfo"]["devEui"] == event.dev_eui
    assert stored["deviceInfo"]["deviceClassEnabled"] == "CLASS_C"
    assert stored["newer_field"] == 1  # unknown: kept as it came


def test_it_accepts_a_txack_exactly_as_chirpstack_writes_it() -> None:
    txack = json.loads(TXACK.read_text())
    event = parse(envelope(txack, topic=TOPIC.replace("/up", "/txack")), 65536)
    assert event.kind == "txack" and event.deduplication_id is None
    assert event.field("queueItemId") == txack["queueItemId"]
    timing = event.field("txInfo")["timing"]
    assert timing["delay"]["delay"].nanoseconds == 1_000_000_000
    assert event.message() == json_format.Parse(TXACK.read_text(), integration.TxAckEvent())


def test_it_reads_binary_protobuf_events_like_json_ones() -> None:
    as_json = parse(envelope(example()), 65536)
    binary = as_json.message().SerializeToString()
    for encoding in ("protobuf", "auto"):
        event = parse(Envelope.from_topic(TOPIC, binary, time.time(), encoding), 65536)
        assert event.message() == as_json.message()
        assert (event.dev_eui, event.deduplication_id) == (as_json.dev_eui,
                                                           as_json.deduplication_id)
        assert json.loads(event.json)["fCnt"] == 10
    garbage = Envelope.from_topic(TOPIC, b"\xff\xff\xff", time.time(), "protobuf")
    assert rejected(garbage).reason is DeadReason.MALFORMED_PROTOBUF
    # Decodable, but a time no JSON (nor protobuf's own JSON) can write: invalid.
    message = as_json.message()
    message.time.seconds = 2**40
    beyond = Envelope.from_topic(TOPIC, message.SerializeToString(), time.time(), "protobuf")
    error = rejected(beyond)
    assert error.reason is DeadReason.INVALID_EVENT and "UplinkEvent" in error.detail


def test_binary_events_with_unknown_fields_keep_the_original_message() -> None:
    binary = parse(envelope(example()), 65536).message().SerializeToString()
    # Field 99, varint 5: unknown to the pinned chirpstack-api.
    newer = binary + bytes([99 << 3 & 0x7F | 0x80, 99 >> 4, 5])
    event = parse(Envelope.from_topic(TOPIC, newer, time.time(), "protobuf"), 65536)
    assert event.field("fCnt") == 10
    assert base64.b64decode(json.loads(event.json)[PROTOBUF_KEY]) == newer


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


def test_the_http_content_type_names_the_encoding_and_the_setting_decides_otherwise() -> None:
    from ingest.receive_http import encoding_of

    assert encoding_of("application/json", "protobuf") == "json"
    assert encoding_of("application/json; charset=utf-8", "protobuf") == "json"
    assert encoding_of("application/octet-stream", "json") == "protobuf"
    assert encoding_of("Application/X-Protobuf", "json") == "protobuf"
    assert encoding_of("", "auto") == "auto"
    assert encoding_of("text/plain", "json") == "json"

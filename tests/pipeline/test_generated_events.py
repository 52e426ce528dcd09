"""A stream of generated, valid ChirpStack events of every type, through MQTT (JSON and
binary protobuf) and the HTTP integration (both Content-Types), into the real receivers,
Celery workers and TimescaleDB: not one becomes a dead letter.

The events are built by protobuf from the descriptors (tests/ingest/protobuf_strategies),
with every field set, extremes included; only what the platform itself requires of an
event is fixed: a registered device, a current time, a UUID deduplicationId.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from google.protobuf import json_format
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from ingest.batcher import Batcher
from ingest.chirpstack import EVENT_MESSAGES
from ingest.receive import celery_sender
from ingest.receive_http import make_app
from tests.conftest import Worker, wait_for
from tests.ingest.protobuf_strategies import as_json, messages
from tests.pipeline.helpers import publish

pytestmark = [pytest.mark.services, pytest.mark.slow]
PER_KIND_AND_WAY = 1
EXAMPLES = 3  # the first is Hypothesis's simplest (every field at its default)
_COUNTERS = itertools.count(int(time.time()) % 1_000_000 * 1000)
TOKEN = "generated-events-token"  # the HTTP integration refuses events without one
WAYS = ("mqtt-json", "mqtt-protobuf", "http-json", "http-protobuf")


@pytest.fixture
def http_url(platform_db: Any) -> Iterator[str]:
    batcher = Batcher(celery_sender(platform_db), platform_db.batch_size,
                      platform_db.batch_max_wait).start()
    settings = platform_db.model_copy(update={"http_integration_token": SecretStr(TOKEN)})
    server = uvicorn.Server(uvicorn.Config(make_app(settings, batcher), host="127.0.0.1",
                                           port=platform_db.http_port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=10, what="the HTTP receiver")
    yield f"http://127.0.0.1:{platform_db.http_port}/chirpstack"
    server.should_exit = True
    thread.join(10)
    batcher.stop()


def _event(data: st.DataObject, kind: str, dev_eui: str, max_bytes: int) -> Any:
    """A generated event of this kind for this device, as protobuf holds it."""
    cls = EVENT_MESSAGES[kind]
    message = data.draw(messages(cls.DESCRIPTOR), label=kind)
    # PostgreSQL text cannot hold NUL characters (protobuf strings can): drop them.
    text = json.dumps(as_json(message)).replace("\\u0000", "")
    message = json_format.Parse(text, cls())
    message.device_info.dev_eui = dev_eui
    message.time.GetCurrentTime()
    if "deduplication_id" in cls.DESCRIPTOR.fields_by_name:
        message.deduplication_id = str(uuid.uuid4())
    if kind == "up":
        message.f_port %= 256
        # A frame repeated with the same counter and bytes is rightly a duplicate (replay
        # guard); give each its own counter so that every one must be stored.
        message.f_cnt = next(_COUNTERS)
        while len(message.SerializeToString()) * 3 > max_bytes and message.rx_info:
            message.rx_info.pop()
    return message


def _outcomes(admin: psycopg.Connection) -> dict[tuple[str, str], int]:
    rows = admin.execute("SELECT event_type, outcome, sum(events)::int FROM hv.ingest_outcomes"
                         " GROUP BY event_type, outcome").fetchall()
    return {(kind, outcome): n for kind, outcome, n in rows}


@settings(max_examples=EXAMPLES, phases=[Phase.generate], database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_generated_events_of_every_type_and_encoding_never_become_dead_letters(
    data: st.DataObject, platform_db: Any, admin: psycopg.Connection, worker: Worker,
    receiver: Any, http_url: str, simulator: Any,
) -> None:
    before = _outcomes(admin)
    started = admin.execute("SELECT now()").fetchone()[0]
    devices = list(simulator.devices)
    mqtt_items: list[tuple[str, bytes]] = []
    http_items: list[tuple[str, bytes, str]] = []
    n = 0
    for kind in sorted(EVENT_MESSAGES):
        for way in WAYS:
            for _ in range(PER_KIND_AND_WAY):
                device = devices[n % len(devices)]
                n += 1
                message = _event(data, kind, device.dev_eui, platform_db.max_payload_bytes)
                if way.endswith("json"):
                    payload = json.dumps(as_json(message)).encode()
                else:
                    payload = message.SerializeToString()
                assert len(payload) <= platform_db.max_payload_bytes
                topic = f"application/{uuid.uuid4()}/device/{device.dev_eui}/event/{kind}"
                if way.startswith("mqtt"):
                    mqtt_items.append((topic, payload))
                else:
                    content_type = ("application/json" if way.endswith("json")
                                    else "application/octet-stream")
                    http_items.append((kind, payload, content_type))
    publish(platform_db, mqtt_items)
    with httpx.Client(timeout=30) as client:
        for kind, payload, content_type in http_items:
            response = client.post(http_url, params={"event": kind}, content=payload,
                                   headers={"Content-Type": content_type,
                                            "Authorization": f"Bearer {TOKEN}"})
            assert response.status_code == 200, response.text
    total = len(mqtt_items) + len(http_items)

    def counted() -> int:
        after = _outcomes(admin)
        return sum(after.values()) - sum(before.values())

    wait_for(lambda: counted() >= total, timeout=180, what=f"{total} events counted")
    letters = admin.execute(
        "SELECT event_type, reason, detail FROM hv.dead_letters WHERE recorded_at >= %s",
        (started,)).fetchall()
    assert letters == []
    after = _outcomes(admin)
    new = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    # Every event stored (a codec may fail on generated bytes: the uplink is still kept).
    assert {outcome for _, outcome in new} <= {"stored", "decode_failed"}, new
    assert sum(new.values()) == total, new
    assert {kind for kind, _ in new} == set(EVENT_MESSAGES), new

"""ChirpStack's HTTP integration: POST ?event=up feeds the same batches as MQTT."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from pydantic import SecretStr

from ingest.batcher import Batcher
from ingest.receive import celery_sender
from ingest.receive_http import make_app
from tests.conftest import Worker, wait_for
from tests.pipeline.helpers import stored_count

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture
def http_url(platform_db: Any) -> Iterator[str]:
    settings = platform_db.model_copy(update={"http_integration_token": SecretStr("s3cret-token")})
    batcher = Batcher(celery_sender(settings), settings.batch_size, settings.batch_max_wait).start()
    server = uvicorn.Server(uvicorn.Config(make_app(settings, batcher), host="127.0.0.1",
                                           port=settings.http_port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=10, what="the HTTP receiver")
    yield f"http://127.0.0.1:{settings.http_port}/chirpstack"
    server.should_exit = True
    thread.join(10)
    batcher.stop()


def test_uplinks_posted_by_chirpstack_are_stored(
    http_url: str, worker: Worker, simulator: Any, admin: psycopg.Connection
) -> None:
    items = [simulator.uplink(d) for d in simulator.devices]
    headers = {"Authorization": "Bearer s3cret-token", "Content-Type": "application/json"}
    started = time.monotonic()
    with httpx.Client(timeout=10) as client:
        for _, payload in items:
            response = client.post(http_url, params={"event": "up"}, content=payload,
                                   headers=headers)
            assert response.status_code == 200, response.text
    assert time.monotonic() - started < 30
    ids = [json.loads(p)["deduplicationId"] for _, p in items]
    wait_for(lambda: stored_count(admin, ids) == len(ids), what="posted uplinks stored")


def test_it_refuses_a_missing_token_and_an_unknown_event_type(http_url: str,
                                                              simulator: Any) -> None:
    _, payload = simulator.uplink(simulator.devices[0])
    with httpx.Client(timeout=10) as client:
        assert client.post(http_url, params={"event": "up"}, content=payload).status_code == 401
        wrong = client.post(http_url, params={"event": "bogus"}, content=payload,
                            headers={"Authorization": "Bearer s3cret-token"})
        assert wrong.status_code == 400
        missing = client.post(http_url, content=payload,
                              headers={"Authorization": "Bearer s3cret-token"})
        assert missing.status_code == 422

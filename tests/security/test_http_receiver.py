"""Findings 3 and 10: the HTTP integration needs its token, and a body over the limit is
refused before it is read whole."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from hypervision.settings import Settings, get_settings
from ingest.batcher import Batcher
from ingest.receive_http import HARD_LIMIT, make_app
from tests.conftest import PORT_BASE, wait_for

PORT = PORT_BASE + 191
TOKEN = "integration-token-for-tests"


@pytest.fixture
def receiver() -> Iterator[list[list[object]]]:
    """The HTTP receiver on a test port; yields the batches it would queue."""
    sent: list[list[object]] = []
    settings = get_settings().model_copy(update={"http_integration_token": SecretStr(TOKEN)})
    batcher = Batcher(lambda batch: sent.append(list(batch)), 10, 0.05).start()
    server = uvicorn.Server(uvicorn.Config(make_app(settings, batcher), host="127.0.0.1",
                                           port=PORT, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=20, what="the HTTP receiver")
    yield sent
    server.should_exit = True
    thread.join(10)
    batcher.stop()


def test_the_http_integration_cannot_run_without_a_token() -> None:
    settings: Settings = get_settings().model_copy(update={"http_integration_token": None})
    batcher = Batcher(lambda batch: None, 10, 0.05)
    with pytest.raises(ValueError, match="HV_HTTP_INTEGRATION_TOKEN"):
        make_app(settings, batcher)


def test_a_request_without_the_token_is_refused(receiver: list[list[object]]) -> None:
    url = f"http://127.0.0.1:{PORT}/chirpstack"
    assert httpx.post(url, params={"event": "up"}, content=b"{}").status_code == 401
    wrong = httpx.post(url, params={"event": "up"}, content=b"{}",
                       headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = httpx.post(url, params={"event": "up"}, content=b"{}",
                       headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200


def _raw(head: bytes, body_parts: list[bytes]) -> tuple[bytes, int]:
    """Send a request by hand; stop sending as soon as the server has answered. Returns
    the status line and how many body parts were sent before the answer came."""
    sent = 0
    with socket.create_connection(("127.0.0.1", PORT), timeout=20) as s:
        s.sendall(head)
        s.setblocking(False)
        answer = b""
        for part in body_parts:
            with contextlib.suppress(BlockingIOError):
                answer += s.recv(4096)
            if answer:
                break
            try:
                s.setblocking(True)
                s.sendall(part)
                sent += 1
                s.setblocking(False)
            except (BrokenPipeError, ConnectionResetError):
                break
        s.setblocking(True)
        s.settimeout(20)
        while b"\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer.split(b"\r\n", 1)[0], sent


def test_a_declared_length_over_the_limit_is_refused_before_any_body(
    receiver: list[list[object]],
) -> None:
    head = (b"POST /chirpstack?event=up HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
            b"Content-Length: " + str(50 * HARD_LIMIT).encode() + b"\r\n\r\n")
    # No body at all is sent: the answer must come from the headers alone.
    status, _ = _raw(head, [])
    assert b" 413 " in status


def test_a_chunked_body_over_the_limit_is_refused_without_reading_it_all(
    receiver: list[list[object]],
) -> None:
    head = (b"POST /chirpstack?event=up HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    block = 64 * 1024
    chunk = f"{block:x}\r\n".encode() + b"x" * block + b"\r\n"
    parts = [chunk] * (50 * HARD_LIMIT // block)
    status, sent = _raw(head, parts)
    assert b" 413 " in status
    # Fifty times the limit was on offer; the server answered long before the end.
    assert sent < len(parts) // 2, sent
    assert receiver == []

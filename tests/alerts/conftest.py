"""Fixtures of the alert tests: the test member of tests/analytics, a local SMTP sink
(aiosmtpd) and a local webhook receiver, both on loopback, and settings pointing the
notifications at them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr

from hypervision.settings import Settings
from tests.analytics.conftest import asettings, member_db
from tests.conftest import PORT_BASE

__all__ = ["asettings", "member_db"]
SIGNING_KEY = "k" * 32


class SmtpSink:
    """Keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp_sink() -> Iterator[tuple[SmtpSink, int]]:
    sink = SmtpSink()
    port = PORT_BASE + 25
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@dataclass
class Receiver:
    """A webhook endpoint: answers `fail_first` statuses first on /hook, then 200; 404 on
    /gone. Keeps every request (path, headers, body)."""

    port: int = 0
    fail_first: list[int] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def bodies(self, path: str = "/hook") -> list[dict[str, Any]]:
        return [json.loads(b) for p, _, b in self.requests if p == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append((self.path, dict(self.headers), body))
            if self.path == "/gone":
                status = 404
            elif state.fail_first:
                status = state.fail_first.pop(0)
            else:
                status = 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def nsettings(asettings: Settings, smtp_sink: tuple[SmtpSink, int]) -> Settings:
    """Notifications to the local sink and receiver; retries due at once."""
    return asettings.model_copy(update={
        "smtp_host": "127.0.0.1", "smtp_port": smtp_sink[1], "smtp_from": "alertes@hv.test",
        "notify_backoff": 0.0, "notify_timeout": 5.0, "notify_max_attempts": 3,
        "webhook_signing_key": SecretStr(SIGNING_KEY),
    })

"""The platform containers' health checks (infra/docker/healthcheck.py), run as compose
runs them: a separate process, exit code 0 when healthy, against the session's services."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PORT_BASE, wait_for

SCRIPT = Path(__file__).resolve().parents[2] / "infra" / "docker" / "healthcheck.py"

pytestmark = pytest.mark.services


def healthcheck(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60, check=False)


class Status(BaseHTTPRequestHandler):
    """Answers with the status named by the path: /200, /503."""

    def do_GET(self) -> None:
        self.send_response(int(self.path.strip("/")))
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Status)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_http_service_is_healthy_only_when_it_answers_2xx(http_server: str) -> None:
    assert healthcheck("http", f"{http_server}/200").returncode == 0
    failing = healthcheck("http", f"{http_server}/503")
    assert failing.returncode == 1 and "503" in failing.stderr
    nobody = healthcheck("http", "http://127.0.0.1:9/")  # the discard port: nothing there
    assert nobody.returncode == 1


def test_a_worker_container_is_healthy_once_its_worker_answers(
    platform_db: Any, worker: Any,
) -> None:
    wait_for(lambda: healthcheck("worker").returncode == 0, timeout=90,
             what="the worker to answer the health check's ping")


def test_a_worker_container_without_a_worker_is_unhealthy(platform_db: Any) -> None:
    result = healthcheck("worker")
    assert result.returncode == 1
    assert "answered a ping" in result.stderr


def test_beat_is_healthy_while_its_broker_answers(platform_db: Any) -> None:
    assert healthcheck("beat").returncode == 0
    broken = healthcheck("beat", HV_REDIS_PORT=str(PORT_BASE + 145))
    assert broken.returncode == 1 and "broker unreachable" in broken.stderr


def test_an_unknown_check_is_a_usage_error() -> None:
    assert healthcheck("nothing").returncode == 2

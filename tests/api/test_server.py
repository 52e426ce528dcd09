"""`hypervision api` serves the application over real HTTP with uvicorn."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import httpx
import pytest

from tests.api.conftest import World
from tests.conftest import PORT_BASE, wait_for

pytestmark = pytest.mark.services

SERVE = """
import typer
from hypervision.commands import api
app = typer.Typer()
@app.callback()
def main() -> None: ...
api.register(app)
app()
"""


def _get(url: str, **kwargs: Any) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2, **kwargs)
    except httpx.TransportError:
        return None


def test_the_api_command_serves_the_api_over_http(world: World) -> None:
    port = PORT_BASE + 70
    server = subprocess.Popen([sys.executable, "-c", SERVE, "api", "--port", str(port)],
                              env=os.environ.copy(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        health = wait_for(lambda: _get(f"{base}/health"), timeout=30, what="the API to answer")
        assert health.json() == {"status": "ok"}
        assert "server" not in health.headers
        assert health.headers["x-frame-options"] == "DENY"
        me = _get(f"{base}/auth/me", headers=world.headers("alpha"))
        assert me is not None and me.json()["member"] == "alpha"
    finally:
        server.terminate()
        server.wait(timeout=20)

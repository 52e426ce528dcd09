"""A device page rendered by a real browser (Debian's headless Chromium) requests nothing
from anywhere but its own origin.

The router is served by uvicorn on a loopback port; Chromium loads the page with its
network log on (`--log-net-log`), and every request the page made, and every TCP
connection the browser opened, is read back from that log. Host names other than
127.0.0.1 resolve to nothing (`--host-resolver-rules`), so that the browser's own
background requests (updates, sign-in) never leave the machine either; they are told
apart from the page's requests by their initiator. A control page with one outside image
proves the check sees such a request.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from tests.conftest import PORT_BASE
from tests.public.conftest import Civic
from tests.webserver import serving

pytestmark = pytest.mark.services

PORT = PORT_BASE + 801
ORIGIN = f"http://127.0.0.1:{PORT}"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-default-apps", "--disable-domain-reliability", "--no-pings",
    "--disable-client-side-phishing-detection", "--disable-breakpad", "--disable-quic",
    "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate,"
    "AutofillServerCommunication,CertificateTransparencyComponentUpdater",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


@dataclass
class Served:
    paths: list[str]


@pytest.fixture(scope="module")
def served(civic: Civic) -> Iterator[Served]:

    from hypervision.public.pages import router

    app = FastAPI()
    app.include_router(router)
    seen = Served([])

    @app.middleware("http")
    async def remember(request: Request, call_next: Any) -> Any:
        seen.paths.append(request.url.path)
        return await call_next(request)

    @app.get("/control/leaky")
    def leaky() -> HTMLResponse:
        return HTMLResponse('<!doctype html><html lang="en"><title>leaky</title>'
                            '<img src="http://tracker.example/pixel.png" alt="pixel"></html>')

    with serving(app, PORT, lifespan="off"):
        yield seen


@dataclass
class NetLog:
    page_requests: list[str]     # URLs the page asked for (main frame and subresources)
    other_requests: list[str]    # the browser's own requests (never connected: no DNS)
    connections: set[str]        # every address a TCP connection was opened to
    dom: str


def browse(url: str, tmp: Path) -> NetLog:
    assert CHROMIUM, "Debian's chromium is not installed (apt-get install -y chromium)"
    log = tmp / "netlog.json"
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'profile'}", f"--log-net-log={log}",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(log.read_text())
    names = {v: k for k, v in data["constants"]["logEventTypes"].items()}
    page, other, connections = [], [], set()
    for event in data["events"]:
        kind, params = names.get(event["type"]), event.get("params") or {}
        if kind == "URL_REQUEST_START_JOB" and "url" in params:
            # The page's requests: its main frame, and what a document of ours initiated.
            ours = params.get("request_type") == "main frame" or params.get(
                "initiator", "").startswith("http")
            (page if ours else other).append(params["url"])
        elif kind == "TCP_CONNECT" and "remote_address" in params:
            connections.add(params["remote_address"])
    return NetLog(page, other, connections, done.stdout)


def test_a_device_page_renders_in_chromium_without_any_outbound_request(
    served: Served, civic: Civic, tmp_path: Path
) -> None:
    public_id = civic.public_ids["c1c1c1c1c1c10001"]
    served.paths.clear()
    net = browse(f"{ORIGIN}/d/{public_id}", tmp_path)

    assert "Compteur de l'école Jules Ferry" in net.dom  # it rendered
    assert net.page_requests, "the network log recorded no request at all"
    for url in net.page_requests:
        assert url.startswith(ORIGIN + "/"), f"the page requested {url}"
    assert net.connections == {f"127.0.0.1:{PORT}"}
    # What the page loaded, as the server saw it: the page, its stylesheet, its QR code.
    assert {f"/d/{public_id}", "/p/static/public.css", f"/d/{public_id}/qr.svg"} <= set(
        served.paths)


def test_the_browser_check_catches_a_page_that_loads_from_elsewhere(
    served: Served, tmp_path: Path
) -> None:
    net = browse(f"{ORIGIN}/control/leaky", tmp_path)
    outside = [u for u in net.page_requests if not u.startswith(ORIGIN + "/")]
    assert outside == ["http://tracker.example/pixel.png"]
    assert net.connections == {f"127.0.0.1:{PORT}"}  # resolution refused: nothing left

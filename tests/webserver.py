"""The platform's ASGI application served over real HTTP by uvicorn, in a thread of the
test process (for Chromium and OIDC redirects, which need a real address)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


@contextmanager
def serving(app: Any, port: int, host: str = "127.0.0.1", **config: Any) -> Iterator[str]:
    """Serve `app` on host:port until the block ends; yields its origin. `config` goes to
    uvicorn's Config (e.g. lifespan="off")."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)

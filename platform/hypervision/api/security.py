"""What every response carries and what protects the login: security headers, a request
id, and a per-process limit on login attempts."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import deque
from collections.abc import MutableMapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The API serves JSON and files only: nothing may be framed, sniffed or loaded elsewhere.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
    "cross-origin-resource-policy": "same-origin",
}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class SecurityHeaders:
    """ASGI middleware: give each request an id (the client's X-Request-ID when sane) and
    add the security headers and that id to every response, streamed ones included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        state: MutableMapping[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # A route that set a stricter policy or a cache lifetime of its own (the
                # public pages) keeps it; every other security header is enforced.
                own = {k.decode("latin-1").lower() for k, _ in message.get("headers", [])}
                kept = {"content-security-policy", "cache-control"} & own
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.decode("latin-1").lower() not in SECURITY_HEADERS
                           or k.decode("latin-1").lower() in kept]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()
                            if k.lower() not in kept]
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class LoginLimiter:
    """At most `attempts` logins per key (client address, e-mail) within `window` seconds.

    In memory, per process: enough to make password guessing slow against one API
    process; several processes multiply the allowance, which stays small."""

    def __init__(self, attempts: int, window: float = 300.0) -> None:
        self.attempts = attempts
        self.window = window
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, *keys: str) -> float:
        """Count one attempt for every key; returns 0 if allowed, else seconds to wait."""
        now = time.monotonic()
        wait = 0.0
        with self._lock:
            if len(self._seen) > 100_000:  # bounded memory under a spray of addresses
                self._seen.clear()
            for key in keys:
                stamps = self._seen.setdefault(key, deque())
                while stamps and now - stamps[0] > self.window:
                    stamps.popleft()
                if len(stamps) >= self.attempts:
                    wait = max(wait, self.window - (now - stamps[0]))
            if wait == 0.0:
                for key in keys:
                    self._seen[key].append(now)
        return wait

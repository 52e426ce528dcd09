"""What every response carries and what protects the login: security headers, a request
id, and a limit on sign-in attempts shared by every API process (Redis)."""

from __future__ import annotations

import hashlib
import re
import uuid
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
    """At most `attempts` sign-in attempts per key (client address, e-mail, pending
    sign-in) within `window` seconds, counted in Redis: every API process shares the
    counters, and each key expires on its own, so flooding other keys resets nothing.

    A key is stored as a digest (no e-mail address in Redis). When Redis does not answer,
    sign-ins are refused (503) rather than let through unlimited."""

    PREFIX = "hv:login:"
    # Checks every key, then counts the attempt on all of them, atomically.
    _SCRIPT = """
    local wait = 0
    for _, key in ipairs(KEYS) do
      if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[1]) then
        wait = math.max(wait, redis.call('PTTL', key))
      end
    end
    if wait == 0 then
      for _, key in ipairs(KEYS) do
        if redis.call('INCR', key) == 1 then redis.call('PEXPIRE', key, ARGV[2]) end
      end
    end
    return wait
    """

    def __init__(self, redis_url: str, attempts: int, window: float = 300.0) -> None:
        import redis

        self.attempts = attempts
        self.window = window
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=5,
                                           socket_connect_timeout=5)
        self._script = self._redis.register_script(self._SCRIPT)

    def _key(self, key: str) -> str:
        return self.PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]

    def hit(self, *keys: str) -> float:
        """Count one attempt for every key; returns 0 if allowed, else seconds to wait."""
        import redis

        try:
            wait_ms = self._script(keys=[self._key(k) for k in keys],
                                   args=[self.attempts, int(self.window * 1000)])
        except redis.RedisError as exc:
            raise LimiterUnavailable(str(exc)) from None
        return max(0.0, float(wait_ms) / 1000.0)

    def close(self) -> None:
        self._redis.close()


class LimiterUnavailable(RuntimeError):
    """Redis, which keeps the sign-in counters, does not answer."""

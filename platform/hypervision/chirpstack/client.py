"""A small client for ChirpStack v4's gRPC API: authorisation, deadlines, retries, errors.

Every call carries the metadata `authorization: Bearer <API token>` and a deadline. Calls
that fail because ChirpStack cannot be reached (UNAVAILABLE) are retried with exponential
backoff and jitter, up to a bounded number of attempts; a call that ran out of time
(DEADLINE_EXCEEDED) is retried only when repeating it is harmless (Get, List, Update,
Delete), never a Create or an Enqueue, which could then happen twice. Errors become
`ChirpStackError` subclasses whose message says what to check; the token never appears in
them. See infra/chirpstack/README.md.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from chirpstack_api import api
from google.protobuf.message import Message

from hypervision.settings import Settings

# The services the platform uses, by the name used in `call()`.
STUBS: dict[str, Callable[[grpc.Channel], Any]] = {
    "TenantService": api.TenantServiceStub,
    "ApplicationService": api.ApplicationServiceStub,
    "DeviceProfileService": api.DeviceProfileServiceStub,
    "DeviceService": api.DeviceServiceStub,
    "GatewayService": api.GatewayServiceStub,
    "InternalService": api.InternalServiceStub,
    "UserService": api.UserServiceStub,
}
# Methods safe to repeat after a deadline: they read, or set a state rather than add one.
_IDEMPOTENT_PREFIXES = ("Get", "List", "Update", "Delete")
PAGE_SIZE = 100


class ChirpStackError(Exception):
    """A call to ChirpStack failed; `code` is the gRPC status when there was one."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


class Unauthenticated(ChirpStackError):
    """ChirpStack refused the API token (or none was configured)."""


class PermissionDenied(ChirpStackError):
    """The token is valid but may not do this (not an admin API key)."""


class Unavailable(ChirpStackError):
    """ChirpStack could not be reached, even after retrying."""


class NotFound(ChirpStackError):
    """The object does not exist in ChirpStack."""


class AlreadyExists(ChirpStackError):
    """The object already exists in ChirpStack."""


class InvalidArgument(ChirpStackError):
    """ChirpStack rejected the request's content."""


_ERRORS: dict[grpc.StatusCode, type[ChirpStackError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
}


class ChirpStack:
    """One channel to ChirpStack's API, and `call()` with auth, deadline and retries."""

    def __init__(
        self,
        target: str,
        token: str,
        *,
        timeout: float = 10.0,
        attempts: int = 5,
        backoff: float = 0.5,
        backoff_max: float = 8.0,
        tls: bool = False,
        root_certificates: bytes | None = None,
    ) -> None:
        if not token:
            raise Unauthenticated(
                "no ChirpStack API token configured: create an admin API key in ChirpStack"
                " and set HV_CHIRPSTACK_API_TOKEN (or HV_CHIRPSTACK_API_TOKEN_FILE)"
            )
        self.target = target
        self._metadata = (("authorization", f"Bearer {token}"),)
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self.backoff_max = backoff_max
        options = [
            # The API lives inside the deployment: never go through an HTTP proxy.
            ("grpc.enable_http_proxy", 0),
            # After a failed connection gRPC fails calls at once until its own reconnect
            # backoff expires; keep that shorter than ours, so that each retry really
            # tries to reach a ChirpStack that came back.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", int(min(backoff, backoff_max) * 1000) or 100),
        ]
        if tls:
            credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._channel = grpc.secure_channel(target, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._stubs = {name: make(self._channel) for name, make in STUBS.items()}

    @classmethod
    def from_settings(cls, settings: Settings) -> ChirpStack:
        token = settings.chirpstack_api_token
        ca = settings.chirpstack_api_ca_file
        return cls(
            settings.chirpstack_api_url,
            token.get_secret_value() if token is not None else "",
            timeout=settings.chirpstack_api_timeout,
            attempts=settings.chirpstack_api_attempts,
            backoff=settings.chirpstack_api_backoff,
            tls=settings.chirpstack_api_tls,
            root_certificates=ca.read_bytes() if ca is not None else None,
        )

    def __repr__(self) -> str:  # never shows the token
        return f"ChirpStack({self.target!r})"

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> ChirpStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, service: str, method: str, request: Message) -> Any:
        """Call `service.method(request)`; retry transient failures; raise ChirpStackError.

        1. Each attempt gets the full deadline.
        2. UNAVAILABLE is retried (the request did not get through, or the server is
           restarting); DEADLINE_EXCEEDED only for idempotent methods.
        3. Between attempts: backoff * 2^attempt seconds, capped, with jitter so that
           several workers do not retry in step.
        """
        function = getattr(self._stubs[service], method)
        idempotent = method.startswith(_IDEMPOTENT_PREFIXES)
        started = time.monotonic()
        for attempt in range(1, self.attempts + 1):
            try:
                return function(request, metadata=self._metadata, timeout=self.timeout)
            except grpc.RpcError as exc:
                code: grpc.StatusCode = exc.code()
                details: str = exc.details() or ""
                retryable = code is grpc.StatusCode.UNAVAILABLE or (
                    code is grpc.StatusCode.DEADLINE_EXCEEDED and idempotent
                )
                if retryable and attempt < self.attempts:
                    delay = min(self.backoff_max, self.backoff * 2 ** (attempt - 1))
                    time.sleep(delay * random.uniform(0.5, 1.0))
                    continue
                raise self._error(service, method, code, details, attempt,
                                  time.monotonic() - started) from None
        raise AssertionError("unreachable")  # the loop returns or raises

    def _error(self, service: str, method: str, code: grpc.StatusCode, details: str,
               attempts: int, elapsed: float) -> ChirpStackError:
        where = f"ChirpStack at {self.target}"
        if code is grpc.StatusCode.UNAUTHENTICATED:
            return Unauthenticated(
                f"{where} refused the API token ({details or 'UNAUTHENTICATED'}): check"
                " HV_CHIRPSTACK_API_TOKEN; it must be an API key of this ChirpStack", code)
        if code is grpc.StatusCode.PERMISSION_DENIED:
            return PermissionDenied(
                f"{where}: the API token may not call {service}.{method} ({details});"
                " use an admin API key", code)
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return Unavailable(
                f"{where} did not answer {service}.{method}: {code.name} after {attempts}"
                f" attempt(s) in {elapsed:.1f}s ({details}); is ChirpStack running and"
                " HV_CHIRPSTACK_API_URL right?", code)
        kind = _ERRORS.get(code, ChirpStackError)
        return kind(f"{where}: {service}.{method} failed: {code.name}: {details}", code)

    def list_all(self, service: str, request: Message) -> Iterator[Any]:
        """Every item of a List call, page by page (the request's limit and offset)."""
        offset = 0
        while True:
            # Every List request of ChirpStack's API has these two fields; protobuf's
            # Message type does not say so.
            request.limit = PAGE_SIZE  # type: ignore[attr-defined]
            request.offset = offset  # type: ignore[attr-defined]
            response = self.call(service, "List", request)
            yield from response.result
            offset += len(response.result)
            if not response.result or offset >= response.total_count:
                return

    def get_or_none(self, service: str, method: str, request: Message) -> Any | None:
        """A Get that returns None when the object does not exist."""
        try:
            return self.call(service, method, request)
        except NotFound:
            return None

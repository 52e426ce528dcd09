"""HTTP receiver: ChirpStack's HTTP integration (`POST <url>?event=up`).

ChirpStack posts JSON (`Content-Type: application/json`) or, with the integration's JSON
option off, binary protobuf (`application/octet-stream`); the Content-Type decides, and
HV_CHIRPSTACK_ENCODING when it names neither.

It feeds the same batches as the MQTT receiver (ingest.batcher) and answers 200 only once
the event's batch is queued. ChirpStack's HTTP integration does not retry, so a 503 here
is logged by ChirpStack and the event is lost: prefer the MQTT integration for anything
that matters. A shared secret is required (HV_HTTP_INTEGRATION_TOKEN, sent by ChirpStack
as a configured header `Authorization: Bearer <token>`): without one, the endpoint does not
start. A body is read only after the token is checked, and only up to HARD_LIMIT: a
declared length beyond it is refused from the headers, a chunked body as soon as it
passes the limit (docs/security.md).
"""

from __future__ import annotations

import asyncio
import hmac
import time

from fastapi import FastAPI, HTTPException, Query, Request, Response

from hypervision.settings import Settings
from ingest.batcher import Batcher
from ingest.chirpstack import EVENT_MESSAGES, Envelope

# Bodies beyond this are refused outright; smaller ones over HV_MAX_PAYLOAD_BYTES are
# queued and become `oversized` dead letters, so the operator sees them.
HARD_LIMIT = 1024 * 1024


PROTOBUF_TYPES = ("application/octet-stream", "application/protobuf",
                  "application/x-protobuf")


def encoding_of(content_type: str, default: str) -> str:
    """The encoding a Content-Type names (parameters such as charset aside)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return "json"
    if media in PROTOBUF_TYPES:
        return "protobuf"
    return default


async def _read_limited(request: Request, limit: int) -> bytes:
    """The body, refused with 413 from its declared length or as soon as it passes
    `limit`: a hostile client cannot make the receiver hold more than that."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HTTPException(status_code=413, detail="body too large")
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise HTTPException(status_code=413, detail="body too large")
        parts.append(part)
    return b"".join(parts)


def make_app(settings: Settings, batcher: Batcher, queue_timeout: float = 30.0) -> FastAPI:
    token = settings.http_integration_token
    if token is None:
        raise ValueError("HV_HTTP_INTEGRATION_TOKEN is not set: the HTTP integration accepts"
                         " events only from a client that sends it (see .env.example)")
    app = FastAPI(title="Hypervision ChirpStack HTTP integration", docs_url=None, redoc_url=None)

    @app.post("/chirpstack", status_code=200)
    async def receive(
        request: Request,
        event: str = Query(description="ChirpStack event type: up, status, join, ..."),
    ) -> Response:
        sent = request.headers.get("authorization", "")
        expected = f"Bearer {token.get_secret_value()}"
        if not hmac.compare_digest(sent.encode(), expected.encode()):
            raise HTTPException(status_code=401, detail="missing or wrong token")
        if event not in EVENT_MESSAGES:
            raise HTTPException(status_code=400, detail=f"unknown event type {event!r}")
        body = await _read_limited(request, HARD_LIMIT)
        loop = asyncio.get_running_loop()
        queued = loop.create_future()

        def settle() -> None:
            if not queued.done():
                queued.set_result(None)

        def on_queued() -> None:
            loop.call_soon_threadsafe(settle)

        encoding = encoding_of(request.headers.get("content-type", ""),
                               settings.chirpstack_encoding)
        batcher.add(Envelope("http", event, body, time.time(), encoding), on_queued)
        try:
            await asyncio.wait_for(queued, queue_timeout)
        except TimeoutError:
            raise HTTPException(status_code=503, detail="ingestion queue unavailable") from None
        return Response(status_code=200)

    @app.get("/healthz")
    async def healthz() -> dict[str, int]:
        return {"pending": batcher.pending()}

    return app

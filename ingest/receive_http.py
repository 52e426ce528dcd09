"""HTTP receiver: ChirpStack's HTTP integration (`POST <url>?event=up`, JSON body).

It feeds the same batches as the MQTT receiver (ingest.batcher) and answers 200 only once
the event's batch is queued. ChirpStack's HTTP integration does not retry, so a 503 here
is logged by ChirpStack and the event is lost: prefer the MQTT integration for anything
that matters. A shared secret can be required (HV_HTTP_INTEGRATION_TOKEN, sent by
ChirpStack as a configured header `Authorization: Bearer <token>`).
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


def make_app(settings: Settings, batcher: Batcher, queue_timeout: float = 30.0) -> FastAPI:
    app = FastAPI(title="Hypervision ChirpStack HTTP integration", docs_url=None, redoc_url=None)
    token = settings.http_integration_token

    @app.post("/chirpstack", status_code=200)
    async def receive(
        request: Request,
        event: str = Query(description="ChirpStack event type: up, status, join, ..."),
    ) -> Response:
        if token is not None:
            sent = request.headers.get("authorization", "")
            expected = f"Bearer {token.get_secret_value()}"
            if not hmac.compare_digest(sent.encode(), expected.encode()):
                raise HTTPException(status_code=401, detail="missing or wrong token")
        if event not in EVENT_MESSAGES:
            raise HTTPException(status_code=400, detail=f"unknown event type {event!r}")
        body = await request.body()
        if len(body) > HARD_LIMIT:
            raise HTTPException(status_code=413, detail="body too large")
        loop = asyncio.get_running_loop()
        queued = loop.create_future()

        def on_queued() -> None:
            loop.call_soon_threadsafe(lambda: queued.done() or queued.set_result(None))

        batcher.add(Envelope("http", event, body, time.time()), on_queued)
        try:
            await asyncio.wait_for(queued, queue_timeout)
        except TimeoutError:
            raise HTTPException(status_code=503, detail="ingestion queue unavailable") from None
        return Response(status_code=200)

    @app.get("/healthz")
    async def healthz() -> dict[str, int]:
        return {"pending": batcher.pending()}

    return app

"""The Celery application of the ingestion pipeline: Redis broker, explicit queues.

Start a worker with `hypervision worker` (or `celery -A ingest.worker worker -Q ingest`).
Reliability settings and why:
- acks_late + reject_on_worker_lost: a batch is acknowledged only after its transaction
  committed, so a worker killed mid-batch leaves it in Redis to be redelivered; that is
  safe because writes are idempotent (ingest.store).
- visibility_timeout: how long Redis waits before redelivering an unacknowledged batch.
- prefetch 1: a worker holds one batch beyond the one it works on, not hundreds.
- msgpack: payloads travel as bytes, exactly as received, without base64.
- Queues are declared; a task sent to an undeclared queue is an error, not a new queue.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from hypervision.jobs import JOB_MODULES, JOBS_QUEUE
from hypervision.settings import Settings, get_settings

INGEST_QUEUE = "ingest"


def make_app(settings: Settings) -> Celery:
    app = Celery("hypervision", broker=settings.redis_url,
                 include=["ingest.tasks", *JOB_MODULES])
    app.conf.update(
        task_serializer="msgpack",
        accept_content=["msgpack"],
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=settings.worker_concurrency,
        broker_transport_options={"visibility_timeout": settings.broker_visibility_timeout},
        broker_connection_retry_on_startup=True,
        task_queues=(Queue(INGEST_QUEUE), Queue(JOBS_QUEUE)),
        task_default_queue=INGEST_QUEUE,
        # The periodic jobs go to their own queue, so a backlog of batches never delays
        # them (and a long job never holds a batch back).
        task_routes={"hypervision.jobs.*": {"queue": JOBS_QUEUE}},
        task_create_missing_queues=False,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


app = make_app(get_settings())

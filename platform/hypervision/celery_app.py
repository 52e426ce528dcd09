"""The Celery application: Redis broker, explicit queues, shared by the pipeline's batches
(ingest.tasks, queue `ingest`) and the platform's periodic jobs (hypervision.jobs, queue
`jobs`).

It sits below both and imports neither (docs/architecture.md): the modules holding tasks
import this app, and the command that runs a worker (`hypervision worker`) has it import
them (hypervision.jobs.task_modules()).

Reliability settings and why:
- acks_late + reject_on_worker_lost: a batch is acknowledged only after its transaction
  committed, so a worker killed mid-batch leaves it in Redis to be redelivered; that is
  safe because writes are idempotent (ingest.store).
- visibility_timeout: how long Redis waits before redelivering an unacknowledged batch.
- unacked_mutex_expire: the lock a worker takes while it puts overdue batches back on
  the queue. A worker killed while holding it (SIGKILL, OOM) would stop every other worker
  from redelivering anything for kombu's default 5 minutes; it expires after 30 s here. Two
  workers restoring at once can only deliver a batch twice, which the store absorbs.
- prefetch 1: a worker holds one batch beyond the one it works on, not hundreds.
- msgpack: payloads travel as bytes, exactly as received, without base64.
- Queues are declared; a task sent to an undeclared queue is an error, not a new queue.
- The transport is kombu's Redis one with a fix (hypervision.celery_broker): a batch taken
  off the queue just as Redis stops is queued again when Redis is back, not lost.
- A lost broker is retried for ever (Celery gives up after 100 attempts by default, which
  would end a worker for good during a long Redis outage); connecting times out, so an
  address that does not answer (a container being replaced) is retried too. A batch
  being stored while Redis restarts is committed, then acknowledged when the connection
  is back, or redelivered and counted as duplicate: never lost, never stored twice.
- What the transport cannot survive, the supervisor restarts (compose's restart policy,
  or `hypervision supervise` locally; see docs/runbook.md).
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from hypervision.settings import Settings, get_settings

INGEST_QUEUE = "ingest"
UNACKED_MUTEX_EXPIRE = 30  # seconds; see the module's docstring
JOBS_QUEUE = "jobs"


def make_app(settings: Settings) -> Celery:
    app = Celery("hypervision", broker=settings.redis_url)
    app.conf.update(
        # kombu's Redis transport, with the gap that lost a batch during a Redis restart
        # closed (hypervision.celery_broker).
        broker_transport="hypervision.celery_broker:Transport",
        task_serializer="msgpack",
        accept_content=["msgpack"],
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=settings.worker_concurrency,
        broker_transport_options={
            "visibility_timeout": settings.broker_visibility_timeout,
            "unacked_mutex_expire": UNACKED_MUTEX_EXPIRE,
            "socket_connect_timeout": 5,
            "socket_keepalive": True,
        },
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        # Explicit (Celery warns until it is set): a batch running when the broker goes
        # away finishes and commits; it is not cut off and redone.
        worker_cancel_long_running_tasks_on_connection_loss=False,
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

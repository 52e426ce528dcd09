"""Periodic jobs travel on their own queue, batches on the ingest queue, whoever sends
them (beat, the CLI, a test): the routing is the app's, not each call's."""

from __future__ import annotations

import importlib

from hypervision.celery_app import INGEST_QUEUE, JOBS_QUEUE, app
from hypervision.jobs import task_modules


def _queue(task_name: str) -> str:
    route = app.amqp.router.route({}, task_name)
    return route["queue"].name


def test_every_job_task_is_routed_to_the_jobs_queue() -> None:
    for module in task_modules():  # as `hypervision worker` has them imported
        importlib.import_module(module)
    jobs = sorted(n for n in app.tasks if n.startswith("hypervision.jobs."))
    assert len(jobs) >= 7, jobs
    assert {n: _queue(n) for n in jobs} == {n: JOBS_QUEUE for n in jobs}


def test_batches_go_to_the_ingest_queue() -> None:
    assert _queue("ingest.process_batch") == INGEST_QUEUE

"""Periodic jobs travel on their own queue, batches on the ingest queue, whoever sends
them (beat, the CLI, a test): the routing is the app's, not each call's."""

from __future__ import annotations

from hypervision.jobs import JOBS_QUEUE
from ingest.worker import INGEST_QUEUE, app


def _queue(task_name: str) -> str:
    route = app.amqp.router.route({}, task_name)
    return route["queue"].name


def test_every_job_task_is_routed_to_the_jobs_queue() -> None:
    app.loader.import_default_modules()
    jobs = sorted(n for n in app.tasks if n.startswith("hypervision.jobs."))
    assert len(jobs) >= 7, jobs
    assert {n: _queue(n) for n in jobs} == {n: JOBS_QUEUE for n in jobs}


def test_batches_go_to_the_ingest_queue() -> None:
    assert _queue("ingest.process_batch") == INGEST_QUEUE

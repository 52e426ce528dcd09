"""Periodic and on-demand jobs of the platform (rollups, retention, gateway sync, ...).

Each module here defines Celery tasks on the shared app (`from hypervision.celery_app
import app`), routed to the `jobs` queue, and may export `SCHEDULE: dict[str, dict]` in
Celery's beat_schedule format; `collect_schedule()` merges them for Celery beat
(`hypervision beat`). Job modules are listed in `JOB_MODULES`; a worker imports them
(`task_modules()`).
"""

from __future__ import annotations

import importlib
from typing import Any

from hypervision.celery_app import JOBS_QUEUE

__all__ = ["BEAT_RETRY", "JOBS_QUEUE", "JOB_MODULES", "collect_schedule", "task_modules"]
# Beat keeps trying to send a due job while Redis restarts (about a minute and a half),
# so that a nightly job due during the restart still runs that night; then it logs the
# miss and waits for the next run.
BEAT_RETRY: dict[str, Any] = {
    "retry": True,
    "retry_policy": {"max_retries": 12, "interval_start": 1, "interval_step": 2,
                     "interval_max": 10},
}
# Modules holding job tasks, imported by the worker and by beat.
JOB_MODULES: list[str] = [
    "hypervision.jobs.usage",
    "hypervision.jobs.gateways",
    "hypervision.jobs.downlinks",
    "hypervision.jobs.backup",
    "hypervision.jobs.retention",
    "hypervision.jobs.rollups",
    "hypervision.jobs.alerts",
    "hypervision.jobs.sharing",
    "hypervision.jobs.incidents",
    "hypervision.jobs.coverage",
    "hypervision.jobs.receipts",
]


def task_modules() -> list[str]:
    """Every module holding Celery tasks, for a worker to import: the pipeline's batch task
    (ingest.tasks) and the jobs."""
    return ["ingest.tasks", *JOB_MODULES]


def collect_schedule() -> dict[str, dict[str, Any]]:
    schedule: dict[str, dict[str, Any]] = {}
    for name in JOB_MODULES:
        module = importlib.import_module(name)
        for key, entry in getattr(module, "SCHEDULE", {}).items():
            if key in schedule:
                raise RuntimeError(f"beat schedule entry {key!r} defined twice")
            options = {"queue": JOBS_QUEUE, **BEAT_RETRY, **entry.get("options", {})}
            schedule[key] = {**entry, "options": options}
    return schedule

"""Periodic and on-demand jobs of the platform (rollups, retention, gateway sync, ...).

Each module here defines Celery tasks on the shared app (`from ingest.worker import app`),
routed to the `jobs` queue, and may export `SCHEDULE: dict[str, dict]` in Celery's
beat_schedule format; `collect_schedule()` merges them for Celery beat
(`hypervision beat`). Job modules are listed in `JOB_MODULES`.
"""

from __future__ import annotations

import importlib
from typing import Any

JOBS_QUEUE = "jobs"
# Modules holding job tasks, imported by the worker and by beat.
JOB_MODULES: list[str] = [
    "hypervision.jobs.usage",
    "hypervision.jobs.gateways",
    "hypervision.jobs.downlinks",
    "hypervision.jobs.backup",
    "hypervision.jobs.retention",
    "hypervision.jobs.rollups",
    "hypervision.jobs.alerts",
]


def collect_schedule() -> dict[str, dict[str, Any]]:
    schedule: dict[str, dict[str, Any]] = {}
    for name in JOB_MODULES:
        module = importlib.import_module(name)
        for key, entry in getattr(module, "SCHEDULE", {}).items():
            if key in schedule:
                raise RuntimeError(f"beat schedule entry {key!r} defined twice")
            schedule[key] = {**entry, "options": {"queue": JOBS_QUEUE, **entry.get("options", {})}}
    return schedule

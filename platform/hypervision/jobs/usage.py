"""The daily storage measurement of usage metering (see hypervision.usage).

Celery beat sends `hypervision.jobs.usage.measure_storage` every day shortly before
midnight UTC, so each day's row in hv.storage_usage holds the size at the end of that
day; the API shows the live size for the current day. Measuring twice the same day
overwrites that day's row, so a retried or repeated run is harmless.
"""

from __future__ import annotations

import logging

from celery.schedules import crontab

from hypervision import placement, usage
from hypervision.celery_app import app
from hypervision.db import connect_admin
from hypervision.settings import get_settings

logger = logging.getLogger(__name__)


@app.task(name="hypervision.jobs.usage.measure_storage")
def measure_storage() -> int:
    """Record every member's storage for today (UTC); returns how many were measured."""
    settings = get_settings()
    with connect_admin(settings) as conn, placement.Connections(settings, conn) as servers, \
            conn.transaction():
        count = usage.snapshot_storage(servers)
    logger.info("storage measured for %d member(s)", count)
    return count


SCHEDULE = {
    "usage-measure-storage": {
        "task": "hypervision.jobs.usage.measure_storage",
        "schedule": crontab(hour=23, minute=50),
    },
}

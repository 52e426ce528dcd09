"""The daily retention run (see hypervision.retention).

Celery beat sends `hypervision.jobs.retention.enforce_retention` to the `jobs` queue once
a day at 02:40 UTC, away from the nightly backup. Like the backup, the task acknowledges
its message when it starts: a run may outlast the broker's visibility timeout, and a
second copy would only wait on the first one's locks. A run that fails is logged; the
next day's run removes what this one did not, since retention is recomputed each time.
Two runs never overlap: the task takes a PostgreSQL advisory lock and skips if it is held.
See platform/hypervision/public/README.md.
"""

from __future__ import annotations

import datetime as dt
import logging

from celery.schedules import crontab

from hypervision import placement, retention
from hypervision.celery_app import app
from hypervision.db import connect_admin
from hypervision.settings import get_settings

logger = logging.getLogger(__name__)
# Key of the advisory lock held while retention runs (any constant unique to this job).
LOCK_KEY = 0x68765F726574  # "hv_ret"


@app.task(name="hypervision.jobs.retention.enforce_retention",
          acks_late=False)
def enforce_retention(members: list[str] | None = None) -> dict[str, int]:
    """Remove expired rows of every member (or of `members`); returns rows removed per
    member."""
    settings = get_settings()
    with connect_admin(settings) as conn, placement.Connections(settings, conn) as servers:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
        if not (row and row[0]):
            logger.warning("retention already running elsewhere; skipped")
            return {}
        try:
            runs = retention.run(conn, members=members, actor="system:retention",
                                 source="job", log=logger.info, servers=servers)
            if members is None:
                removed, _ = retention.expire_unattributed_dead_letters(
                    conn, get_settings().dead_letter_retention_days, dt.datetime.now(dt.UTC),
                    actor="system:retention", source="job")
                logger.info("dead letters of no member: %d removed", removed)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return {r.plan.member: sum(r.removed.values()) for r in runs}


SCHEDULE = {
    "daily-retention": {
        "task": "hypervision.jobs.retention.enforce_retention",
        "schedule": crontab(hour=2, minute=40),
    },
}

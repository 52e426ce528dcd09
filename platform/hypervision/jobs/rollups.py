"""Periodic job: refresh every member's rollups and derived analytics
(hypervision.analytics.rollups), every HV_ROLLUP_INTERVAL seconds on the jobs queue.

Each member is refreshed on its own, on its database server (hypervision.placement): one
member failing (its schema being migrated, its server unreachable) is logged and does not
hold the others back. A refresh still running when the next one
starts makes the new one skip that member (advisory lock), so runs never pile up; the
lag of the rollups is one interval plus the run time.
"""

from __future__ import annotations

import logging

from hypervision import placement
from hypervision.analytics import members, rollups
from hypervision.celery_app import app
from hypervision.db import connect_admin
from hypervision.settings import get_settings

logger = logging.getLogger(__name__)


@app.task(name="hypervision.jobs.rollups.refresh_all", acks_late=False,
          ignore_result=True)
def refresh_all() -> dict[str, int]:
    """Refresh each member; returns the hours recomputed per member."""
    settings = get_settings()
    done: dict[str, int] = {}
    with connect_admin(settings) as admin, placement.Connections(settings, admin) as servers:
        for m in members.members(admin):
            try:
                result = rollups.refresh(servers.get(m.server), m, settings, catalogue=admin)
            except Exception:
                logger.exception("rollup refresh of %s failed", m.slug)
                continue
            if result.skipped:
                logger.info("%s", result.skipped)
                continue
            done[m.slug] = result.hours
            logger.info("rollups %s: %d hours, %d days, %d derived rows in %.2fs", m.slug,
                        result.hours, result.days, result.derived_rows, result.seconds)
    return done


SCHEDULE = {
    "rollups-refresh": {
        "task": "hypervision.jobs.rollups.refresh_all",
        "schedule": float(get_settings().rollup_interval),
    },
}

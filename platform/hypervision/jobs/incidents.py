"""Periodic job: the incidents' legal clocks and the incidents the platform opens itself
(hypervision.syndicate.incidents, incident_detectors; docs/syndicate.md).

Every minute: open the warning and overdue alerts of pending clocks (their e-mails are
sent by the alerts job, hypervision.jobs.alerts), and run the cheap detectors (backup
missing, ingestion stopped, export volume jump). Every hour: also recompute the audit
chain, which reads the whole trail.
"""

from __future__ import annotations

import datetime as dt
import logging

from celery.schedules import crontab

from hypervision.celery_app import app
from hypervision.db import connect_admin
from hypervision.settings import get_settings
from hypervision.syndicate import incident_detectors, incidents

logger = logging.getLogger(__name__)


@app.task(name="hypervision.jobs.incidents.check", acks_late=False, ignore_result=True)
def check(verify_audit: bool = False) -> dict[str, int]:
    settings = get_settings()
    now = dt.datetime.now(dt.UTC)
    with connect_admin(settings) as conn:
        opened = incident_detectors.detect(conn, settings, now, verify_audit=verify_audit)
        clocks = incidents.check_clocks(conn, now, settings.incident_warning_share)
    if opened or clocks.warned or clocks.overdue:
        logger.warning("incidents: %d opened by detectors; clocks warned %s, overdue %s",
                       len(opened), clocks.warned, clocks.overdue)
    return {"opened": len(opened), "warned": len(clocks.warned),
            "overdue": len(clocks.overdue)}


SCHEDULE = {
    "incidents-check": {"task": "hypervision.jobs.incidents.check", "schedule": 60.0},
    "incidents-audit-chain": {"task": "hypervision.jobs.incidents.check",
                              "schedule": crontab(minute=17), "kwargs": {"verify_audit": True}},
}

"""Hourly job: open and close the low radio margin alerts of every member
(hypervision.syndicate.coverage.check_margins); the alerts job e-mails them."""

from __future__ import annotations

import datetime as dt
import logging

from celery.schedules import crontab

from hypervision import placement
from hypervision.celery_app import app
from hypervision.db import connect_admin
from hypervision.settings import get_settings
from hypervision.syndicate import coverage

logger = logging.getLogger(__name__)


@app.task(name="hypervision.jobs.coverage.check_margins", acks_late=False,
          ignore_result=True)
def check_margins() -> dict[str, int]:
    settings = get_settings()
    now = dt.datetime.now(dt.UTC)
    opened: dict[str, int] = {}
    with connect_admin(settings) as conn, placement.Connections(settings, conn) as servers:
        for slug, schema, server in conn.execute(
                "SELECT slug, schema_name, server FROM hv.members ORDER BY slug").fetchall():
            try:
                r = coverage.check_margins(servers.get(server), slug, schema, now,
                                           settings.coverage_margin_db,
                                           settings.coverage_margin_days, catalogue=conn)
            except Exception:
                logger.exception("coverage check of %s failed", slug)
                continue
            opened[slug] = len(r.opened)
    return opened


SCHEDULE = {
    "coverage-margins": {"task": "hypervision.jobs.coverage.check_margins",
                         "schedule": crontab(minute=41)},
}

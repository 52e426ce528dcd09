"""Periodic job: evaluate every member's alert rules and send the notifications due
(hypervision.alerts), every HV_ALERTS_INTERVAL seconds on the jobs queue.

Opening an alert and queueing its notifications is one transaction (lifecycle.py);
sending happens after it, and a failed notification is retried by a later run once its
backoff has passed (notify.py). Members are handled one by one, each on its database
server (hypervision.placement): one failing is logged and does not hold the others back.
"""

from __future__ import annotations

import logging

from hypervision import placement
from hypervision.alerts import lifecycle, notify
from hypervision.analytics import members
from hypervision.celery_app import app
from hypervision.db import connect_admin
from hypervision.settings import get_settings

logger = logging.getLogger(__name__)


@app.task(name="hypervision.jobs.alerts.evaluate_all", acks_late=False,
          ignore_result=True)
def evaluate_all() -> dict[str, int]:
    """Evaluate rules and deliver notifications; returns alerts opened per member."""
    settings = get_settings()
    opened: dict[str, int] = {}
    with connect_admin(settings) as admin, placement.Connections(settings, admin) as servers:
        for m in members.members(admin):
            try:
                conn = servers.get(m.server)
                result = lifecycle.evaluate_member(conn, m, settings, catalogue=admin)
                config = members.settings_of(conn, m.schema)
                delivery = notify.deliver_due(conn, m, settings, timezone=config.timezone,
                                              catalogue=admin)
            except Exception:
                logger.exception("alert evaluation of %s failed", m.slug)
                continue
            opened[m.slug] = len(result.opened)
            if result.opened or result.closed or delivery.failed or delivery.retried:
                logger.info("alerts %s: %d opened, %d closed; notifications %d sent,"
                            " %d to retry, %d failed", m.slug, len(result.opened),
                            len(result.closed), len(delivery.sent), len(delivery.retried),
                            len(delivery.failed))
    return opened


SCHEDULE = {
    "alerts-evaluate": {
        "task": "hypervision.jobs.alerts.evaluate_all",
        "schedule": float(get_settings().alerts_interval),
    },
}

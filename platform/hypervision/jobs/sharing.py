"""Sharing agreements end by themselves (see hypervision.sharing.agreements).

Celery beat sends `hypervision.jobs.sharing.expire_agreements` to the `jobs` queue every
five minutes: each agreement past its end loses its grants and is marked expired, with an
entry in both members' journals. The database's gate refuses reads of an agreement past
its end even before the job runs; the job makes the refusal a missing privilege and
records it. Expiring is a conditional UPDATE, so two runs at once expire an agreement once.
Deliveries due are sent by `send_deliveries` (hypervision.sharing.deliveries) every
quarter of an hour; the open data files and their catalogue are refreshed daily at 03:10
UTC by `publish_opendata` (hypervision.sharing.opendata_catalogue).
"""

from __future__ import annotations

import logging

from celery.schedules import crontab

from hypervision.celery_app import app
from hypervision.db import connect_admin
from hypervision.settings import get_settings
from hypervision.sharing import agreements, deliveries, opendata_catalogue

logger = logging.getLogger(__name__)
# Key of the advisory lock held while deliveries run: one delivery of an agreement at once.
LOCK_KEY = 0x68765F736872  # "hv_shr"


@app.task(name="hypervision.jobs.sharing.expire_agreements")
def expire_agreements() -> list[str]:
    """Revoke the access of agreements past their end; returns `provider/name` of each."""
    with connect_admin(get_settings()) as conn:
        ended = agreements.expire(conn)
    for name in ended:
        logger.info("sharing agreement %s expired: access revoked", name)
    return ended


@app.task(name="hypervision.jobs.sharing.send_deliveries", acks_late=False)
def send_deliveries() -> list[dict[str, object]]:
    """Send every delivery due (daily or weekly per agreement); acknowledged when it
    starts, like the backup: a delivery is logged, a failed one waits for the next run."""
    settings = get_settings()
    with connect_admin(settings) as conn:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
        if not (row and row[0]):
            logger.warning("deliveries already running elsewhere; skipped")
            return []
        try:
            outcomes = deliveries.run_due(conn, settings)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return [vars(o) for o in outcomes]


@app.task(name="hypervision.jobs.sharing.publish_opendata")
def publish_opendata() -> int:
    """Refresh the open data files and their catalogue; returns the datasets published."""
    settings = get_settings()
    with connect_admin(settings) as conn:
        catalogue = opendata_catalogue.publish(conn, settings)
    return len(catalogue["dcat:dataset"])


SCHEDULE = {
    "sharing-expiry": {
        "task": "hypervision.jobs.sharing.expire_agreements",
        "schedule": crontab(minute="*/5"),
    },
    "opendata-publication": {
        "task": "hypervision.jobs.sharing.publish_opendata",
        "schedule": crontab(hour=3, minute=10),
    },
    "sharing-deliveries": {
        "task": "hypervision.jobs.sharing.send_deliveries",
        "schedule": crontab(minute="*/15"),
    },
}

"""Daily job: delete the pipeline's receipts once no redelivery can need them.

A batch written on a member server leaves a receipt there (hv.ingest_receipts) and a
record on the primary that its counts were added (hv.ingest_counted), so that a batch
delivered again counts its outcomes once (docs/scale.md, "Outcomes and dead letters,
exactly once"). They grow by one row per member per batch; after HV_INGEST_RECEIPT_DAYS
(longer than any redelivery: Celery's visibility timeout is hours) they are deleted, on
every declared server.
"""

from __future__ import annotations

import logging

from celery.schedules import crontab

from hypervision import placement
from hypervision.celery_app import app
from hypervision.db import connect_admin
from hypervision.settings import Settings, get_settings

logger = logging.getLogger(__name__)


def prune(servers: placement.Connections, settings: Settings) -> dict[str, int]:
    """Delete the receipts older than the setting on each server, and the primary's
    records of counted receipts; rows deleted per server."""
    days = settings.ingest_receipt_days
    deleted = {}
    for name, server in placement.load_servers(settings).items():
        conn = servers.get(None if server.primary else name)
        deleted[name] = conn.execute(
            "DELETE FROM hv.ingest_receipts WHERE written_at < now() - make_interval(days => %s)",
            (days,)).rowcount
        if server.primary:
            deleted[name] += conn.execute(
                "DELETE FROM hv.ingest_counted"
                " WHERE counted_at < now() - make_interval(days => %s)", (days,)).rowcount
    return deleted


@app.task(name="hypervision.jobs.receipts.prune_receipts", acks_late=False,
          ignore_result=True)
def prune_receipts() -> dict[str, int]:
    settings = get_settings()
    with connect_admin(settings) as conn, placement.Connections(settings, conn) as servers:
        deleted = prune(servers, settings)
    logger.info("receipts deleted per server: %s", deleted)
    return deleted


SCHEDULE = {
    "receipts-prune": {"task": "hypervision.jobs.receipts.prune_receipts",
                       "schedule": crontab(hour=3, minute=17)},
}

"""Periodic job: move downlinks forward (queued -> sent -> acknowledged) from the `txack`
and `ack` events ingestion stored in each member's device_events
(hypervision.chirpstack.downlinks.track), then mark `expired` those never transmitted
within HV_DOWNLINK_EXPIRY seconds (downlinks.expire).

A safety net and the only mechanism until ingestion calls `track` itself right after
storing those events (see infra/chirpstack/README.md, "Downlinks"); then a slower schedule
suffices. Needs only the database.
"""

from __future__ import annotations

import logging

from hypervision import placement
from hypervision.celery_app import app
from hypervision.chirpstack import downlinks
from hypervision.db import connect_admin
from hypervision.settings import get_settings

logger = logging.getLogger(__name__)


@app.task(name="hypervision.jobs.downlinks.track_downlinks",
          acks_late=False, ignore_result=True)
def track_downlinks() -> dict[str, int]:
    """Run `track`, then `expire`, for every member; log how many downlinks changed state."""
    settings = get_settings()
    with connect_admin(settings) as conn, placement.Connections(settings, conn) as servers:
        changed = downlinks.track_all(servers, expire_after_s=settings.downlink_expiry)
    for slug, count in changed.items():
        if count:
            logger.info("%s: %d downlink(s) changed state", slug, count)
    return changed


SCHEDULE = {
    "downlinks-track": {
        "task": "hypervision.jobs.downlinks.track_downlinks",
        "schedule": 30.0,
    },
}

"""Periodic job: read the gateways' state and last-seen time from ChirpStack into
hv.gateways (hypervision.chirpstack.gateways), for health dashboards and alerts.

Runs every `chirpstack_gateway_sync_interval` seconds on the jobs queue. Without a
ChirpStack API token (a deployment without ChirpStack, the demo) it does nothing. When
ChirpStack cannot be reached the task fails after the client's bounded retries; the next
run tries again, and hv.gateways.synced_at tells how old the copy is.
"""

from __future__ import annotations

import logging

from hypervision.celery_app import app
from hypervision.chirpstack import gateways
from hypervision.chirpstack.client import ChirpStack
from hypervision.db import connect_admin
from hypervision.settings import get_settings

logger = logging.getLogger(__name__)


@app.task(name="hypervision.jobs.gateways.sync_gateways", acks_late=False,
          ignore_result=True)
def sync_gateways() -> dict[str, int] | None:
    """Copy GatewayService.List into the catalogue; log new gateways and state changes."""
    settings = get_settings()
    if settings.chirpstack_api_token is None:
        logger.info("gateway sync skipped: HV_CHIRPSTACK_API_TOKEN is not set")
        return None
    with ChirpStack.from_settings(settings) as client, connect_admin(settings) as conn:
        result = gateways.sync(conn, client)
    for gateway_id, previous, state in result.state_changes:
        logger.info("gateway %s: %s -> %s", gateway_id, previous or "new", state)
    for gateway_id in result.gone:
        logger.warning("gateway %s is no longer in ChirpStack", gateway_id)
    return {"seen": result.seen, "changes": len(result.state_changes), "gone": len(result.gone)}


SCHEDULE = {
    "gateways-sync": {
        "task": "hypervision.jobs.gateways.sync_gateways",
        "schedule": float(get_settings().chirpstack_gateway_sync_interval),
    },
}

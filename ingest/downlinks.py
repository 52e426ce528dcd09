"""Downlink tracking, the pipeline's step after storing `txack` and `ack` events: a
member's open downlinks move forward (queued -> sent -> acknowledged or not_acknowledged)
from the events that name their queue item.

Called by ingest.process for the devices of a batch's txack/ack events, in the batch's
transaction and as the member's writer role (which may SELECT and UPDATE its downlinks,
tenant migration 0090); and, as a safety net, by the periodic job hypervision.jobs.downlinks
for every member. Downlinks themselves (encoding, enqueueing in ChirpStack, expiry) belong
to the control plane, hypervision.chirpstack.downlinks. Events are published independently
by ChirpStack, so an `ack` may be stored before its `txack`: the update does not depend on
their order.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import sql

# The event kinds that move a downlink forward.
ANSWER_KINDS = ("txack", "ack")

# Open downlinks (still waiting for an event) joined to the events that name them. Events
# are looked for from a little before the request (clocks of two machines) on the device's
# own events, which device_events_device_idx serves.
_TRACK = """
WITH open AS (
    SELECT queue_item_id, dev_eui, requested_at FROM {s}.downlinks
    WHERE (sent_at IS NULL OR (confirmed AND acked_at IS NULL)) {only}
), found AS (
    SELECT o.queue_item_id,
           min(e.time) FILTER (WHERE e.kind = 'txack') AS sent_at,
           (array_agg(e.event->>'gatewayId' ORDER BY e.time)
                FILTER (WHERE e.kind = 'txack'))[1] AS gateway_id,
           max((e.event->>'fCntDown')::bigint) AS f_cnt_down,
           min(e.time) FILTER (WHERE e.kind = 'ack') AS acked_at,
           bool_or(coalesce((e.event->>'acknowledged')::boolean, false))
               FILTER (WHERE e.kind = 'ack') AS acknowledged
    FROM open o
    JOIN {s}.device_events e
      ON e.dev_eui = o.dev_eui
     AND e.time >= o.requested_at - interval '10 minutes'
     AND e.kind IN ('txack', 'ack')
     AND e.event->>'queueItemId' = o.queue_item_id::text
    GROUP BY o.queue_item_id
)
UPDATE {s}.downlinks d SET
    status = CASE WHEN d.acked_at IS NOT NULL THEN d.status
                  WHEN f.acked_at IS NOT NULL THEN
                      CASE WHEN f.acknowledged THEN 'acknowledged' ELSE 'not_acknowledged' END
                  WHEN f.sent_at IS NOT NULL THEN 'sent'
                  ELSE d.status END,
    sent_at = coalesce(d.sent_at, f.sent_at),
    gateway_id = coalesce(d.gateway_id, f.gateway_id),
    f_cnt_down = coalesce(f.f_cnt_down, d.f_cnt_down),
    acked_at = coalesce(d.acked_at, f.acked_at),
    updated_at = now()
FROM found f
WHERE d.queue_item_id = f.queue_item_id
  AND ((f.sent_at IS NOT NULL AND d.sent_at IS NULL)
       OR (f.acked_at IS NOT NULL AND d.acked_at IS NULL))
"""


def track(conn: psycopg.Connection, schema: str, dev_euis: Sequence[str] | None = None) -> int:
    """Move a member's open downlinks forward from its stored txack/ack events; returns
    how many changed. Idempotent. `dev_euis` limits the work to some devices (the pipeline
    passes the devices of the events it just stored)."""
    only = sql.SQL("AND dev_eui = ANY(%(devs)s)") if dev_euis is not None else sql.SQL("")
    cur = conn.execute(sql.SQL(_TRACK).format(s=sql.Identifier(schema), only=only),
                       {"devs": list(dev_euis or [])})
    return cur.rowcount

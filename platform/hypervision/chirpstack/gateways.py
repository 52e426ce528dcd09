"""The network's gateways as ChirpStack sees them, copied into the catalogue.

`sync()` reads GatewayService.List (every tenant's gateways: an admin API key sees them
all) and upserts `hv.gateways`: name, location, ChirpStack's state (NEVER_SEEN, ONLINE,
OFFLINE) and last-seen time. A change of state is also appended to
`hv.gateway_state_changes`, so dashboards and alerts can say when a gateway went silent
and when it came back. A gateway no longer listed keeps its row, with in_chirpstack false.
Declaring gateways (creating them in ChirpStack) is provisioning's job (provision.py).
See infra/chirpstack/README.md, "Gateways".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from chirpstack_api import api
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from hypervision.chirpstack.client import ChirpStack


@dataclass
class SyncResult:
    seen: int = 0
    new: list[str] = field(default_factory=list)
    state_changes: list[tuple[str, str | None, str]] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)


def _row(item: Any, members: dict[str, str]) -> dict[str, Any]:
    has_location = item.HasField("location")
    last_seen = (item.last_seen_at.ToDatetime(tzinfo=UTC)
                 if item.HasField("last_seen_at") else None)
    return {
        "gateway_id": item.gateway_id.lower(),
        "tenant_id": item.tenant_id,
        "member_slug": members.get(item.tenant_id),
        "name": item.name,
        "description": item.description,
        "latitude": item.location.latitude if has_location else None,
        "longitude": item.location.longitude if has_location else None,
        "altitude": item.location.altitude if has_location else None,
        "properties": Jsonb(dict(item.properties)),
        "state": api.GatewayState.Name(item.state),
        "last_seen_at": last_seen,
    }


def sync(conn: psycopg.Connection, client: ChirpStack, now: datetime | None = None) -> SyncResult:
    """Read every gateway from ChirpStack into hv.gateways, in one transaction."""
    now = now or datetime.now(UTC)
    items = list(client.list_all("GatewayService", api.ListGatewaysRequest()))
    result = SyncResult(seen=len(items))
    with conn.transaction():
        members = {str(t): s for s, t in conn.execute(
            "SELECT member_slug, tenant_id FROM hv.chirpstack_tenants").fetchall()}
        known: dict[str, str] = dict(
            conn.execute("SELECT gateway_id, state FROM hv.gateways").fetchall())
        for item in items:
            row = _row(item, members)
            previous = known.pop(row["gateway_id"], None)
            if previous is None:
                result.new.append(row["gateway_id"])
            conn.execute(
                """
                INSERT INTO hv.gateways AS g (gateway_id, tenant_id, member_slug, name,
                    description, latitude, longitude, altitude, properties, state,
                    state_since, last_seen_at, in_chirpstack, synced_at)
                VALUES (%(gateway_id)s, %(tenant_id)s, %(member_slug)s, %(name)s,
                    %(description)s, %(latitude)s, %(longitude)s, %(altitude)s,
                    %(properties)s, %(state)s, %(now)s, %(last_seen_at)s, true, %(now)s)
                ON CONFLICT (gateway_id) DO UPDATE SET
                    tenant_id = EXCLUDED.tenant_id, member_slug = EXCLUDED.member_slug,
                    name = EXCLUDED.name, description = EXCLUDED.description,
                    latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude,
                    altitude = EXCLUDED.altitude, properties = EXCLUDED.properties,
                    state_since = CASE WHEN g.state = EXCLUDED.state AND g.in_chirpstack
                                       THEN g.state_since ELSE EXCLUDED.state_since END,
                    state = EXCLUDED.state, last_seen_at = EXCLUDED.last_seen_at,
                    in_chirpstack = true, synced_at = EXCLUDED.synced_at
                """,
                {**row, "now": now},
            )
            if previous != row["state"]:
                result.state_changes.append((row["gateway_id"], previous, row["state"]))
                conn.execute(
                    """INSERT INTO hv.gateway_state_changes
                           (gateway_id, observed_at, state, previous, last_seen_at)
                       VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                    (row["gateway_id"], now, row["state"], previous, row["last_seen_at"]),
                )
        if known:
            gone = conn.execute(
                """UPDATE hv.gateways SET in_chirpstack = false, synced_at = %s
                   WHERE gateway_id = ANY(%s) AND in_chirpstack RETURNING gateway_id""",
                (now, list(known)),
            ).fetchall()
            result.gone = [r[0] for r in gone]
    return result


def listing(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """The gateways of the catalogue, those ChirpStack still lists first."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """SELECT gateway_id, name, member_slug, state, state_since, last_seen_at,
                      in_chirpstack, latitude, longitude, synced_at
               FROM hv.gateways ORDER BY in_chirpstack DESC, state, name"""
        )
        return cur.fetchall()

"""The device registry as the pipeline sees it: DevEUI → owning member, model, variables.

Loaded from hv.devices and hv.members into memory and refreshed periodically, so that a
batch of hundreds of uplinks costs no registry query. An unknown DevEUI forces a reload,
at most once every `miss_reload_interval` seconds, so a device applied a moment ago is
found without letting unknown devices hammer the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import psycopg

from hypervision.roles import member_role


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    dev_eui: str
    member_slug: str
    schema: str
    writer_role: str
    model_id: str
    variables: Mapping[str, str]
    active: bool
    suspended: bool
    # The member's ChirpStack tenant and applications, as `chirpstack apply` recorded them
    # (None and empty until it is provisioned): an event of this DevEUI from elsewhere in
    # ChirpStack is not the member's.
    chirpstack_tenant: str | None = None
    chirpstack_applications: frozenset[str] = frozenset()


def load_entries(conn: psycopg.Connection) -> dict[str, DeviceEntry]:
    rows = conn.execute(
        """
        SELECT d.dev_eui, d.member_slug, m.schema_name, d.model_id, d.variables, d.active,
               m.suspended, t.tenant_id::text,
               ARRAY(SELECT a.application_id::text FROM hv.chirpstack_applications a
                     WHERE a.member_slug = m.slug)
        FROM hv.devices d JOIN hv.members m ON m.slug = d.member_slug
        LEFT JOIN hv.chirpstack_tenants t ON t.member_slug = m.slug
        """
    ).fetchall()
    return {
        r[0]: DeviceEntry(r[0], r[1], r[2], member_role(r[1], "writer"), r[3],
                          {str(k): str(v) for k, v in (r[4] or {}).items()}, r[5], r[6],
                          r[7], frozenset(r[8]))
        for r in rows
    }


class Registry:
    def __init__(
        self,
        loader: Callable[[], dict[str, DeviceEntry]],
        max_age: float = 30.0,
        miss_reload_interval: float = 2.0,
    ) -> None:
        self._loader = loader
        self._max_age = max_age
        self._miss_interval = miss_reload_interval
        self._entries: dict[str, DeviceEntry] = {}
        self._loaded_at = float("-inf")

    def _reload(self) -> None:
        self._entries = self._loader()
        self._loaded_at = time.monotonic()

    def lookup(self, dev_eui: str) -> DeviceEntry | None:
        now = time.monotonic()
        if now - self._loaded_at > self._max_age:
            self._reload()
        entry = self._entries.get(dev_eui)
        if entry is None and now - self._loaded_at > self._miss_interval:
            self._reload()
            entry = self._entries.get(dev_eui)
        return entry

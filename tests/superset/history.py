"""Demo data for dashboard tests: days of simulated uplinks fed through the real Processor
(decoding, measurements, device state), with event times spread over the past."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from hypervision.db import connect_as
from hypervision.settings import Settings
from hypervision.simulator import Simulator
from hypervision.tenancy.spec import TenantSpec
from ingest.chirpstack import Envelope
from ingest.decode import Catalogue
from ingest.process import Processor
from ingest.registry import Registry, load_entries


def feed_history(settings: Settings, specs: list[TenantSpec], days: float = 3,
                 every_minutes: int = 30, seed: int = 7,
                 collected_days_ago: float | None = None) -> int:
    """Uplinks (and a status event a day) for every device of `specs`, one every
    `every_minutes` over the last `days` days; returns how many uplinks were stored.

    `collected_days_ago`: every container is full, then emptied, that long ago: a
    collection the dashboards detect whatever the simulated rounds did in those days
    (a round empties a container only when it is over half full)."""
    simulator = Simulator(specs, Catalogue.load(), seed=seed)
    for device in simulator.devices:
        device.f_cnt = seed * 100_000
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    steps = int(days * 24 * 60 / every_minutes)
    emptied = None if collected_days_ago is None else int(
        collected_days_ago * 24 * 60 / every_minutes)
    items: list[tuple[str, bytes]] = []
    for step in range(steps, 0, -1):
        at = now - timedelta(minutes=step * every_minutes)
        for device in simulator.devices:
            if emptied is not None and device.category == "waste" and step in (
                    emptied + 1, emptied):
                device.state["level"] = 0.9 if step == emptied + 1 else 0.02
            items.append(simulator.uplink(device, now=at))
            if step % (24 * 60 // every_minutes) == 0:
                items.append(simulator.status(device, now=at))
    uplinks = sum(1 for topic, _ in items if topic.endswith("/event/up"))
    stored = 0
    with connect_as(settings, settings.ingest_role, autocommit=True) as conn:
        processor = Processor(Catalogue.load(), Registry(lambda: load_entries(conn)),
                              settings.max_payload_bytes, settings.fcnt_guard_window)
        for start in range(0, len(items), 500):
            batch = [Envelope.from_topic(t, p, time.time()) for t, p in items[start:start + 500]]
            result = processor.process(conn, batch)
            stored += sum(n for (_, outcome), n in result.outcomes.items()
                          if outcome.value == "stored")
    statuses = len(items) - uplinks
    if stored != len(items):
        raise RuntimeError(f"{len(items) - stored} of {len(items)} simulated events not stored")
    return stored - statuses

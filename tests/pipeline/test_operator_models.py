"""An operator model added while the workers run: a device of that model, declared in a
tenant file, has its uplinks decoded through the real pipeline (Mosquitto → receiver →
Redis → Celery worker → TimescaleDB) after the workers' catalogue reload, with no restart."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hypervision import model_import
from hypervision.db import connect_admin
from hypervision.settings import Settings
from hypervision.simulator import application_id
from hypervision.tenancy import apply as tenancy
from hypervision.tenancy.spec import TenantSpec
from ingest.decode import Catalogue
from tests.conftest import Worker, wait_for
from tests.pipeline.helpers import dedup_id, measurements_of, publish, stored_count

pytestmark = [pytest.mark.services, pytest.mark.slow]

TTN = Path(__file__).parents[1] / "payloads" / "ttn" / "elsys"
MEMBER, DEVICE = "opmodel_x", "0acce55000000001"
# The reprocessing test has a member of its own: its run covers all of its device's uplinks.
MEMBER_2, DEVICE_2 = "opmodel_y", "0acce55000000002"


def _spec(member: str = MEMBER, device: str = DEVICE) -> TenantSpec:
    return TenantSpec.model_validate({
        "version": "v1", "kind": "tenant", "name": member,
        "identity": {"name": "Commune Catalogue (test)", "kind": "commune"},
        "contacts": {"dpo": {"name": "DPO", "email": "dpo@example.org"}},
        "devices": [{"dev_eui": device, "name": "Salle du conseil", "model": "acme-ers-lite",
                     "data_class": "indoor-air"}]})


def _uplink(simulator: Any, frame: bytes, member: str = MEMBER,
            device: str = DEVICE) -> tuple[str, bytes]:
    """A ChirpStack uplink of the new device: a simulated event with its identity and bytes."""
    _, payload = simulator.uplink(simulator.devices[0])
    body = json.loads(payload)
    app = application_id(member)
    body["deviceInfo"].update(devEui=device, applicationId=app, deviceName="Salle du conseil",
                              deviceProfileName="Elsys ERS Lite")
    body.update(deduplicationId=str(uuid.uuid4()), fPort=1,
                data=base64.b64encode(frame).decode())
    body.pop("object", None)
    return f"application/{app}/device/{device}/event/up", json.dumps(body).encode()


def test_a_model_added_while_the_workers_run_decodes_its_devices_uplinks(
    platform_db: Settings, admin: psycopg.Connection, receiver: Any, simulator: Any,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path / "catalogue"
    monkeypatch.setenv("HV_CATALOGUE_DIR", str(folder))
    monkeypatch.setenv("HV_CATALOGUE_RELOAD_INTERVAL", "0")
    worker = Worker(platform_db).start()
    try:
        # 1. The worker runs and has loaded its catalogue: an uplink of a known device is stored.
        first = [simulator.uplink(simulator.devices[0])]
        publish(platform_db, first)
        wait_for(lambda: stored_count(admin, [dedup_id(first[0][1])]) == 1,
                 what="a first uplink stored by the running worker")

        # 2. The operator adds the model and declares a device of it in a tenant file.
        candidate = model_import.read_source(
            TTN, device=None, vendor=None, model_id="acme-ers-lite", category="air",
            metrics=["air.temperature=temperature", "air.humidity=humidity:%"], interval=600)
        assert model_import.check(candidate) == []
        model_import.apply(folder, candidate, model_import.plan(folder, candidate,
                                                                Catalogue.load()))
        with connect_admin(platform_db) as conn:
            tenancy.apply(conn, [_spec()], Catalogue.load_with_operator(folder), platform_db,
                          log=lambda _: None)

        # 3. Its uplinks are decoded by the same worker process (the registry learns the new
        # DevEUI on its own within seconds: uplinks are sent until one is stored).
        sent: list[str] = []

        def decoded() -> dict[str, Any]:
            event = _uplink(simulator, bytes.fromhex("0100E20229"))
            sent.append(dedup_id(event[1]))
            publish(platform_db, [event])
            for dedup in sent:
                got = measurements_of(admin, f"tenant_{MEMBER}", dedup)
                if got:
                    return got
            return {}

        got = wait_for(decoded, interval=1.0, what="an uplink of the operator model decoded")
        assert got == {"air.temperature": (22.6, "°C"), "air.humidity": (41.0, "%")}
        codec = admin.execute(sql.SQL(
            "SELECT codec, codec_version FROM {}.uplinks"
            " WHERE deduplication_id = ANY(%s::uuid[]) AND codec IS NOT NULL LIMIT 1"
        ).format(sql.Identifier(f"tenant_{MEMBER}")), (sent,)).fetchone()
        assert codec == ("js:./codecs/acme-ers-lite.v1.js", "1")
        assert worker.process is not None and worker.process.poll() is None
    finally:
        worker.stop()


def test_a_new_codec_version_of_an_operator_model_redecodes_history(
    platform_db: Settings, admin: psycopg.Connection, simulator: Any, tmp_path: Path
) -> None:
    """Version 1 of the codec misses Elsys' battery record, so frames carrying it fail;
    version 2 is imported, and reprocessing decodes the stored uplinks with it."""
    import time

    from hypervision import reprocess
    from hypervision.db import connect_as
    from ingest.chirpstack import Envelope
    from ingest.process import Processor
    from ingest.registry import Registry, load_entries

    vendor, folder = tmp_path / "vendor", tmp_path / "catalogue"
    vendor.mkdir()
    for item in TTN.iterdir():
        (vendor / item.name).write_text(item.read_text())
    js = vendor / "elsys.js"
    full = js.read_text()
    js.write_text(full.replace("  0x07: [2,", "  0x99: [2,"))  # v1: type 0x07 unknown

    def add() -> Catalogue:
        candidate = model_import.read_source(
            vendor, device=None, vendor=None, model_id="acme-ers-lite", category="air",
            metrics=["air.temperature=temperature", "air.humidity=humidity:%"], interval=600)
        assert model_import.check(candidate) == []
        step = model_import.plan(folder, candidate, Catalogue.load())
        model_import.apply(folder, candidate, step)
        return Catalogue.load_with_operator(folder)

    v1 = add()
    with connect_admin(platform_db) as conn:
        tenancy.apply(conn, [_spec(MEMBER_2, DEVICE_2)], v1, platform_db, log=lambda _: None)
    frame = bytes.fromhex("0100E20229070E10")
    events = [_uplink(simulator, frame, MEMBER_2, DEVICE_2) for _ in range(3)]
    ids = [dedup_id(p) for _, p in events]
    with connect_as(platform_db, platform_db.ingest_role, autocommit=True) as conn:
        processor = Processor(v1, Registry(lambda: load_entries(conn)),
                              platform_db.max_payload_bytes, platform_db.fcnt_guard_window)
        processor.process(conn, [Envelope.from_topic(t, p, time.time()) for t, p in events])
    assert [measurements_of(admin, f"tenant_{MEMBER_2}", i) for i in ids] == [{}, {}, {}]

    js.write_text(full)
    v2 = add()
    assert v2.get("acme-ers-lite").codec_version == "2"
    job = reprocess.start(admin, MEMBER_2, reprocess.Filters(dev_eui=DEVICE_2), "cli:test")
    job = reprocess.run(admin, job, v2, "cli:test")
    assert (job.status, job.done) == ("done", 3)
    assert [measurements_of(admin, f"tenant_{MEMBER_2}", i) for i in ids] == [
        {"air.temperature": (22.6, "°C"), "air.humidity": (41.0, "%")}] * 3
    versions = admin.execute(sql.SQL(
        "SELECT DISTINCT codec_version FROM {}.uplinks WHERE deduplication_id = ANY(%s::uuid[])"
    ).format(sql.Identifier(f"tenant_{MEMBER_2}")), (ids,)).fetchall()
    assert versions == [("2",)]

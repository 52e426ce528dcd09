"""Fixtures for export tests: members of their own (so that no other test's rows show up in
an export), events shaped like ChirpStack's, and the real ingest Processor to store them."""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from hypervision.db import connect_as
from hypervision.settings import Settings
from hypervision.tenancy import apply as tenancy
from hypervision.tenancy.spec import TenantSpec
from ingest.chirpstack import Envelope
from ingest.decode import Catalogue
from ingest.decode.codecs import milesight_am103, milesight_em300_di
from ingest.outcomes import Outcome
from ingest.process import Processor
from ingest.registry import Registry, load_entries

# Gateways are shared by every member of the network: the same id appears in the exports
# of several members, which is how the tests see that pseudonyms differ per member.
GATEWAYS = ("0016c001f153a14c", "7276ff0039030a2b")


def member_spec(slug: str) -> TenantSpec:
    """A member with a water meter (personal data) and a CO2 sensor, and two recipients."""
    prefix = secrets.token_hex(6)
    return TenantSpec.model_validate({
        "version": "v1", "kind": "tenant", "name": slug,
        "identity": {"name": f"Commune {slug}", "kind": "commune"},
        "contacts": {"dpo": {"name": "DPO", "email": "dpo@example.org"}},
        "export_recipients": [
            {"name": "bureau-etudes", "third_party": True},
            {"name": "regie", "third_party": False},
        ],
        "devices": [
            {"dev_eui": f"{prefix}0001", "name": "Compteur 12 rue des Lilas",
             "model": "milesight-em300-di", "data_class": "water-consumption",
             "variables": {"litres_per_pulse": "1"},
             "location": {"lat": 48.0, "lon": -4.1, "address": "12 rue des Lilas"}},
            {"dev_eui": f"{prefix}0002", "name": "CO2 école salle 3",
             "model": "milesight-am103", "data_class": "indoor-air"},
        ],
    })


@pytest.fixture
def make_member(platform_db: Settings, admin: psycopg.Connection) -> Callable[[], TenantSpec]:
    """Apply a fresh member (unique slug and DevEUIs) and return its declaration."""

    def make() -> TenantSpec:
        spec = member_spec(f"exp_{secrets.token_hex(4)}")
        tenancy.apply(admin, [spec], Catalogue.load(), platform_db, log=lambda _: None)
        return spec

    return make


@pytest.fixture
def member(make_member: Callable[[], TenantSpec]) -> TenantSpec:
    return make_member()


@pytest.fixture
def reader(platform_db: Settings) -> Callable[[TenantSpec], psycopg.Connection]:
    """Connect as a member's reader role, the role exports run as."""
    opened: list[psycopg.Connection] = []

    def connect(spec: TenantSpec) -> psycopg.Connection:
        conn = connect_as(platform_db, spec.role("reader"))
        opened.append(conn)
        return conn

    yield connect  # type: ignore[misc]
    for conn in opened:
        conn.close()


def chirpstack_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "") + \
        "000+00:00"


def uplink_event(spec: TenantSpec, index: int, at: datetime, f_cnt: int,
                 values: dict[str, Any] | None = None, gateways: tuple[str, ...] = GATEWAYS,
                 dedup: str | None = None) -> bytes:
    """A ChirpStack v4 `up` event for the member's device `index` (0: water, 1: air)."""
    device = spec.devices[index]
    if device.model == "milesight-em300-di":
        f_port, data = milesight_em300_di.encode(values or {"battery": 90, "pulse": 1000})
    else:
        f_port, data = milesight_am103.encode(
            values or {"battery": 80, "temperature": 21.5, "humidity": 45.0, "co2": 650})
    event = {
        "deduplicationId": dedup or str(uuid.uuid4()),
        "time": chirpstack_time(at),
        "deviceInfo": {
            "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242", "tenantName": "Syndicat",
            "applicationId": "e5b7f1a3-61e5-4b5d-9d7c-2d1b0e4ad6d2",
            "applicationName": spec.identity.name,
            "deviceProfileId": "2a1f7c5e-2f8f-4d34-9b5c-7dcb1c7a9f00",
            "deviceProfileName": device.model, "deviceName": device.name,
            "devEui": device.dev_eui, "deviceClassEnabled": "CLASS_A",
            "tags": {"adresse": "12 rue des Lilas"},
        },
        "devAddr": "01ab23cd", "adr": True, "dr": 5, "fCnt": f_cnt, "fPort": f_port,
        "confirmed": False, "data": base64.b64encode(data).decode(),
        "rxInfo": [
            {"gatewayId": gw, "uplinkId": 1234 + i, "rssi": -80 - i, "snr": 7.5 - i,
             "channel": 2, "rfChain": 0, "crcStatus": "CRC_OK",
             "nsTime": chirpstack_time(at), "context": "AAECAw==",
             "location": {"latitude": 48.0 + i, "longitude": -4.1}}
            for i, gw in enumerate(gateways)
        ],
        "txInfo": {"frequency": 868100000, "modulation": {"lora": {
            "bandwidth": 125000, "spreadingFactor": 7, "codeRate": "CR_4_5"}}},
        "regionConfigId": "eu868",
    }
    return json.dumps(event, separators=(",", ":")).encode()


def status_event(spec: TenantSpec, index: int, at: datetime, battery: float) -> bytes:
    device = spec.devices[index]
    return json.dumps({
        "deduplicationId": str(uuid.uuid4()), "time": chirpstack_time(at),
        "deviceInfo": {"tenantName": "Syndicat", "applicationName": spec.identity.name,
                       "deviceName": device.name, "devEui": device.dev_eui},
        "margin": 10, "externalPowerSource": False, "batteryLevelUnavailable": False,
        "batteryLevel": battery,
    }, separators=(",", ":")).encode()


def topic(spec: TenantSpec, index: int, kind: str = "up") -> str:
    return f"application/{spec.name}/device/{spec.devices[index].dev_eui}/event/{kind}"


class Ingest:
    """Stores events through the real ingest Processor, as the ingest role."""

    def __init__(self, conn: psycopg.Connection, processor: Processor) -> None:
        self.conn = conn
        self.processor = processor

    def __call__(self, *items: tuple[str, bytes], received_at: float | None = None) -> None:
        envelopes = [Envelope.from_topic(t, p, received_at or time.time()) for t, p in items]
        result = self.processor.process(self.conn, envelopes)
        assert result.total(Outcome.STORED) == len(items), result.outcomes


@pytest.fixture
def ingest(platform_db: Settings) -> Iterator[Ingest]:
    with connect_as(platform_db, platform_db.ingest_role, autocommit=True) as conn:
        registry = Registry(lambda: load_entries(conn), miss_reload_interval=0.0)
        yield Ingest(conn, Processor(Catalogue.load(), registry, platform_db.max_payload_bytes,
                                     platform_db.fcnt_guard_window))

"""Finding 3: an event naming a member's DevEUI but coming from a ChirpStack tenant or
application that is not the member's becomes a dead letter, attributed to no member."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from hypervision.db import connect_admin, connect_as
from hypervision.settings import Settings
from hypervision.tenancy import apply as tenancy
from hypervision.tenancy.spec import TenantSpec
from ingest.chirpstack import Envelope
from ingest.decode import Catalogue
from ingest.outcomes import Outcome
from ingest.process import Processor
from ingest.registry import Registry, load_entries

pytestmark = pytest.mark.services

TENANT = uuid.UUID("0b5a1e11-0000-4000-8000-000000000001")
APPLICATION = uuid.UUID("0b5a1e11-0000-4000-8000-000000000002")
# A member of its own, so that the uplinks stored here change no other test's data.
MEMBER, DEVICE = "attrib_x", "0b5a1e1100000001"
SPEC = TenantSpec.model_validate({
    "version": "v1", "kind": "tenant", "name": MEMBER,
    "identity": {"name": "Commune Attribution (test)", "kind": "commune"},
    "contacts": {"dpo": {"name": "DPO", "email": "dpo@example.org"}},
    "devices": [{"dev_eui": DEVICE, "name": "Air X", "model": "milesight-am103",
                 "data_class": "indoor-air"}]})


@pytest.fixture(scope="module")
def member(platform_db: Settings) -> None:
    with connect_admin(platform_db) as conn:
        tenancy.apply(conn, [SPEC], Catalogue.load(), platform_db, log=lambda _: None)


@pytest.fixture
def provisioned(admin: psycopg.Connection, member: None) -> Iterator[None]:
    """The member as `chirpstack apply` records it: its ChirpStack tenant and application."""
    admin.execute("INSERT INTO hv.chirpstack_tenants (member_slug, tenant_id)"
                  " VALUES (%s, %s)", (MEMBER, TENANT))
    admin.execute("INSERT INTO hv.chirpstack_applications (member_slug, name, application_id)"
                  " VALUES (%s, %s, %s)", (MEMBER, MEMBER, APPLICATION))
    yield
    admin.execute("DELETE FROM hv.chirpstack_applications WHERE member_slug = %s", (MEMBER,))
    admin.execute("DELETE FROM hv.chirpstack_tenants WHERE member_slug = %s", (MEMBER,))


@pytest.fixture
def processor(platform_db: Any, provisioned: None) -> Iterator[tuple[Any, Processor]]:
    with connect_as(platform_db, platform_db.ingest_role, autocommit=True) as conn:
        yield conn, Processor(Catalogue.load(), Registry(lambda: load_entries(conn)),
                              platform_db.max_payload_bytes, platform_db.fcnt_guard_window)


def _from(simulator: Any, tenant: uuid.UUID, application: uuid.UUID) -> tuple[Envelope, str]:
    device = next(d for d in simulator.devices if d.model_id == "milesight-am103")
    _, payload = simulator.uplink(device)
    body = json.loads(payload)
    body["deviceInfo"].update(tenantId=str(tenant), applicationId=str(application),
                              devEui=DEVICE)
    body["deduplicationId"] = str(uuid.uuid4())
    topic = f"application/{application}/device/{DEVICE}/event/up"
    return Envelope.from_topic(topic, json.dumps(body).encode(), time.time()), \
        body["deduplicationId"]


@pytest.mark.parametrize("other", ["tenant", "application"])
def test_an_event_from_another_chirpstack_application_is_a_dead_letter_of_no_member(
    processor: tuple[Any, Processor], simulator: Any, admin: psycopg.Connection, other: str
) -> None:
    conn, proc = processor
    stranger = uuid.uuid4()
    envelope, dedup = _from(simulator, stranger if other == "tenant" else TENANT,
                            stranger if other == "application" else APPLICATION)
    result = proc.process(conn, [envelope])
    assert result.total(Outcome.REJECTED) == 1 and result.total(Outcome.STORED) == 0
    row = admin.execute("SELECT reason, member_slug FROM hv.dead_letters"
                        " WHERE payload = %s", (envelope.payload,)).fetchone()
    assert row == ("wrong_application", None)
    stored = admin.execute("SELECT count(*) FROM tenant_attrib_x.uplinks"
                           " WHERE deduplication_id = %s", (dedup,)).fetchone()
    assert stored == (0,)


def test_an_event_from_the_members_own_application_is_stored(
    processor: tuple[Any, Processor], simulator: Any
) -> None:
    conn, proc = processor
    envelope, _ = _from(simulator, TENANT, APPLICATION)
    assert proc.process(conn, [envelope]).total(Outcome.STORED) == 1

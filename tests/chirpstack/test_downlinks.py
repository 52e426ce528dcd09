"""Downlinks: enqueue through ChirpStack with its audit entry, the downlink's life tracked
from txack/ack events stored by the real ingestion processor, and the API routes, which
run on the API's own connections (its role and the members' reader roles), never the
superuser's."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from google.protobuf import json_format
from psycopg import sql
from pydantic import SecretStr

from hypervision import accounts, placement
from hypervision.accounts import Who
from hypervision.api.db import Databases, grant_downlink_requests
from hypervision.api.main import create_app
from hypervision.chirpstack import downlinks, provision, routes
from hypervision.chirpstack.client import ChirpStack
from hypervision.chirpstack.encoders import EncodeError
from hypervision.chirpstack.network import Network
from hypervision.db import connect_admin, connect_as
from hypervision.settings import Settings, get_settings
from hypervision.tenancy.spec import TenantSpec
from ingest.chirpstack import EVENT_MESSAGES, Envelope
from ingest.decode import Catalogue
from ingest.outcomes import Outcome
from ingest.process import Processor
from ingest.registry import Registry, load_entries
from tests.chirpstack.fake_chirpstack import FakeChirpStack

pytestmark = pytest.mark.services
LAMP, OTHER_LAMP, METER = "1c1c1c1c1c1c0001", "1c1c1c1c1c1c0002", "1c1c1c1c1c1c0003"
TOWER = "0016c001f1500001"
OPERATOR = Who(actor="user:agent@lumiere.example.org", source="api", request_id="req-1")


# Enqueue and tracking --------------------------------------------------------------------


@pytest.fixture
def provisioned(catalogue_db: psycopg.Connection, client: ChirpStack, lumiere: TenantSpec,
                network: Network) -> psycopg.Connection:
    provision.apply(catalogue_db, client, [lumiere], Catalogue.load(), network, {},
                    log=lambda _: None)
    return catalogue_db


@pytest.fixture
def processor(platform_db: Settings) -> Iterator[tuple[psycopg.Connection, Processor]]:
    with connect_as(platform_db, platform_db.ingest_role, autocommit=True) as conn:
        registry = Registry(lambda: load_entries(conn))
        yield conn, Processor(Catalogue.load(), registry, platform_db.max_payload_bytes,
                              platform_db.fcnt_guard_window)


def _event(kind: str, dev_eui: str, queue_item_id: str, at: datetime, encoding: str = "json",
           **fields: Any) -> Envelope:
    """A txack or ack event as ChirpStack's MQTT integration publishes it, from the
    ChirpStack tenant and application provisioning recorded for the device's member
    (ingestion refuses events from any other)."""
    with connect_admin(get_settings()) as conn:
        ids = conn.execute(
            "SELECT t.tenant_id::text, a.application_id::text FROM hv.devices d"
            " JOIN hv.chirpstack_tenants t USING (member_slug)"
            " JOIN hv.chirpstack_applications a USING (member_slug) WHERE d.dev_eui = %s",
            (dev_eui,)).fetchone()
    tenant, app = ids or (str(uuid.uuid4()), str(uuid.uuid4()))
    body: dict[str, Any] = {
        "time": at.isoformat(),
        "deviceInfo": {
            "tenantId": tenant, "tenantName": "Syndicat Lumière (test)",
            "applicationId": app, "applicationName": "lumiere",
            "deviceProfileId": str(uuid.uuid4()), "deviceProfileName": "milesight-ws558",
            "deviceName": "Armoire", "devEui": dev_eui, "deviceClassEnabled": "CLASS_C",
            "tags": {},
        },
        "queueItemId": queue_item_id,
        **fields,
    }
    if kind == "ack":
        body["deduplicationId"] = str(uuid.uuid4())
    topic = f"application/{app}/device/{dev_eui}/event/{kind}"
    payload = json.dumps(body).encode()
    if encoding == "protobuf":
        message = EVENT_MESSAGES[kind]()
        payload = json_format.Parse(payload, message).SerializeToString()
    return Envelope.from_topic(topic, payload, time.time(), encoding)


def _txack(dev_eui: str, queue_item_id: str, at: datetime, encoding: str = "json") -> Envelope:
    # txInfo as ChirpStack v4 writes it for a class C downlink: a Duration in its timing.
    tx_info = {
        "frequency": 869525000, "power": 27,
        "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 12,
                                "codeRate": "CR_4_5", "polarizationInversion": True}},
        "timing": {"delay": {"delay": "1s"}}, "context": "AAAAAAAAAAAAAAAAAAAAAAAA",
    }
    return _event("txack", dev_eui, queue_item_id, at, encoding, downlinkId=4242,
                  fCntDown=7, gatewayId=TOWER, txInfo=tx_info)


def _ack(dev_eui: str, queue_item_id: str, at: datetime, acknowledged: bool,
         encoding: str = "json") -> Envelope:
    return _event("ack", dev_eui, queue_item_id, at, encoding, acknowledged=acknowledged,
                  fCntDown=7)


def _ingest(processor: tuple[psycopg.Connection, Processor], *events: Envelope) -> None:
    conn, proc = processor
    result = proc.process(conn, list(events))
    assert result.total(Outcome.STORED) == len(events)


def _state(admin: psycopg.Connection, queue_item_id: str) -> tuple:
    return admin.execute(
        "SELECT status, sent_at IS NOT NULL, acked_at IS NOT NULL, gateway_id, f_cnt_down"
        " FROM tenant_lumiere.downlinks WHERE queue_item_id = %s", (queue_item_id,)
    ).fetchone()


def test_a_downlink_is_queued_audited_then_tracked_through_txack_and_ack(
    provisioned: psycopg.Connection, client: ChirpStack, chirpstack: FakeChirpStack,
    processor: tuple[psycopg.Connection, Processor],
) -> None:
    admin = provisioned
    sent = downlinks.enqueue(admin, client, LAMP, "switch", {"circuits": "1,2", "state": "on"},
                             who=OPERATOR)
    # In ChirpStack's queue, with the encoder's bytes.
    (item,) = chirpstack.store.queue[LAMP]
    assert (item.id, item.f_port, item.data.hex(), item.confirmed) == (
        sent.queue_item_id, 85, "080303", True)
    assert (sent.status, sent.requested_by, sent.params) == (
        "queued", OPERATOR.actor, {"circuits": [1, 2], "state": "on"})
    # In the audit trail, with who asked and what was sent.
    entry = admin.execute(
        "SELECT actor, member_slug, target, source, request_id, after FROM hv.audit_log"
        " WHERE action = 'downlink.enqueue' AND after->>'queue_item_id' = %s",
        (sent.queue_item_id,)).fetchone()
    assert entry is not None
    assert entry[:5] == (OPERATOR.actor, "lumiere", f"device:{LAMP}", "api", "req-1")
    assert entry[5]["data"] == "080303" and entry[5]["command"] == "switch"

    now = datetime.now(UTC)
    assert downlinks.track(admin, "tenant_lumiere") == 0
    # Ingestion moves the downlink forward as it stores the txack, then the ack.
    _ingest(processor, _txack(LAMP, sent.queue_item_id, now + timedelta(seconds=1)))
    assert _state(admin, sent.queue_item_id) == ("sent", True, False, TOWER, 7)

    _ingest(processor, _ack(LAMP, sent.queue_item_id, now + timedelta(seconds=3), True))
    assert _state(admin, sent.queue_item_id) == ("acknowledged", True, True, TOWER, 7)
    # The periodic job (a safety net) and tracking again change nothing.
    assert downlinks.track_all(placement.Connections(get_settings(), admin))["lumiere"] == 0
    assert downlinks.track(admin, "tenant_lumiere") == 0


def test_an_ack_stored_before_its_txack_still_ends_acknowledged_and_sent(
    provisioned: psycopg.Connection, client: ChirpStack,
    processor: tuple[psycopg.Connection, Processor],
) -> None:
    admin = provisioned
    sent = downlinks.enqueue(admin, client, OTHER_LAMP, "reboot", {}, who=OPERATOR)
    now = datetime.now(UTC)
    _ingest(processor, _ack(OTHER_LAMP, sent.queue_item_id, now + timedelta(seconds=3), True))
    assert _state(admin, sent.queue_item_id)[:3] == ("acknowledged", False, True)
    _ingest(processor, _txack(OTHER_LAMP, sent.queue_item_id, now + timedelta(seconds=1)))
    assert _state(admin, sent.queue_item_id)[:3] == ("acknowledged", True, True)
    assert downlinks.track(admin, "tenant_lumiere", [OTHER_LAMP]) == 0


def test_a_negative_ack_marks_the_downlink_not_acknowledged_and_unconfirmed_ones_end_sent(
    provisioned: psycopg.Connection, client: ChirpStack,
    processor: tuple[psycopg.Connection, Processor],
) -> None:
    admin = provisioned
    now = datetime.now(UTC)
    refused = downlinks.enqueue(admin, client, LAMP, "switch",
                                {"circuits": "all", "state": "off"}, who=OPERATOR)
    quiet = downlinks.enqueue(admin, client, LAMP, "reporting_interval", {"seconds": 600},
                              who=OPERATOR, confirmed=False)
    _ingest(processor, _txack(LAMP, refused.queue_item_id, now),
            _ack(LAMP, refused.queue_item_id, now + timedelta(seconds=2), False),
            _txack(LAMP, quiet.queue_item_id, now + timedelta(seconds=5)))
    assert downlinks.track(admin, "tenant_lumiere") == 0  # ingestion already did it
    assert _state(admin, refused.queue_item_id)[0] == "not_acknowledged"
    assert _state(admin, quiet.queue_item_id)[0] == "sent"
    # An unconfirmed downlink is done once sent: no longer looked at.
    open_rows = admin.execute(
        "SELECT count(*) FROM tenant_lumiere.downlinks WHERE queue_item_id = %s AND"
        " (sent_at IS NULL OR (confirmed AND acked_at IS NULL))", (quiet.queue_item_id,)
    ).fetchone()
    assert open_rows == (0,)


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
def test_txack_and_ack_in_either_chirpstack_encoding_move_a_downlink_to_its_end(
    provisioned: psycopg.Connection, client: ChirpStack,
    processor: tuple[psycopg.Connection, Processor], encoding: str,
) -> None:
    admin = provisioned
    now = datetime.now(UTC)
    sent = downlinks.enqueue(admin, client, LAMP, "switch",
                             {"circuits": "all", "state": "on"}, who=OPERATOR)
    _ingest(processor, _txack(LAMP, sent.queue_item_id, now, encoding))
    assert _state(admin, sent.queue_item_id) == ("sent", True, False, TOWER, 7)
    _ingest(processor, _ack(LAMP, sent.queue_item_id, now + timedelta(seconds=3), False,
                            encoding))
    assert _state(admin, sent.queue_item_id)[0] == "not_acknowledged"


def test_a_downlink_never_transmitted_expires_and_a_late_txack_still_counts(
    provisioned: psycopg.Connection, client: ChirpStack,
    processor: tuple[psycopg.Connection, Processor],
) -> None:
    admin = provisioned
    old = downlinks.enqueue(admin, client, OTHER_LAMP, "reboot", {}, who=OPERATOR)
    fresh = downlinks.enqueue(admin, client, OTHER_LAMP, "reboot", {}, who=OPERATOR)
    admin.execute("UPDATE tenant_lumiere.downlinks SET requested_at = now() - interval"
                  " '2 hours' WHERE queue_item_id = %s", (old.queue_item_id,))
    # The periodic job: tracking finds nothing, then the old one expires, the fresh one
    # (within the hour) stays queued.
    assert downlinks.track_all(placement.Connections(get_settings(), admin),
                               expire_after_s=3600)["lumiere"] >= 1
    assert _state(admin, old.queue_item_id)[0] == "expired"
    assert _state(admin, fresh.queue_item_id)[0] == "queued"
    assert downlinks.expire(admin, "tenant_lumiere", 3600) == 0
    # ChirpStack transmitted it after all: the event is the truth.
    _ingest(processor, _txack(OTHER_LAMP, old.queue_item_id, datetime.now(UTC)))
    assert _state(admin, old.queue_item_id)[0] == "sent"


def test_tracking_runs_as_the_members_writer_role_in_the_ingest_hook(
    provisioned: psycopg.Connection, client: ChirpStack, platform_db: Settings,
    processor: tuple[psycopg.Connection, Processor],
) -> None:
    # Requested as the API does, on its own role's connection...
    with connect_as(platform_db, platform_db.api_role, autocommit=True) as api:
        sent = downlinks.enqueue(api, client, LAMP, "reboot", {}, who=OPERATOR)
    # ...and tracked by the processor, connected as the ingest role, which only holds the
    # writer's rights after SET ROLE: the txack is tracked by ingestion itself.
    _ingest(processor, _txack(LAMP, sent.queue_item_id, datetime.now(UTC)))
    assert _state(provisioned, sent.queue_item_id)[0] == "sent"


def test_the_writer_role_tracks_downlinks_but_cannot_make_one_up(
    provisioned: psycopg.Connection, platform_db: Settings,
) -> None:
    with connect_as(platform_db, platform_db.ingest_role, autocommit=True) as conn:
        conn.execute("SET ROLE lumiere_writer")
        assert conn.execute("SELECT count(*) FROM tenant_lumiere.downlinks").fetchone() \
            is not None
        conn.execute("UPDATE tenant_lumiere.downlinks SET updated_at = updated_at"
                     " WHERE false")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO tenant_lumiere.downlinks (queue_item_id, dev_eui,"
                         " model_id, command, f_port, data, confirmed, requested_by)"
                         " VALUES (gen_random_uuid(), %s, 'milesight-ws558', 'reboot', 85,"
                         " '\\xff10ff', true, 'system:ingest')", (LAMP,))


def test_another_members_device_is_not_found_and_nothing_is_sent(
    provisioned: psycopg.Connection, client: ChirpStack, chirpstack: FakeChirpStack,
) -> None:
    with pytest.raises(downlinks.DeviceNotFound):
        downlinks.enqueue(provisioned, client, LAMP, "reboot", {}, who=OPERATOR, member="alpha")
    with pytest.raises(downlinks.DeviceNotFound):
        downlinks.enqueue(provisioned, client, "0000000000000bad", "reboot", {}, who=OPERATOR)
    assert LAMP not in chirpstack.store.queue


def test_a_device_missing_in_chirpstack_is_a_clear_error_and_leaves_no_row(
    provisioned: psycopg.Connection, client: ChirpStack, chirpstack: FakeChirpStack,
) -> None:
    chirpstack.store.delete_device(OTHER_LAMP)
    count = sql.SQL("SELECT count(*) FROM tenant_lumiere.downlinks WHERE dev_eui = %s")
    before = provisioned.execute(count, (OTHER_LAMP,)).fetchone()
    with pytest.raises(downlinks.DownlinkError, match=r"not in ChirpStack.*chirpstack apply"):
        downlinks.enqueue(provisioned, client, OTHER_LAMP, "reboot", {}, who=OPERATOR)
    assert provisioned.execute(count, (OTHER_LAMP,)).fetchone() == before


def test_a_downlink_queued_but_not_recorded_is_reported_as_such(
    provisioned: psycopg.Connection, client: ChirpStack, chirpstack: FakeChirpStack,
    platform_db: Settings,
) -> None:
    admin = provisioned
    # A constraint the row breaks: the database fails after ChirpStack accepted.
    admin.execute("ALTER TABLE tenant_lumiere.downlinks ADD CONSTRAINT test_no_reboot"
                  " CHECK (command <> 'reboot') NOT VALID")
    try:
        with connect_as(platform_db, platform_db.api_role, autocommit=True) as api, \
                pytest.raises(downlinks.NotRecorded, match="will not be tracked") as caught:
            downlinks.enqueue(api, client, OTHER_LAMP, "reboot", {}, who=OPERATOR)
    finally:
        admin.execute("ALTER TABLE tenant_lumiere.downlinks DROP CONSTRAINT test_no_reboot")
    (item,) = chirpstack.store.queue[OTHER_LAMP]
    assert item.id in str(caught.value)
    # Entry and row went together: neither was kept.
    audited = admin.execute("SELECT count(*) FROM hv.audit_log WHERE after->>'queue_item_id'"
                            " = %s", (item.id,)).fetchone()
    assert audited == (0,)


def test_a_role_that_may_not_record_downlinks_sends_nothing(
    provisioned: psycopg.Connection, client: ChirpStack, chirpstack: FakeChirpStack,
    platform_db: Settings,
) -> None:
    """The API role before `tenants apply` granted it: refused before ChirpStack is called."""
    admin = provisioned
    api_role = platform_db.api_role
    admin.execute(sql.SQL("REVOKE INSERT ON tenant_lumiere.downlinks FROM {}").format(
        sql.Identifier(api_role)))
    try:
        with connect_as(platform_db, api_role, autocommit=True) as api:
            assert not downlinks.may_record(api, "tenant_lumiere")
            with pytest.raises(downlinks.NotPermitted, match="tenants apply"):
                downlinks.enqueue(api, client, LAMP, "reboot", {}, who=OPERATOR)
    finally:
        grant_downlink_requests(admin, platform_db, "tenant_lumiere")
    assert LAMP not in chirpstack.store.queue
    with connect_as(platform_db, api_role, autocommit=True) as api:
        assert downlinks.may_record(api, "tenant_lumiere")
    # A schema the role has no USAGE on answers no, rather than an error.
    admin.execute(sql.SQL("REVOKE USAGE ON SCHEMA tenant_lumiere FROM {}").format(
        sql.Identifier(api_role)))
    try:
        with connect_as(platform_db, api_role, autocommit=True) as api:
            assert not downlinks.may_record(api, "tenant_lumiere")
    finally:
        grant_downlink_requests(admin, platform_db, "tenant_lumiere")


def test_a_model_without_encoder_cannot_be_sent_anything(
    provisioned: psycopg.Connection, client: ChirpStack, chirpstack: FakeChirpStack,
) -> None:
    with pytest.raises(EncodeError, match="no downlink encoder"):
        downlinks.enqueue(provisioned, client, METER, "reboot", {}, who=OPERATOR)
    assert METER not in chirpstack.store.queue


# The API routes ---------------------------------------------------------------------------


class SeenDatabases(Databases):
    """The API's own connection pools, noting the role of every connection handed out."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.seen: set[tuple[str, str, bool]] = set()

    def _note(self, kind: str, conn: psycopg.Connection) -> None:
        row = conn.execute("SELECT current_user::text, session_user::text, rolsuper"
                           " FROM pg_roles WHERE rolname = current_user").fetchone()
        assert row is not None and row[0] == row[1]  # nothing switched roles
        self.seen.add((kind, row[0], row[2]))

    @contextmanager
    def control(self) -> Iterator[psycopg.Connection]:
        with super().control() as conn:
            self._note("control", conn)
            yield conn

    @contextmanager
    def reader(self, slug: str) -> Iterator[psycopg.Connection]:
        with super().reader(slug) as conn:
            self._note("reader", conn)
            yield conn


@pytest.fixture
def api_dbs(platform_db: Settings) -> Iterator[SeenDatabases]:
    dbs = SeenDatabases(platform_db)
    yield dbs
    dbs.close()


@pytest.fixture
def api_client(provisioned: psycopg.Connection, client: ChirpStack, api_dbs: SeenDatabases,
               ) -> Iterator[tuple[TestClient, dict[str, routes.Actor]]]:
    app = FastAPI()
    app.include_router(routes.router)
    caller = {"actor": routes.Actor("user:agent@lumiere.example.org", "lumiere", True)}
    app.dependency_overrides[routes.get_actor] = lambda: caller["actor"]
    app.dependency_overrides[routes.get_chirpstack] = lambda: (lambda: client)
    app.dependency_overrides[routes.get_databases] = lambda: api_dbs
    with TestClient(app) as http:
        yield http, caller


def test_the_api_sends_a_downlink_for_the_callers_member_and_lists_it(
    api_client: tuple[TestClient, dict[str, routes.Actor]], chirpstack: FakeChirpStack,
    api_dbs: SeenDatabases, platform_db: Settings,
) -> None:
    http, _ = api_client
    response = http.post(f"/devices/{LAMP}/downlinks",
                         json={"command": "switch", "params": {"circuits": [3], "state": "on"}})
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["status"], body["data_hex"], body["f_port"]) == ("queued", "080404", 85)
    assert chirpstack.store.queue[LAMP][-1].id == body["queue_item_id"]

    # The row as the member's reader reads it is the one the request answered (the API
    # role cannot read it back: the answer is what it inserted and the table's defaults).
    listed = http.get(f"/devices/{LAMP}/downlinks").json()
    assert listed[0] == body
    commands = {c["name"] for c in http.get(f"/devices/{LAMP}/downlink-commands").json()}
    assert commands == {"switch", "reporting_interval", "reboot"}
    # Every connection was the API's own role or lumiere's reader, none a superuser.
    assert api_dbs.seen == {("control", platform_db.api_role, False),
                            ("reader", "lumiere_reader", False)}


def test_the_api_hides_other_members_devices_and_needs_the_right_to_command(
    api_client: tuple[TestClient, dict[str, routes.Actor]], chirpstack: FakeChirpStack,
) -> None:
    http, caller = api_client
    body = {"command": "reboot"}
    caller["actor"] = routes.Actor("user:someone@alpha.example.org", "alpha", True)
    assert http.post(f"/devices/{LAMP}/downlinks", json=body).status_code == 404
    assert http.get(f"/devices/{LAMP}/downlinks").status_code == 404
    caller["actor"] = routes.Actor("user:reader@lumiere.example.org", "lumiere", False)
    assert http.post(f"/devices/{LAMP}/downlinks", json=body).status_code == 403
    caller["actor"] = routes.Actor("user:agent@lumiere.example.org", "lumiere", True)
    bad = http.post(f"/devices/{LAMP}/downlinks", json={"command": "dim"})
    assert bad.status_code == 422 and "has no command 'dim'" in bad.json()["detail"]
    assert LAMP not in chirpstack.store.queue
    # An operator of the syndicate (no member) reaches every member's devices.
    caller["actor"] = routes.Actor("user:operator@syndicat.example.org", None, True)
    assert http.post(f"/devices/{LAMP}/downlinks", json=body).status_code == 202


def test_the_api_answers_503_and_sends_nothing_until_tenants_apply_granted_it(
    api_client: tuple[TestClient, dict[str, routes.Actor]], chirpstack: FakeChirpStack,
    provisioned: psycopg.Connection, platform_db: Settings,
) -> None:
    http, _ = api_client
    provisioned.execute(sql.SQL("REVOKE INSERT ON tenant_lumiere.downlinks FROM {}").format(
        sql.Identifier(platform_db.api_role)))
    try:
        response = http.post(f"/devices/{LAMP}/downlinks", json={"command": "reboot"})
    finally:
        grant_downlink_requests(provisioned, platform_db, "tenant_lumiere")
    assert response.status_code == 503
    assert "hypervision tenants apply" in response.json()["detail"]
    assert LAMP not in chirpstack.store.queue


def test_without_an_override_the_routes_refuse_everyone(platform_db: Settings) -> None:
    app = FastAPI()
    app.include_router(routes.router)
    with TestClient(app) as http:
        assert http.get(f"/devices/{LAMP}/downlinks").status_code == 401


# The API application, deployed as in compose: no superuser connection at all ------------

AGENT = "agent@lumiere.example.org"
# A superuser connection that cannot be opened: a socket folder that does not exist. The
# compose `api` service has no admin settings: this is what it would get.
NO_ADMIN = "host=/nonexistent/hv-no-admin dbname=hypervision user=nobody connect_timeout=2"


@pytest.fixture
def agent_token(lumiere: TenantSpec, platform_db: Settings) -> Iterator[str]:
    """A token of an admin account of lumiere, removed afterwards."""
    setup = Who("system:test-setup")
    with connect_admin(platform_db) as conn:
        accounts.upsert_account(conn, setup, email=AGENT, name="Agent Lumière",
                                member="lumiere", rights=["read", "admin"])
        issued = accounts.create_token(conn, setup, email=AGENT,
                                       expires_at=datetime.now(UTC) + timedelta(hours=1))
    yield issued.secret
    with connect_admin(platform_db) as conn:
        conn.execute("DELETE FROM hv.api_tokens WHERE account_id IN"
                     " (SELECT id FROM hv.accounts WHERE email = %s)", (AGENT,))
        conn.execute("DELETE FROM hv.accounts WHERE email = %s", (AGENT,))


@pytest.fixture
def no_admin(platform_db: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings, and the process's environment, where the superuser is out of reach."""
    monkeypatch.setenv("HV_ADMIN_DATABASE_URL", NO_ADMIN)
    get_settings.cache_clear()
    settings = platform_db.model_copy(update={"admin_database_url": SecretStr(NO_ADMIN)})
    assert get_settings().admin_conninfo() == settings.admin_conninfo() == NO_ADMIN
    for unusable in (settings, get_settings()):
        with pytest.raises(psycopg.OperationalError):
            connect_admin(unusable).close()
    yield settings
    monkeypatch.undo()
    get_settings.cache_clear()


def test_the_api_application_sends_and_lists_downlinks_without_a_superuser_connection(
    provisioned: psycopg.Connection, client: ChirpStack, chirpstack: FakeChirpStack,
    agent_token: str, no_admin: Settings,
) -> None:
    app = create_app(no_admin)
    app.dependency_overrides[routes.get_chirpstack] = lambda: (lambda: client)
    headers = {"Authorization": f"Bearer {agent_token}", "X-Request-ID": "req-no-admin"}
    with TestClient(app, raise_server_exceptions=False) as http:
        sent = http.post(f"/api/v1/devices/{LAMP}/downlinks", headers=headers,
                         json={"command": "switch", "params": {"circuits": "all",
                                                               "state": "off"}})
        assert sent.status_code == 202, sent.text
        body = sent.json()
        assert (body["requested_by"], body["data_hex"]) == (f"user:{AGENT}", "08ff00")
        listed = http.get(f"/api/v1/devices/{LAMP}/downlinks", headers=headers)
        assert listed.status_code == 200 and listed.json()[0] == body
        commands = http.get(f"/api/v1/devices/{LAMP}/downlink-commands", headers=headers)
        assert commands.status_code == 200 and len(commands.json()) == 3
    assert chirpstack.store.queue[LAMP][-1].id == body["queue_item_id"]
    # The audit entry went with the row, with the caller and the request's id.
    entry = provisioned.execute(
        "SELECT actor, member_slug, source, request_id FROM hv.audit_log"
        " WHERE action = 'downlink.enqueue' AND after->>'queue_item_id' = %s",
        (body["queue_item_id"],)).fetchone()
    assert entry == (f"user:{AGENT}", "lumiere", "api", "req-no-admin")
    # Reading the device's downlink history is audited too.
    read = provisioned.execute(
        "SELECT actor, member_slug, target, rows FROM hv.audit_log"
        " WHERE action = 'downlinks.read' AND request_id = 'req-no-admin'").fetchone()
    assert read == (f"user:{AGENT}", "lumiere", LAMP, len(listed.json()))


def test_the_api_role_may_insert_downlink_requests_and_nothing_else_of_the_member(
    provisioned: psycopg.Connection, platform_db: Settings,
) -> None:
    """Checked on a real connection as the API role: INSERT of the request's columns on
    `downlinks`, no reading it back, no forging a state, no other table."""
    columns = ("(queue_item_id, dev_eui, model_id, command, params, f_port, data, confirmed,"
               " requested_by")
    values = ("VALUES (gen_random_uuid(), '1c1c1c1c1c1c0001', 'milesight-ws558', 'reboot',"
              " '{}', 85, '\\xff10ff', true, 'user:x@example.org'")
    request = f"INSERT INTO tenant_lumiere.downlinks {columns}) {values})"
    with connect_as(platform_db, platform_db.api_role, autocommit=True) as conn:
        with conn.transaction(force_rollback=True):
            assert conn.execute(request).rowcount == 1
        for statement in (
            f"{request} RETURNING queue_item_id",
            f"INSERT INTO tenant_lumiere.downlinks {columns}, status) {values}, 'acknowledged')",
            f"INSERT INTO tenant_lumiere.downlinks {columns}, requested_at) {values},"
            " '2020-01-01')",
            "SELECT queue_item_id FROM tenant_lumiere.downlinks LIMIT 1",
            "UPDATE tenant_lumiere.downlinks SET status = 'acknowledged'",
            "DELETE FROM tenant_lumiere.downlinks",
            "SELECT 1 FROM tenant_lumiere.measurements LIMIT 1",
            "SELECT 1 FROM tenant_lumiere.uplinks LIMIT 1",
            "SELECT 1 FROM tenant_lumiere.device_events LIMIT 1",
            "SELECT 1 FROM tenant_lumiere.device_state LIMIT 1",
            "INSERT INTO tenant_lumiere.measurements (time, dev_eui, metric, value)"
            " VALUES (now(), '1c1c1c1c1c1c0001', 'x', 1)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute(statement)

"""Provisioning ChirpStack from the member files, against the in-process ChirpStack and the
real catalogue: what is created, drift, idempotence, prune, lost records."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from chirpstack_api import api, common

from hypervision.chirpstack import provision
from hypervision.chirpstack.client import ChirpStack
from hypervision.chirpstack.network import Network, NetworkError, load_keys
from hypervision.tenancy.spec import TenantSpec, load_file
from ingest.decode import Catalogue
from ingest.decode.catalogue import MODELS_DIR
from tests.chirpstack.conftest import APP_KEYS, LUMIERE, written
from tests.chirpstack.fake_chirpstack import FakeChirpStack

pytestmark = pytest.mark.services
REPO = Path(__file__).resolve().parents[2]


def _apply(conn: psycopg.Connection, client: ChirpStack, specs: list[TenantSpec],
           network: Network, keys: dict[str, str], prune: bool = False) -> provision.Plan:
    return provision.apply(conn, client, specs, Catalogue.load(), network, keys, prune=prune,
                           log=lambda _: None)


def _plan(conn: psycopg.Connection, client: ChirpStack, specs: list[TenantSpec],
          network: Network, keys: dict[str, str]) -> provision.Plan:
    return provision.plan(conn, client, specs, Catalogue.load(), network, keys)


def test_apply_creates_each_members_objects_in_chirpstack_and_records_their_ids(
    catalogue_db: psycopg.Connection, client: ChirpStack, chirpstack: FakeChirpStack,
    specs: list[TenantSpec], network: Network, keys_file: Path,
) -> None:
    keys = load_keys(keys_file)
    result = _apply(catalogue_db, client, specs, network, keys)
    store = chirpstack.store

    # One tenant per member; only the gateways' owner may have gateways.
    assert sorted(t.name for t in store.tenants.values()) == sorted(
        s.identity.name for s in specs)
    lumiere = chirpstack.tenant_named("Syndicat Lumière (test)")
    alpha = chirpstack.tenant_named("Commune Alpha (test)")
    assert lumiere.can_have_gateways and not alpha.can_have_gateways
    assert lumiere.tags["hypervision_member"] == "lumiere"

    # Applications: the slug by default, or as the network file says.
    assert set(chirpstack.applications_of(alpha.id)) == {"alpha"}
    beta = chirpstack.tenant_named("Communauté Beta (test)")
    assert set(chirpstack.applications_of(beta.id)) == {"eau-et-dechets"}
    lumiere_apps = chirpstack.applications_of(lumiere.id)
    assert set(lumiere_apps) == {"lumiere", "eau"}

    # One profile per model used, with the network's region and per-model options.
    profiles = chirpstack.profiles_of(lumiere.id)
    assert set(profiles) == {"milesight-ws558", "milesight-em300-di"}
    ws558 = profiles["milesight-ws558"]
    assert ws558.region == common.Region.EU868 and ws558.region_config_id == "eu868"
    assert ws558.mac_version == common.MacVersion.LORAWAN_1_0_3
    assert ws558.supports_otaa and ws558.supports_class_c and ws558.class_c_timeout == 5
    assert ws558.uplink_interval == Catalogue.load().get("milesight-ws558").typical_interval_s
    # A built-in (Python) codec runs in the platform only: no codec in ChirpStack.
    assert ws558.payload_codec_runtime == api.CodecRuntime.NONE
    assert not profiles["milesight-em300-di"].supports_class_c

    # Devices in the right application and profile, with join EUI and codec variables.
    lamp = store.devices["1c1c1c1c1c1c0001"]
    assert lamp.application_id == lumiere_apps["lumiere"].id
    assert lamp.device_profile_id == ws558.id
    assert lamp.join_eui == "24e124c0002a0001"
    assert lamp.name == "Armoire place de l'église"
    meter = store.devices["1c1c1c1c1c1c0003"]
    assert meter.application_id == lumiere_apps["eau"].id
    assert dict(meter.variables) == {"litres_per_pulse": "10"}
    assert len(store.devices) == sum(len(s.devices) for s in specs)

    # LoRaWAN 1.0.x: the AppKey is stored as nwk_key; app_key stays zero.
    assert set(store.keys) == set(APP_KEYS)
    for eui, key in APP_KEYS.items():
        assert store.keys[eui].nwk_key == key
        assert store.keys[eui].app_key == "0" * 32
    # Devices without an AppKey are created, with a warning saying they cannot join.
    assert any("b2b2b2b2b2b20001" in w and "no AppKey" in w for w in result.warnings)

    # The gateways, in the owner's tenant.
    assert set(store.gateways) == {"0016c001f1500001", "0016c001f1500002"}
    tower = store.gateways["0016c001f1500001"]
    assert tower.tenant_id == lumiere.id and tower.stats_interval == 30
    assert (tower.location.latitude, tower.location.longitude) == (47.99, -4.10)

    # The ids are in the catalogue.
    recorded = dict(catalogue_db.execute(
        "SELECT member_slug, tenant_id::text FROM hv.chirpstack_tenants").fetchall())
    assert recorded == {"alpha": alpha.id, "beta": beta.id, "lumiere": lumiere.id}
    apps = catalogue_db.execute(
        "SELECT name, application_id::text FROM hv.chirpstack_applications"
        " WHERE member_slug = 'lumiere'").fetchall()
    assert dict(apps) == {name: app.id for name, app in lumiere_apps.items()}
    recorded_profiles = dict(catalogue_db.execute(
        "SELECT model_id, profile_id::text FROM hv.chirpstack_device_profiles"
        " WHERE member_slug = 'lumiere'").fetchall())
    assert recorded_profiles == {name: p.id for name, p in profiles.items()}


def test_a_second_apply_changes_nothing_in_chirpstack(
    catalogue_db: psycopg.Connection, client: ChirpStack, chirpstack: FakeChirpStack,
    specs: list[TenantSpec], network: Network, keys_file: Path,
) -> None:
    keys = load_keys(keys_file)
    _apply(catalogue_db, client, specs, network, keys)
    before = written(chirpstack)
    again = _apply(catalogue_db, client, specs, network, keys)
    assert written(chirpstack) == before
    assert again.changes == []
    assert {s.symbol for s in again.steps} == {"="}
    # A device that still cannot join is still reported.
    assert any("b2b2b2b2b2b20001 has no AppKey" in w for w in again.warnings)


def test_plan_reports_drift_field_by_field_and_changes_nothing(
    catalogue_db: psycopg.Connection, client: ChirpStack, chirpstack: FakeChirpStack,
    specs: list[TenantSpec], network: Network, keys_file: Path,
) -> None:
    keys = load_keys(keys_file)
    _apply(catalogue_db, client, specs, network, keys)
    store = chirpstack.store
    lumiere = chirpstack.tenant_named("Syndicat Lumière (test)")
    app = chirpstack.applications_of(lumiere.id)["lumiere"]
    profile = chirpstack.profiles_of(lumiere.id)["milesight-ws558"]
    # Someone edits ChirpStack by hand.
    store.devices["1c1c1c1c1c1c0002"].name = "renamed in the UI"
    store.devices["1c1c1c1c1c1c0002"].tags["owner-note"] = "kept"
    store.keys["1c1c1c1c1c1c0001"].nwk_key = "ffffffffffffffffffffffffffffffff"
    store.profiles[profile.id].supports_class_c = False
    store.delete_device("1c1c1c1c1c1c0003")
    store.devices["dddddddddddd0001"] = api.Device(
        dev_eui="dddddddddddd0001", name="stray", application_id=app.id,
        device_profile_id=profile.id)
    store.gateways["0016c001f1500002"].name = "Old name"
    before = written(chirpstack)

    plan = _plan(catalogue_db, client, specs, network, keys)
    assert written(chirpstack) == before  # plan only reads
    lines = [str(s) for s in plan.changes]
    assert "~ lumiere: device 1c1c1c1c1c1c0002 'Armoire du port' (milesight-ws558) (name)" in lines
    assert ("~ lumiere: device 1c1c1c1c1c1c0001 'Armoire place de l'église' (milesight-ws558)"
            " (AppKey)") in lines
    assert "~ lumiere: device profile 'milesight-ws558' (supports_class_c)" in lines
    assert ("+ lumiere: device 1c1c1c1c1c1c0003 'Compteur mairie' (milesight-em300-di),"
            " with its AppKey") in lines
    assert "- lumiere: device dddddddddddd0001 'stray'" in lines
    assert "~ lumiere: gateway 0016c001f1500002 'Clocher' (name)" in lines
    assert len(lines) == 6
    # No key is ever printed.
    assert not any(k in str(s) for s in plan.steps for k in [*APP_KEYS.values(), "ffff" * 8])

    # apply repairs the drift but keeps what is no longer declared...
    _apply(catalogue_db, client, specs, network, keys)
    assert store.devices["1c1c1c1c1c1c0002"].name == "Armoire du port"
    assert store.devices["1c1c1c1c1c1c0002"].tags["owner-note"] == "kept"
    assert store.keys["1c1c1c1c1c1c0001"].nwk_key == APP_KEYS["1c1c1c1c1c1c0001"]
    assert store.profiles[profile.id].supports_class_c
    assert store.devices["1c1c1c1c1c1c0003"].name == "Compteur mairie"
    assert store.gateways["0016c001f1500002"].name == "Clocher"
    assert "dddddddddddd0001" in store.devices
    # ...which only prune deletes.
    pruned = _apply(catalogue_db, client, specs, network, keys, prune=True)
    assert [str(s) for s in pruned.changes] == ["- lumiere: device dddddddddddd0001 'stray'"]
    assert "dddddddddddd0001" not in store.devices
    assert _plan(catalogue_db, client, specs, network, keys).changes == []


def test_a_gateway_no_longer_declared_is_deleted_only_with_prune(
    catalogue_db: psycopg.Connection, client: ChirpStack, chirpstack: FakeChirpStack,
    specs: list[TenantSpec], network: Network,
) -> None:
    _apply(catalogue_db, client, specs, network, {})
    assert network.gateways is not None
    fewer = network.model_copy(update={"gateways": network.gateways.model_copy(
        update={"items": network.gateways.items[:1]})})
    plan = _plan(catalogue_db, client, specs, fewer, {})
    assert [str(s) for s in plan.changes] == ["- lumiere: gateway 0016c001f1500002 'Clocher'"]
    _apply(catalogue_db, client, specs, fewer, {})
    assert "0016c001f1500002" in chirpstack.store.gateways
    _apply(catalogue_db, client, specs, fewer, {}, prune=True)
    assert set(chirpstack.store.gateways) == {"0016c001f1500001"}


def test_a_lost_catalogue_record_finds_the_tenant_again_instead_of_duplicating_it(
    catalogue_db: psycopg.Connection, client: ChirpStack, chirpstack: FakeChirpStack,
    specs: list[TenantSpec], network: Network,
) -> None:
    _apply(catalogue_db, client, specs, network, {})
    tenants = dict(chirpstack.store.tenants)
    for table in ("hv.chirpstack_device_profiles", "hv.chirpstack_applications",
                  "hv.chirpstack_tenants"):
        catalogue_db.execute(f"DELETE FROM {table}")
    before = written(chirpstack)
    _apply(catalogue_db, client, specs, network, {})
    assert written(chirpstack) == before  # nothing created, nothing changed
    assert chirpstack.store.tenants.keys() == tenants.keys()
    recorded = catalogue_db.execute("SELECT count(*) FROM hv.chirpstack_tenants").fetchone()
    assert recorded == (3,)


def test_a_tenant_deleted_in_chirpstack_is_created_again(
    catalogue_db: psycopg.Connection, client: ChirpStack, chirpstack: FakeChirpStack,
    specs: list[TenantSpec], network: Network,
) -> None:
    _apply(catalogue_db, client, specs, network, {})
    alpha = chirpstack.tenant_named("Commune Alpha (test)")
    client.call("TenantService", "Delete", api.DeleteTenantRequest(id=alpha.id))
    plan = _plan(catalogue_db, client, specs, network, {})
    assert "+ alpha: tenant 'Commune Alpha (test)'" in [str(s) for s in plan.changes]
    _apply(catalogue_db, client, specs, network, {})
    again = chirpstack.tenant_named("Commune Alpha (test)")
    assert again.id != alpha.id
    assert {d.application_id for e, d in chirpstack.store.devices.items()
            if e.startswith("a1a1")} == {chirpstack.applications_of(again.id)["alpha"].id}


def test_a_member_not_yet_applied_is_refused(
    catalogue_db: psycopg.Connection, client: ChirpStack, network: Network, tmp_path: Path,
) -> None:
    text = LUMIERE.read_text().replace("name: lumiere", "name: nouveau")
    path = tmp_path / "nouveau.yaml"
    path.write_text(text)
    with pytest.raises(provision.ProvisionError, match="hypervision tenants apply"):
        _plan(catalogue_db, client, [load_file(path)], network, {})


def test_a_profile_carries_the_models_javascript_codec() -> None:
    catalogue = Catalogue.load(MODELS_DIR, REPO / "tests" / "payloads" / "js-models")
    network = Network(version="v1", kind="chirpstack-network")
    profile = provision.desired_profile("alpha", "test-js-am103", "t", catalogue, network)
    assert profile.payload_codec_runtime == api.CodecRuntime.JS
    assert "function decodeUplink" in profile.payload_codec_script
    assert profile.tags["codec_version"] == "1.0.0"


def test_the_keys_file_must_stay_private_and_out_of_the_repository(tmp_path: Path) -> None:
    inside = REPO / "tests" / "chirpstack" / "payloads" / "network.yaml"
    with pytest.raises(NetworkError, match="inside the repository"):
        load_keys(inside)
    shared = tmp_path / "keys.yaml"
    shared.write_text('"1c1c1c1c1c1c0001": "2b7e151628aed2a6abf7158809cf4f3c"\n')
    shared.chmod(0o644)
    with pytest.raises(NetworkError, match="chmod 600"):
        load_keys(shared)
    shared.chmod(0o600)
    assert load_keys(shared) == {"1c1c1c1c1c1c0001": "2b7e151628aed2a6abf7158809cf4f3c"}
    shared.write_text('"1c1c1c1c1c1c0001": "2b7e1516"\n')
    with pytest.raises(NetworkError) as caught:
        load_keys(shared)
    assert "not 32 hex digits" in str(caught.value) and "2b7e1516" not in str(caught.value)

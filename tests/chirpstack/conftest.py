"""Fixtures of the ChirpStack tests: the in-process ChirpStack API (fake_chirpstack.py) on
a loopback port from HV_TEST_PORT_BASE, a client, the test member `lumiere` (applied for
real, removed at the end), the network file and a keys file outside the repository."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hypervision.chirpstack.client import ChirpStack
from hypervision.chirpstack.network import Network, load_network
from hypervision.settings import Settings, get_settings
from hypervision.tenancy.spec import TenantSpec, load_dir, load_file
from tests.chirpstack.fake_chirpstack import FakeChirpStack
from tests.conftest import PORT_BASE, TENANTS

PAYLOADS = Path(__file__).parent / "payloads"
TOKEN = f"test-token-{secrets.token_hex(8)}"
API_PORT = PORT_BASE + 808
# Nothing ever listens here: the "ChirpStack is down" tests point at it.
DEAD_PORT = PORT_BASE + 809
LUMIERE = PAYLOADS / "tenants" / "lumiere.yaml"
APP_KEYS = {
    "1c1c1c1c1c1c0001": "2b7e151628aed2a6abf7158809cf4f3c",
    "1c1c1c1c1c1c0002": "000102030405060708090a0b0c0d0e0f",
    "1c1c1c1c1c1c0003": "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
    "a1a1a1a1a1a10001": "5f5e5d5c5b5a59585756555453525150",
}


@pytest.fixture
def chirpstack() -> Iterator[FakeChirpStack]:
    server = FakeChirpStack(API_PORT, TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def client(chirpstack: FakeChirpStack) -> Iterator[ChirpStack]:
    with ChirpStack(chirpstack.target, TOKEN, timeout=5, attempts=3, backoff=0.05) as c:
        yield c


@pytest.fixture(scope="session")
def lumiere(platform_db: Settings) -> Iterator[TenantSpec]:
    """A third member, owner of the gateways, with lighting controllers."""
    from hypervision.db import connect_admin
    from tests.public.members import apply_member, remove_member

    spec = load_file(LUMIERE)
    with connect_admin(platform_db) as conn:
        apply_member(conn, platform_db, spec)
    yield spec
    with connect_admin(platform_db) as conn:
        remove_member(conn, spec)


@pytest.fixture
def specs(lumiere: TenantSpec) -> list[TenantSpec]:
    return [*load_dir(TENANTS), lumiere]


@pytest.fixture
def network() -> Network:
    return load_network(PAYLOADS / "network.yaml")


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "appkeys.yaml"
    path.write_text("".join(f'"{eui}": "{key}"\n' for eui, key in APP_KEYS.items()))
    path.chmod(0o600)
    return path


def _forget_chirpstack_records(admin: psycopg.Connection) -> None:
    for table in ("hv.chirpstack_device_profiles", "hv.chirpstack_applications",
                  "hv.chirpstack_tenants", "hv.gateways"):
        admin.execute(f"DELETE FROM {table}")


@pytest.fixture
def catalogue_db(admin: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """The admin connection, with the ChirpStack records of earlier tests forgotten (each
    test has a fresh ChirpStack), and this test's forgotten after it: a member's recorded
    application makes the pipeline refuse events from any other (the simulators' ids),
    which the tests after these would otherwise inherit."""
    _forget_chirpstack_records(admin)
    yield admin
    _forget_chirpstack_records(admin)


@pytest.fixture
def chirpstack_env(monkeypatch: pytest.MonkeyPatch, chirpstack: FakeChirpStack, tmp_path: Path,
                   keys_file: Path) -> Iterator[Path]:
    """Settings (HV_CHIRPSTACK_*) pointing at the fake ChirpStack, the test network file and
    the keys file, for code that reads get_settings() (commands, jobs). Returns a folder
    holding the tenant files alpha, beta and lumiere."""
    token = tmp_path / "token"
    token.write_text(TOKEN)
    for name, value in {
        "HV_CHIRPSTACK_API_URL": chirpstack.target,
        "HV_CHIRPSTACK_API_TOKEN_FILE": str(token),
        "HV_CHIRPSTACK_API_ATTEMPTS": "2",
        "HV_CHIRPSTACK_API_BACKOFF": "0.05",
        "HV_CHIRPSTACK_NETWORK_FILE": str(PAYLOADS / "network.yaml"),
        "HV_CHIRPSTACK_KEYS_FILE": str(keys_file),
    }.items():
        monkeypatch.setenv(name, value)
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    for source in [*TENANTS.glob("*.yaml"), LUMIERE]:
        (tenants / source.name).write_text(source.read_text())
    get_settings.cache_clear()
    yield tenants
    get_settings.cache_clear()


def written(server: FakeChirpStack) -> dict[str, Any]:
    """The write calls the server received (Create, Update, Delete, Enqueue...)."""
    return dict(server.store.writes())

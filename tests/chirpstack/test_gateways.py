"""Gateways' state read from ChirpStack into the catalogue, by the function and the job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from hypervision.chirpstack import gateways, provision
from hypervision.chirpstack.client import ChirpStack
from hypervision.chirpstack.network import Network
from hypervision.settings import get_settings
from hypervision.tenancy.spec import TenantSpec
from ingest.decode import Catalogue
from tests.chirpstack.fake_chirpstack import FakeChirpStack

pytestmark = pytest.mark.services
TOWER, BELFRY = "0016c001f1500001", "0016c001f1500002"


@pytest.fixture
def declared(catalogue_db: psycopg.Connection, client: ChirpStack, specs: list[TenantSpec],
             network: Network) -> psycopg.Connection:
    provision.apply(catalogue_db, client, specs, Catalogue.load(), network, {},
                    log=lambda _: None)
    return catalogue_db


def _rows(conn: psycopg.Connection) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in conn.execute(
        "SELECT gateway_id, state, last_seen_at, member_slug, in_chirpstack, latitude"
        " FROM hv.gateways").fetchall()}


def _changes(conn: psycopg.Connection, gateway_id: str) -> list[tuple]:
    return conn.execute(
        "SELECT previous, state FROM hv.gateway_state_changes WHERE gateway_id = %s"
        " ORDER BY observed_at", (gateway_id,)).fetchall()


def test_sync_copies_each_gateways_state_and_last_seen_and_records_changes(
    declared: psycopg.Connection, client: ChirpStack, chirpstack: FakeChirpStack,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    chirpstack.store.see_gateway(TOWER, now - timedelta(seconds=10))

    first = gateways.sync(declared, client, now)
    assert first.seen == 2 and sorted(first.new) == [TOWER, BELFRY]
    rows = _rows(declared)
    assert rows[TOWER][:4] == ("ONLINE", now - timedelta(seconds=10), "lumiere", True)
    assert rows[TOWER][4] == pytest.approx(47.99)
    assert rows[BELFRY][:2] == ("NEVER_SEEN", None)

    # The tower was last heard longer ago than two stats intervals (ChirpStack's rule for
    # OFFLINE); the belfry is removed from ChirpStack.
    del chirpstack.store.gateways[BELFRY]
    chirpstack.store.see_gateway(TOWER, now - timedelta(minutes=5))
    later = now + timedelta(minutes=5)
    second = gateways.sync(declared, client, later)
    assert second.state_changes == [(TOWER, "ONLINE", "OFFLINE")]
    assert second.gone == [BELFRY]
    rows = _rows(declared)
    assert rows[TOWER][0] == "OFFLINE" and rows[BELFRY][3] is False
    since = declared.execute("SELECT state_since FROM hv.gateways WHERE gateway_id = %s",
                             (TOWER,)).fetchone()
    assert since == (later,)
    assert _changes(declared, TOWER) == [(None, "ONLINE"), ("ONLINE", "OFFLINE")]

    # Nothing changed: no new state change, state_since kept.
    gateways.sync(declared, client, later + timedelta(minutes=1))
    assert len(_changes(declared, TOWER)) == 2
    assert declared.execute("SELECT state_since FROM hv.gateways WHERE gateway_id = %s",
                            (TOWER,)).fetchone() == (later,)


def test_the_periodic_job_reads_gateways_into_the_catalogue(
    declared: psycopg.Connection, chirpstack_env: Path, chirpstack: FakeChirpStack,
) -> None:
    from hypervision.jobs import gateways as job

    chirpstack.store.see_gateway(BELFRY, datetime.now(UTC))
    assert job.sync_gateways() == {"seen": 2, "changes": 2, "gone": 0}
    assert _rows(declared)[BELFRY][0] == "ONLINE"
    entry = job.SCHEDULE["gateways-sync"]
    assert entry["task"] == job.sync_gateways.name
    assert entry["schedule"] == get_settings().chirpstack_gateway_sync_interval

"""The periodic jobs (rollups and analytics, alerts) and the analytics commands follow the
placement: for `kappa`, on the second server, they read the catalogue on the primary and
write the member's rows where its schema is (the primary holds none of it)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from psycopg.types.json import Jsonb
from typer.testing import CliRunner

from hypervision import accounts, placement
from hypervision.analytics import members
from hypervision.api.main import create_app
from hypervision.cli import app
from hypervision.db import connect_admin
from hypervision.jobs import alerts as alerts_job
from hypervision.jobs import rollups as rollups_job
from hypervision.settings import Settings, get_settings
from tests.scale.conftest import KAPPA_AIR, TwoServers, kappa_uplink

pytestmark = pytest.mark.services

AIR = KAPPA_AIR
LAMP = "9a9a9a9a9a9a0003"
SETUP = accounts.Who("system:test-setup")
RULE = {"name": "co2-k2", "metric": "air.co2", "condition": "above", "threshold": 1500,
        "duration": "10m", "severity": "warning", "devices": [AIR]}


@pytest.fixture
def placed(two_servers: TwoServers, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The jobs and the commands see the servers file, and the jobs the scale members only
    (the suite's other members keep the state their own tests expect); kappa gets an
    alert rule on CO2 and no alert yet (the second server's data folder outlives a run),
    taken away at the end."""
    settings = two_servers.settings
    everyone = members.members
    for job in (rollups_job, alerts_job):
        monkeypatch.setattr(job, "get_settings", lambda: settings)
        monkeypatch.setattr(job.members, "members", lambda admin, slug=None: [
            m for m in everyone(admin, slug) if m.slug in ("kappa", "sigma")])
    get_settings.cache_clear()
    with placement.connect_admin(settings, "second") as second:
        second.execute("TRUNCATE tenant_kappa.alerts CASCADE")
    with connect_admin(settings) as conn:
        spec = conn.execute("SELECT spec FROM hv.members WHERE slug = 'kappa'").fetchone()[0]
        conn.execute("UPDATE hv.members SET spec = %s WHERE slug = 'kappa'",
                     (Jsonb({**spec, "alerts": [RULE]}),))
    try:
        yield settings
    finally:
        get_settings.cache_clear()
        with connect_admin(settings) as conn:
            conn.execute("UPDATE hv.members SET spec = %s WHERE slug = 'kappa'", (Jsonb(spec),))


def _uplink_on_second(settings: Settings, at: dt.datetime, dedup: uuid.UUID) -> None:
    """One uplink of kappa's air sensor, received at `at`, written on the second server."""
    with placement.connect_admin(settings, "second") as second:
        kappa_uplink(second, at, dedup)


def test_tenants_apply_copies_the_devices_of_a_member_on_another_server_there(
    two_servers: TwoServers,
) -> None:
    with placement.connect_admin(two_servers.settings, "second") as second:
        copied = second.execute(
            "SELECT dev_eui, name, active FROM tenant_kappa.analytics_devices ORDER BY 1"
        ).fetchall()
    assert copied == [("9a9a9a9a9a9a0001", "Water K1", True), (AIR, "Air K2", True),
                      (LAMP, "Lighting K3", True)]


def test_the_rollup_and_alert_jobs_work_on_the_members_server(placed: Settings) -> None:
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    since = (now - dt.timedelta(minutes=30)).replace(minute=0)
    with placement.connect_admin(placed, "second") as second:
        # The sensor's last half hour is 1800 ppm, whatever the ingest tests sent it.
        second.execute("DELETE FROM tenant_kappa.measurements WHERE dev_eui = %s"
                       " AND metric = 'air.co2' AND time >= %s", (AIR, since))
        for minute in range(1, 31):
            at = now - dt.timedelta(minutes=minute)
            second.execute(sql.SQL(
                "INSERT INTO {} (time, dev_eui, metric, value, unit, deduplication_id)"
                " VALUES (%s, %s, 'air.co2', 1800, 'ppm', %s) ON CONFLICT DO NOTHING"
            ).format(sql.Identifier("tenant_kappa", "measurements")),
                (at, AIR, uuid.uuid5(uuid.NAMESPACE_URL, f"hv-test:jobs:{at.isoformat()}")))

    refreshed = rollups_job.refresh_all()
    assert set(refreshed) == {"kappa", "sigma"}  # a member on each server
    opened = alerts_job.evaluate_all()
    assert opened["kappa"] == 1

    with placement.connect_admin(placed, "second") as second:
        # The hours just written are rolled up from the readings they hold.
        rolled, read = second.execute(
            "SELECT (SELECT sum(n) FROM tenant_kappa.rollup_hourly WHERE dev_eui = %(d)s"
            " AND metric = 'air.co2' AND bucket >= %(since)s),"
            " (SELECT count(*) FROM tenant_kappa.measurements WHERE dev_eui = %(d)s"
            " AND metric = 'air.co2' AND time >= %(since)s)", {"d": AIR, "since": since}
        ).fetchone()
        assert rolled == read >= 30
        assert second.execute(
            "SELECT rule, dev_eui, state FROM tenant_kappa.alerts").fetchall() == [
            ("co2-k2", AIR, "open")]
    with connect_admin(placed) as primary:
        assert primary.execute("SELECT to_regclass('tenant_kappa.alerts')").fetchone() == (None,)

    # The commands read the member where it is too.
    runner = CliRunner()
    status = runner.invoke(app, ["rollups", "status", "--member", "kappa"])
    assert status.exit_code == 0, status.output
    assert "kappa" in status.output
    listed = runner.invoke(app, ["alerts", "list", "kappa"])
    assert listed.exit_code == 0, listed.output
    assert "co2-k2" in listed.output
    with connect_admin(placed) as primary:
        assert primary.execute(
            "SELECT count(*) FROM hv.audit_log WHERE member_slug = 'kappa'"
            " AND action = 'alerts.read'").fetchone()[0] >= 1

    # A person acknowledges it from the CLI, another closes it through the API: the
    # change on the member's server, its audit entry on the primary.
    with placement.connect_admin(placed, "second") as second:
        (alert_id,) = second.execute("SELECT id FROM tenant_kappa.alerts").fetchone()
    acked = runner.invoke(app, ["alerts", "ack", "kappa", str(alert_id), "--by", "Jo"])
    assert acked.exit_code == 0, acked.output
    with connect_admin(placed) as primary:
        accounts.upsert_account(primary, SETUP, email="hugo@kappa.example.org", name="Hugo",
                                member="kappa", rights=["read", "admin"])
        token = accounts.create_token(primary, SETUP, email="hugo@kappa.example.org").secret
    with TestClient(create_app(placed)) as client:
        closed = client.post(f"/api/v1/members/kappa/alerts/{alert_id}/close",
                             json={"reason": "fenêtres ouvertes"},
                             headers={"Authorization": f"Bearer {token}"})
    assert closed.status_code == 200, closed.text
    assert closed.json()["state"] == "closed"
    with placement.connect_admin(placed, "second") as second:
        assert second.execute(
            "SELECT state, acknowledged_by, close_reason FROM tenant_kappa.alerts"
        ).fetchone() == ("closed", "Jo", "fenêtres ouvertes")
    with connect_admin(placed) as primary:
        assert primary.execute(
            "SELECT action, after ->> 'state' FROM hv.audit_log WHERE member_slug = 'kappa'"
            " AND action IN ('alerts.acknowledge', 'alerts.close') AND target = %s"
            " ORDER BY id", (f"alert:{alert_id}",)).fetchall() == [
            ("alerts.acknowledge", "acknowledged"), ("alerts.close", "closed")]


def test_storage_downlinks_and_the_ingestion_watch_read_each_members_server(
    placed: Settings,
) -> None:
    from hypervision import usage
    from hypervision.chirpstack import downlinks
    from hypervision.syndicate import incident_detectors

    heard = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)  # later than any other uplink
    dedup = uuid.uuid4()
    _uplink_on_second(placed, heard, dedup)
    try:
        with connect_admin(placed) as primary, \
                placement.Connections(placed, primary) as servers:
            # Storage is measured where the schema is (the primary has none of kappa's).
            with primary.transaction():
                assert usage.snapshot_storage(servers) >= 2
            size = primary.execute(
                "SELECT bytes FROM hv.storage_usage WHERE member_slug = 'kappa'"
                " AND day = current_date").fetchone()
            assert size is not None and size[0] > 0
            # Downlinks are tracked on the member's server.
            assert "kappa" in downlinks.track_all(servers)
            # The ingestion watch sees kappa's uplink, the latest of all.
            assert incident_detectors.last_uplink(servers, dt.datetime.now(dt.UTC)) == heard
    finally:
        with placement.connect_admin(placed, "second") as second:
            second.execute("DELETE FROM tenant_kappa.uplinks WHERE deduplication_id = %s",
                           (dedup,))


def test_retention_removes_a_remote_members_expired_rows_and_audits_on_the_primary(
    placed: Settings,
) -> None:
    from hypervision import retention

    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=60)
    dedup = uuid.uuid4()
    with connect_admin(placed) as primary:
        spec = primary.execute("SELECT spec FROM hv.members WHERE slug = 'kappa'").fetchone()[0]
        primary.execute("UPDATE hv.members SET spec = %s WHERE slug = 'kappa'",
                        (Jsonb({**spec, "retention": {"raw": 30}}),))
    _uplink_on_second(placed, old, dedup)
    try:
        with connect_admin(placed) as primary, \
                placement.Connections(placed, primary) as servers:
            (planned,) = retention.plan(primary, members=["kappa"], servers=servers)
            # Counted under the device's data class; the old chunk goes whole.
            assert planned.counts()[("uplinks", "indoor-air")] >= 1
            (done,) = retention.run(primary, members=["kappa"], servers=servers,
                                    actor="system:test")
            assert done.removed[("uplinks", "indoor-air")] >= 1
            audited = primary.execute(
                "SELECT rows FROM hv.audit_log WHERE id = %s AND member_slug = 'kappa'"
                " AND action = 'retention.run'", (done.audit_id,)).fetchone()
            assert audited == (sum(done.removed.values()),)
            # Without the other servers' connections, it says so rather than skip it.
            with pytest.raises(placement.PlacementError, match="server second"):
                retention.run(primary, members=["kappa"])
        with placement.connect_admin(placed, "second") as second:
            assert second.execute(
                "SELECT count(*) FROM tenant_kappa.uplinks WHERE time < now() - interval"
                " '30 days'").fetchone() == (0,)
    finally:
        with connect_admin(placed) as primary:
            primary.execute("UPDATE hv.members SET spec = %s WHERE slug = 'kappa'",
                            (Jsonb(spec),))


def test_a_downlink_to_a_remote_members_device_is_recorded_on_its_server(
    placed: Settings,
) -> None:
    from chirpstack_api import api

    from hypervision.chirpstack import downlinks
    from hypervision.chirpstack.client import ChirpStack
    from tests.chirpstack.fake_chirpstack import FakeChirpStack
    from tests.conftest import PORT_BASE

    server = FakeChirpStack(PORT_BASE + 818, "scale-token").start()
    try:
        server.store.devices[LAMP] = api.Device(dev_eui=LAMP, name="Lighting K3")
        with ChirpStack(server.target, "scale-token", timeout=5) as client, \
                connect_admin(placed) as primary, \
                placement.Connections(placed, primary) as servers:
            sent = downlinks.enqueue(
                primary, client, LAMP, "switch", {"circuits": "1", "state": "on"},
                who=accounts.Who("system:test-scale"), member_conn=servers.get("second"))
            assert primary.execute(
                "SELECT count(*) FROM hv.audit_log WHERE action = 'downlink.enqueue'"
                " AND member_slug = 'kappa' AND after ->> 'queue_item_id' = %s",
                (sent.queue_item_id,)).fetchone() == (1,)
            assert primary.execute("SELECT to_regclass('tenant_kappa.downlinks')"
                                   ).fetchone() == (None,)
        with placement.connect_admin(placed, "second") as second:
            assert second.execute(
                "SELECT command, status FROM tenant_kappa.downlinks WHERE queue_item_id = %s",
                (sent.queue_item_id,)).fetchone() == ("switch", "queued")
        (item,) = server.store.queue[LAMP]
        assert item.id == sent.queue_item_id
    finally:
        server.stop()


def test_receipts_older_than_the_setting_are_deleted_on_every_server(placed: Settings) -> None:
    from hypervision.jobs import receipts

    old, new = uuid.uuid4().bytes, uuid.uuid4().bytes
    with connect_admin(placed) as primary, \
            placement.Connections(placed, primary) as servers:
        second = servers.get("second")
        for conn, table, column in ((second, "ingest_receipts", "written_at"),
                                    (primary, "ingest_counted", "counted_at")):
            extra = ", server" if table == "ingest_counted" else ", counts"
            value = "'second'" if table == "ingest_counted" else "'{}'::jsonb"
            for key, age in ((old, "8 days"), (new, "6 days")):
                conn.execute(sql.SQL(
                    "INSERT INTO {} (key, member_slug, {}{}) VALUES (%s, 'kappa',"
                    " now() - %s::interval, {})").format(
                    sql.Identifier("hv", table), sql.Identifier(column), sql.SQL(extra),
                    sql.SQL(value)), (key, age))
        deleted = receipts.prune(servers, placed)  # seven days by default
        assert deleted["second"] >= 1 and deleted["main"] >= 1
        for conn, table in ((second, "ingest_receipts"), (primary, "ingest_counted")):
            kept = {bytes(k) for (k,) in conn.execute(sql.SQL(
                "SELECT key FROM {} WHERE key = ANY(%s)").format(sql.Identifier("hv", table)),
                ([old, new],)).fetchall()}
            assert kept == {new}, table
            conn.execute(sql.SQL("DELETE FROM {} WHERE key = %s").format(
                sql.Identifier("hv", table)), (new,))

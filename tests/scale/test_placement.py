"""Placement as code: the servers file, tenant files naming a server, `tenants apply`
creating a member's schema and roles on its server while the catalogue stays on the
primary."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import yaml

from hypervision import placement
from hypervision.db import connect_admin
from hypervision.settings import Settings
from hypervision.tenancy import apply as tenancy
from hypervision.tenancy.spec import load_dir
from ingest.decode import Catalogue
from tests.scale.conftest import SCALE_TENANTS, TwoServers

pytestmark = pytest.mark.services


def _file(tmp_path: Path, servers: list[dict[str, object]]) -> Path:
    path = tmp_path / "servers.yaml"
    path.write_text(yaml.safe_dump({"version": "v1", "kind": "database_servers",
                                    "servers": servers}), encoding="utf-8")
    return path


@pytest.mark.parametrize(("servers", "message"), [
    ([{"name": "a", "role": "primary"}, {"name": "a", "role": "members", "host": "h",
                                          "port": 5432, "database": "d", "admin_url": "x"}],
     "declared twice: a"),
    ([{"name": "b", "role": "members", "host": "h", "port": 5432, "database": "d"}],
     "missing admin_url or admin_url_file"),
    ([{"name": "a", "role": "primary", "host": "h"}], "the primary's connection"),
    ([{"name": "a", "role": "primary"}, {"name": "c", "role": "primary"}],
     "more than one server has role primary"),
    ([{"name": "a", "role": "primary", "colour": "blue"}], "colour"),
])
def test_it_refuses_a_wrong_servers_file_saying_why(two_servers: TwoServers, tmp_path: Path,
                                                    servers: list[dict[str, object]],
                                                    message: str) -> None:
    settings = two_servers.settings.model_copy(
        update={"database_servers_file": _file(tmp_path, servers)})
    with pytest.raises(placement.PlacementError, match=message):
        placement.load_servers(settings)


def test_the_superusers_secret_of_a_server_is_read_only_when_it_is_asked_for(
    settings: Settings, tmp_path: Path
) -> None:
    """A worker host reads the servers file for its login role's addresses and holds no
    superuser's secret (tests/scale/test_network_namespaces.py runs workers so)."""
    secret = tmp_path / "second_admin"
    servers = [{"name": "main", "role": "primary"},
               {"name": "second", "role": "members", "host": "198.18.0.12", "port": 5432,
                "database": "hypervision", "admin_url_file": str(secret)}]
    worker = settings.model_copy(update={"database_servers_file": _file(tmp_path, servers)})
    assert placement.server(worker, "second").describe() == (
        "second (members, 198.18.0.12:5432/hypervision)")
    with pytest.raises(placement.PlacementError,
                       match=f"server second: admin_url_file {secret}: No such file"):
        placement.admin_conninfo(worker, "second")
    secret.write_text("host=198.18.0.12 user=hv_admin\n", encoding="utf-8")
    assert placement.admin_conninfo(worker, "second") == "host=198.18.0.12 user=hv_admin"


def test_without_a_servers_file_there_is_one_server_the_primary(two_servers: TwoServers) -> None:
    settings = two_servers.settings.model_copy(update={"database_servers_file": None})
    assert list(placement.load_servers(settings)) == ["primary"]
    assert placement.server(settings, None).primary


def test_a_tenant_file_naming_an_unknown_server_is_refused_naming_file_and_servers(
    two_servers: TwoServers, tmp_path: Path
) -> None:
    text = (SCALE_TENANTS / "kappa.yaml").read_text(encoding="utf-8")
    (tmp_path / "omega.yaml").write_text(
        text.replace("name: kappa", "name: omega").replace("server: second", "server: nowhere")
        .replace("9a9a9a9a9a9a", "e5e5e5e5e5e5"), encoding="utf-8")
    with connect_admin(two_servers.settings) as conn, pytest.raises(
            placement.PlacementError,
            match=r"tenants/omega.yaml: server: unknown database server 'nowhere'.*main, second"):
        tenancy.plan(conn, load_dir(tmp_path), Catalogue.load(), two_servers.settings)


def test_apply_creates_the_member_on_its_server_and_the_catalogue_on_the_primary(
    two_servers: TwoServers
) -> None:
    with connect_admin(two_servers.settings) as primary, \
            placement.connect_admin(two_servers.settings, "second") as second:
        assert primary.execute("SELECT server FROM hv.members WHERE slug = 'kappa'"
                               ).fetchone() == ("second",)
        assert primary.execute("SELECT count(*) FROM hv.devices WHERE member_slug = 'kappa'"
                               ).fetchone() == (3,)
        here = "SELECT count(*) FROM pg_namespace WHERE nspname = %s"
        assert primary.execute(here, ("tenant_kappa",)).fetchone() == (0,)
        assert second.execute(here, ("tenant_kappa",)).fetchone() == (1,)
        assert second.execute(here, ("tenant_alpha",)).fetchone() == (0,)
        # The second server has the control schema's structure, none of its rows.
        assert second.execute("SELECT count(*) FROM hv.members").fetchone() == (0,)
        assert second.execute("SELECT to_regclass('tenant_kappa.uplinks') IS NOT NULL"
                              ).fetchone() == (True,)
        # Hypertables, as on the primary.
        assert second.execute(
            "SELECT count(*) FROM timescaledb_information.hypertables"
            " WHERE hypertable_schema = 'tenant_kappa'").fetchone()[0] >= 3

    # The member's reader logs in on the second server with its one password.
    with placement.connect_as(two_servers.settings, "second", "kappa_reader") as reader:
        assert reader.execute("SELECT count(*) FROM tenant_kappa.uplinks").fetchone() is not None
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("SELECT count(*) FROM hv.ingest_receipts")


def test_apply_twice_changes_nothing_and_plan_shows_a_move_to_make(
    two_servers: TwoServers
) -> None:
    specs = load_dir(SCALE_TENANTS)
    with connect_admin(two_servers.settings) as conn:
        steps = tenancy.apply(conn, specs, Catalogue.load(), two_servers.settings,
                              log=lambda _: None)
        assert [str(s) for s in steps if s.symbol in "+~-"] == []
        # kappa's file now names the primary: plan says how to move it, and apply leaves
        # it where it is.
        moved = [s.model_copy(update={"server": "main"}) if s.name == "kappa" else s
                 for s in specs]
        steps = tenancy.plan(conn, moved, Catalogue.load(), two_servers.settings)
        assert [str(s) for s in steps if s.symbol == "!" and "kappa" in s.what] == [
            "! kappa: on server second, its file names main: run"
            " `hypervision tenants move kappa --to main`"]
        assert conn.execute("SELECT server FROM hv.members WHERE slug = 'kappa'"
                            ).fetchone() == ("second",)


def test_migrate_applies_each_members_pending_migrations_on_its_own_server(
    two_servers: TwoServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`hypervision migrate` after an upgrade: kappa's pending migration runs on the second
    server, where its schema and its ledger are, and the primary gets none of it."""
    from hypervision import migrate
    from hypervision.commands import database

    monkeypatch.setattr(database, "settings_or_exit", lambda: two_servers.settings)
    latest = max(m.version for m in migrate.load(migrate.TENANT))
    ledger = "SELECT count(*) FROM hv.schema_migrations WHERE schema_name = 'tenant_kappa'"
    with placement.connect_admin(two_servers.settings, "second") as second:
        applied = second.execute(ledger).fetchone()
        second.execute("DELETE FROM hv.schema_migrations"
                       " WHERE schema_name = 'tenant_kappa' AND version = %s", (latest,))
        assert database.run_migrations() == 1
        assert second.execute(ledger).fetchone() == applied
    with connect_admin(two_servers.settings) as primary:
        assert primary.execute(ledger).fetchone() == (0,)
        assert primary.execute("SELECT to_regnamespace('tenant_kappa')").fetchone() == (None,)
    assert database.run_migrations() == 0

"""Applying members creates their schemas and roles; isolation holds in the database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from hypervision.db import connect_as
from hypervision.tenancy import apply as tenancy
from hypervision.tenancy.spec import load_dir
from ingest.decode import Catalogue
from tests.conftest import TENANTS

pytestmark = pytest.mark.services


def test_applying_twice_changes_nothing_the_second_time(platform_db: Any,
                                                        admin: psycopg.Connection) -> None:
    # Other tests may have changed things (accounts, devices): the first apply puts the
    # files' state back, the second finds nothing to do.
    tenancy.apply(admin, load_dir(TENANTS), Catalogue.load(), platform_db, log=lambda _: None)
    steps = tenancy.apply(admin, load_dir(TENANTS), Catalogue.load(), platform_db,
                          log=lambda _: None)
    assert [str(s) for s in steps if s.symbol != "="] == []


def test_each_member_owns_its_tables(admin: psycopg.Connection) -> None:
    owners = dict(admin.execute(
        "SELECT schemaname || '.' || tablename, tableowner FROM pg_tables"
        " WHERE schemaname IN ('tenant_alpha', 'tenant_beta')"
    ).fetchall())
    assert owners["tenant_alpha.uplinks"] == "alpha_owner"
    assert owners["tenant_beta.measurements"] == "beta_owner"
    hypertables = {r[0] for r in admin.execute(
        "SELECT hypertable_schema || '.' || hypertable_name"
        " FROM timescaledb_information.hypertables"
    ).fetchall()}
    assert {"tenant_alpha.uplinks", "tenant_alpha.measurements",
            "tenant_beta.uplinks", "tenant_beta.device_events"} <= hypertables


def test_a_members_reader_reads_its_own_data_and_nothing_of_another_member(
    platform_db: Any,
) -> None:
    with connect_as(platform_db, "alpha_reader", autocommit=True) as alpha:
        assert alpha.execute("SELECT current_user").fetchone()[0] == "alpha_reader"
        alpha.execute("SELECT count(*) FROM tenant_alpha.uplinks").fetchone()
        alpha.execute("SELECT count(*) FROM tenant_alpha.measurements").fetchone()
        for forbidden in ("tenant_beta.uplinks", "tenant_beta.measurements", "hv.devices",
                          "hv.dead_letters"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                alpha.execute(f"SELECT count(*) FROM {forbidden}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            alpha.execute("DELETE FROM tenant_alpha.uplinks")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            alpha.execute("SET ROLE beta_reader")


def test_a_wrong_password_is_refused(platform_db: Any, tmp_path: Path) -> None:
    from hypervision.settings import Settings

    (tmp_path / "alpha_reader").write_text("0" * 64)
    other = Settings(pg_port=platform_db.pg_port, data_dir=platform_db.data_dir,
                     role_secrets_dir=tmp_path)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect_as(other, "alpha_reader")


def test_the_ingest_role_cannot_read_the_members_raw_data_directly(platform_db: Any) -> None:
    with connect_as(platform_db, platform_db.ingest_role, autocommit=True) as ingest:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            ingest.execute("SELECT count(*) FROM tenant_alpha.uplinks")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            ingest.execute("DELETE FROM hv.dead_letters")


def test_removing_a_device_deactivates_it_and_keeps_its_data(
    platform_db: Any, admin: psycopg.Connection, tmp_path: Path
) -> None:
    original = (TENANTS / "beta.yaml").read_text()
    lines = [line for line in original.splitlines() if "b2b2b2b2b2b20003" not in line]
    (tmp_path / "alpha.yaml").write_text((TENANTS / "alpha.yaml").read_text())
    (tmp_path / "beta.yaml").write_text("\n".join(lines) + "\n")
    catalogue = Catalogue.load()
    try:
        steps = tenancy.plan(admin, load_dir(tmp_path), catalogue, platform_db)
        assert [str(s) for s in steps if s.symbol == "-"] == [
            "- beta: device b2b2b2b2b2b20003 deactivated (its data is kept)"]
        tenancy.apply(admin, load_dir(tmp_path), catalogue, platform_db, log=lambda _: None)
        assert admin.execute("SELECT active FROM hv.devices WHERE dev_eui = 'b2b2b2b2b2b20003'"
                             ).fetchone() == (False,)
    finally:
        tenancy.apply(admin, load_dir(TENANTS), catalogue, platform_db, log=lambda _: None)
    assert admin.execute("SELECT active FROM hv.devices WHERE dev_eui = 'b2b2b2b2b2b20003'"
                         ).fetchone() == (True,)

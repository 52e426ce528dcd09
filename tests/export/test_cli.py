"""`hypervision export` and `hypervision tenant export|import` as an operator runs them:
files written, cursor printed and kept, audit entries, clear errors."""

from __future__ import annotations

import re
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from hypervision.commands import export as export_commands
from hypervision.settings import Settings
from hypervision.tenancy.spec import TenantSpec
from tests.export.conftest import Ingest, topic, uplink_event

pytestmark = pytest.mark.services

T0 = datetime(2025, 4, 1, 8, tzinfo=UTC)


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    export_commands.register(app)
    return app


def audit_entries(admin: psycopg.Connection, slug: str) -> list[tuple]:
    """The member's audit entries written by these commands."""
    return admin.execute(
        "SELECT actor, action, target, rows, source, params->>'completed',"
        " params->>'recipient' FROM hv.audit_log WHERE member_slug = %s"
        " AND (action LIKE 'export.%%' OR action IN ('tenant.export', 'tenant.import'))"
        " ORDER BY id", (slug,)).fetchall()


def test_an_export_writes_its_file_prints_and_keeps_the_cursor_and_is_audited(
    cli: CliRunner, app: typer.Typer, admin: psycopg.Connection, member: TenantSpec,
    ingest: Ingest, tmp_path: Path
) -> None:
    ingest((topic(member, 1), uplink_event(member, 1, T0, f_cnt=1)))
    out, cursor_file = tmp_path / "m.csv", tmp_path / "cursor"
    args = ["export", member.name, "--kind", "measurements", "--format", "csv", "-o", str(out),
            "--cursor-file", str(cursor_file)]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "time,dev_eui,device_name,metric,value,unit"
    assert len(lines) == 5 and "CO2 école salle 3" in lines[1]
    printed = re.search(r"next cursor: (hv2\.\S+)", result.output)
    assert printed and cursor_file.read_text().strip() == printed[1]
    assert "4 rows written" in result.output

    # The next run reads the cursor file: only what came since.
    ingest((topic(member, 1), uplink_event(member, 1, T0 + timedelta(hours=1), f_cnt=2,
                                           values={"co2": 500})))
    assert cli.invoke(app, args).exit_code == 0
    assert out.read_text(encoding="utf-8").splitlines()[1:] == [
        f"2025-04-01T09:00:00.000000Z,{member.devices[1].dev_eui},CO2 école salle 3,"
        "air.co2,500.0,ppm"]
    assert cursor_file.read_text().strip() != printed[1]

    entries = audit_entries(admin, member.name)
    assert [e[1:] for e in entries] == [
        ("export.csv", "measurements", 4, "cli", "true", None),
        ("export.csv", "measurements", 1, "cli", "true", None),
    ]
    assert all(e[0].startswith("cli:") for e in entries)


def test_an_export_for_a_third_party_is_pseudonymised_and_errors_are_clear(
    cli: CliRunner, app: typer.Typer, admin: psycopg.Connection, member: TenantSpec,
    ingest: Ingest, tmp_path: Path
) -> None:
    ingest((topic(member, 0), uplink_event(member, 0, T0, f_cnt=1)))
    out = tmp_path / "u.jsonl"
    base = ["export", member.name, "--kind", "uplinks", "--format", "jsonl", "-o", str(out)]
    result = cli.invoke(app, [*base, "--recipient", "bureau-etudes", "--coarsen", "day",
                              "--actor", "user:dsi@example.org"])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert member.devices[0].dev_eui not in text and '"time":"2025-04-01T00:00:00.000000Z"' in text
    assert audit_entries(admin, member.name)[-1] == (
        "user:dsi@example.org", "export.jsonl", "uplinks", 1, "cli", "true", "bureau-etudes")

    # The internal recipient is not a third party: the data goes as is.
    assert cli.invoke(app, [*base, "--recipient", "regie"]).exit_code == 0
    assert member.devices[0].dev_eui in out.read_text(encoding="utf-8")

    for extra, message in [
        (["--recipient", "inconnu"], "no export recipient named 'inconnu'"),
        (["--cursor", "hv1.garbage"], "bad cursor"),
        (["--metric", "air.co2"], "measurements only"),
    ]:
        result = cli.invoke(app, [*base, *extra])
        assert result.exit_code == 1 and message in result.output, result.output
    result = cli.invoke(app, ["export", "nobody", "--kind", "uplinks", "--format", "csv",
                              "-o", str(out)])
    assert result.exit_code == 1 and "no member named 'nobody'" in result.output
    assert not (tmp_path / "u.jsonl.partial").exists()


def test_tenant_export_and_import_commands(
    cli: CliRunner, app: typer.Typer, admin: psycopg.Connection, platform_db: Settings,
    member: TenantSpec, ingest: Ingest, tmp_path: Path
) -> None:
    ingest((topic(member, 1), uplink_event(member, 1, T0, f_cnt=1)))
    path = tmp_path / "member.tar.gz"
    result = cli.invoke(app, ["tenant", "export", member.name, "-o", str(path)])
    assert result.exit_code == 0, result.output
    fingerprint = re.search(r"fingerprint \(SHA-256 of manifest.json\):\s+([0-9a-f]{64})",
                            result.output)
    assert fingerprint and tarfile.is_tarfile(path)

    # It cannot be imported over the member it came from (a round trip into another
    # instance: tests/export/test_archive.py), nor with another fingerprint.
    result = cli.invoke(app, ["tenant", "import", str(path), "--fingerprint", fingerprint[1]])
    assert result.exit_code == 1 and "already a member here" in result.output, result.output
    result = cli.invoke(app, ["tenant", "import", str(path), "--fingerprint", "0" * 64])
    assert result.exit_code == 1 and "fingerprint" in result.output
    actions = [e[1] for e in audit_entries(admin, member.name)]
    assert actions == ["tenant.export"]

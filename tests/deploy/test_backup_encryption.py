"""Backups encrypted at rest with age: nothing readable without the private key, the key
never in the backup folder, a wrong key refused before anything changes, the right one
bringing every row back."""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer import Typer
from typer.testing import CliRunner

from hypervision import backup
from hypervision import backup_encryption as age
from hypervision.commands import backup as backup_commands
from hypervision.settings import Settings
from tests.deploy.test_backup_restore import snapshot, table_checksums

pytestmark = pytest.mark.services


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Any]:
    """A key pair, the private half outside the backup folder, and a stranger's key."""
    folder = tmp_path / "keys"
    folder.mkdir()
    public = age.generate(folder / "backup-key.txt")
    age.generate(folder / "other-key.txt")
    return {"public": public, "identity": folder / "backup-key.txt",
            "other": folder / "other-key.txt"}


@pytest.fixture
def encrypted(scratch: Settings, keys: dict[str, Any]) -> Settings:
    return scratch.model_copy(update={"backup_unencrypted": False,
                                      "backup_age_recipients": keys["public"]})


def plain_markers(path: Path) -> list[str]:
    """What would show that a file is readable as is: pg_dump's header, gzip's magic,
    COPY rows (tab-separated text), SQL."""
    data = path.read_bytes()
    found = []
    if data.startswith(b"PGDMP"):
        found.append("pg_dump header")
    if data.startswith(b"\x1f\x8b"):
        found.append("gzip magic")
    if b"CREATE TABLE" in data or b"tenant_alpha" in data:
        found.append("SQL")
    return found


def test_an_archive_is_unreadable_without_the_key(
    encrypted: Settings, scratch_admin: psycopg.Connection[Any], keys: dict[str, Any],
) -> None:
    archive = backup.run_backup(encrypted)
    files = [p for p in archive.path.rglob("*") if p.is_file()]
    data_files = [p for p in files if p.name not in ("manifest.json", "SHA256SUMS")]
    assert data_files and all(p.suffix == ".age" for p in data_files)
    assert {p.name for p in data_files} >= {"hv_backup_test.dump.age", "measurements.copy.gz.age"}
    for path in data_files:
        assert path.read_bytes().startswith(b"age-encryption.org/v1\n"), path
        assert plain_markers(path) == [], path
        assert path.stat().st_mode & 0o077 == 0
    # No plain copy of any table was left behind, and no key.
    assert not [p for p in files if p.name.endswith((".dump", ".gz"))]
    assert not [p for p in files if b"AGE-SECRET-KEY" in p.read_bytes()]
    # The manifest says how it is encrypted; checksums still verify without the key.
    manifest = json.loads((archive.path / "manifest.json").read_text())
    assert manifest["encryption"]["recipients"] == [keys["public"]]
    assert backup.verify(archive) == []
    check = subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"],
                           cwd=archive.path, capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    # pg_restore itself cannot read the dump.
    listing = subprocess.run(
        [str(encrypted.pg_bin_dir / "pg_restore"), "--list",
         str(archive.path / "databases" / "hv_backup_test.dump.age")],
        capture_output=True, text=True, check=False)
    assert listing.returncode != 0
    # With the key, the files are what they were: a dump, and gzip COPY rows.
    identities = age.load_identities(keys["identity"], backup.backup_dir(encrypted))
    alpha = next(m for m in manifest["members"] if m["slug"] == "alpha")
    measurements = next(t for t in alpha["tables"] if t["name"] == "measurements")
    with age.decrypting(archive.path / measurements["file"], identities) as plain, \
            gzip.GzipFile(fileobj=plain) as rows:
        assert sum(1 for _ in rows) == measurements["rows"] > 2000


def test_a_backup_without_a_public_key_is_refused_unless_plain_is_asked_for(
    scratch: Settings,
) -> None:
    strict = scratch.model_copy(update={"backup_unencrypted": False})
    with pytest.raises(backup.BackupError, match="HV_BACKUP_AGE_RECIPIENTS"):
        backup.run_backup(strict, member="alpha")
    assert backup.list_archives(strict) == []
    plain = backup.run_backup(strict, member="alpha", unencrypted=True)
    assert plain.manifest["encryption"] is None
    bad = strict.model_copy(update={"backup_age_recipients": "age1notakey"})
    with pytest.raises(backup.BackupError, match="not an age public key"):
        backup.run_backup(bad, member="alpha")


def test_a_wrong_key_is_refused_and_restores_nothing(
    encrypted: Settings, scratch_admin: psycopg.Connection[Any], keys: dict[str, Any],
) -> None:
    archive = backup.run_backup(encrypted)
    scratch_admin.execute("DELETE FROM tenant_alpha.measurements WHERE time < now()")
    before = table_checksums(scratch_admin, "tenant_alpha")
    for restore in (
        lambda: backup.restore_member(encrypted, archive, "alpha", identity=keys["other"]),
        lambda: backup.restore_databases(encrypted, archive, identity=keys["other"]),
    ):
        with pytest.raises(backup.BackupError, match="does not open archive"):
            restore()
    assert table_checksums(scratch_admin, "tenant_alpha") == before
    databases = [r[0] for r in scratch_admin.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE 'hv_backup_test_%'")]
    assert databases == []
    # No key at all: told how to give one.
    with pytest.raises(backup.BackupError, match="--identity"):
        backup.restore_member(encrypted, archive, "alpha")


def test_a_key_inside_the_backup_folder_is_refused(
    encrypted: Settings, keys: dict[str, Any],
) -> None:
    archive = backup.run_backup(encrypted, member="alpha")
    inside = backup.backup_dir(encrypted) / "key.txt"
    inside.write_bytes(keys["identity"].read_bytes())
    with pytest.raises(backup.BackupError, match="inside the backup folder"):
        backup.restore_member(encrypted, archive, "alpha", identity=inside)


def test_the_right_key_brings_every_row_back(
    encrypted: Settings, scratch_admin: psycopg.Connection[Any], keys: dict[str, Any],
) -> None:
    expected = snapshot(scratch_admin)
    archive = backup.run_backup(encrypted)
    scratch_admin.execute("DELETE FROM tenant_alpha.measurements WHERE time < now()")
    assert table_checksums(scratch_admin, "tenant_alpha") != expected["tenant_alpha"]
    settings = encrypted.model_copy(update={"backup_age_identity_file": keys["identity"]})
    rows = backup.restore_member(settings, archive, "alpha")
    assert rows > 0
    assert table_checksums(scratch_admin, "tenant_alpha") == expected["tenant_alpha"]

    # And the whole database, from the encrypted dump.
    scratch_admin.close()
    backup.restore_databases(settings, archive)
    from hypervision.db import connect_admin

    with connect_admin(settings) as conn:
        after = snapshot(conn)
    # Every member's rows as archived (the audit trail gained the backup and restores).
    for schema in ("tenant_alpha", "tenant_beta"):
        assert after[schema] == expected[schema], schema
    assert after["hv"]["members"] == expected["hv"]["members"]


def test_the_cli_makes_a_key_and_restores_with_it(
    scratch: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.setattr("hypervision.commands.backup.settings_or_exit",
                        lambda: settings)
    settings = scratch
    app = Typer()
    backup_commands.register(app)
    app.command("noop")(lambda: None)
    runner = CliRunner()
    key = tmp_path / "cli-key.txt"
    made = runner.invoke(app, ["backup", "keygen", "--output", str(key)])
    assert made.exit_code == 0, made.output
    public = made.output.strip().splitlines()[-1].split("=", 1)[1]
    assert public.startswith("age1") and key.stat().st_mode & 0o077 == 0
    again = runner.invoke(app, ["backup", "keygen", "--output", str(key)])
    assert again.exit_code == 1 and "exists already" in again.output
    settings = scratch.model_copy(update={"backup_unencrypted": False,
                                          "backup_age_recipients": public})
    run = runner.invoke(app, ["backup", "run", "--member", "alpha"])
    assert run.exit_code == 0, run.output
    name = backup.list_archives(settings)[0].name
    refused = runner.invoke(app, ["backup", "restore", name, "--member", "alpha", "--yes"])
    assert refused.exit_code == 1 and "--identity" in refused.output
    done = runner.invoke(app, ["backup", "restore", name, "--member", "alpha", "--yes",
                               "--identity", str(key)])
    assert done.exit_code == 0, done.output
    assert "rows restored" in done.output

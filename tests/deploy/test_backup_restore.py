"""Backups round-trip: back up, lose data, restore, and find every row as it was.

Row checksums compare each table's rows as text, sorted; the hypertables are read through
their parents, so rows that TimescaleDB keeps in chunks count too.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from typer import Typer
from typer.testing import CliRunner

from hypervision import audit, backup, dump
from hypervision.commands import backup as backup_commands
from hypervision.db import connect_admin, connect_as
from hypervision.settings import Settings

pytestmark = pytest.mark.services

MEMBER_SCHEMAS = ("tenant_alpha", "tenant_beta")


def table_checksums(conn: psycopg.Connection[Any], schema: str) -> dict[str, tuple[int, str]]:
    """(rows, md5 of the sorted rows) of every table of a schema."""
    tables = [r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY 1", (schema,))]
    result = {}
    for table in tables:
        row = conn.execute(sql.SQL(
            "SELECT count(*), coalesce(md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))),"
            " '') FROM {} AS t").format(sql.Identifier(schema, table))).fetchone()
        assert row is not None
        result[table] = (row[0], row[1])
    return result


def snapshot(conn: psycopg.Connection[Any]) -> dict[str, dict[str, tuple[int, str]]]:
    return {schema: table_checksums(conn, schema) for schema in (*MEMBER_SCHEMAS, "hv")}


def public_can_connect(conn: psycopg.Connection[Any], database: str) -> bool:
    row = conn.execute("SELECT has_database_privilege('public', %s, 'CONNECT')",
                       (database,)).fetchone()
    assert row is not None
    return bool(row[0])


def test_a_full_archive_holds_checksummed_dumps_and_every_members_rows(
    scratch: Settings, scratch_admin: psycopg.Connection[Any],
) -> None:
    archive = backup.run_backup(scratch)

    assert archive.scope == "full"
    assert (archive.path / "databases" / "hv_backup_test.dump").is_file()
    assert backup.verify(archive) == []
    # SHA256SUMS is what `sha256sum -c` reads, so an operator can check without us.
    check = subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"],
                           cwd=archive.path, capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    manifest = json.loads((archive.path / "manifest.json").read_text())
    alpha = next(m for m in manifest["members"] if m["slug"] == "alpha")
    measurements = next(t for t in alpha["tables"] if t["name"] == "measurements")
    live = scratch_admin.execute("SELECT count(*) FROM tenant_alpha.measurements").fetchone()
    assert measurements["rows"] == live[0] > 2000  # type: ignore[index]
    with gzip.open(archive.path / measurements["file"], "rt") as rows:
        assert sum(1 for _ in rows) == measurements["rows"]
    # Archives hold personal data: only the owner may read them.
    assert archive.path.stat().st_mode & 0o077 == 0
    assert (archive.path / measurements["file"]).stat().st_mode & 0o077 == 0


def test_a_member_is_restored_from_a_full_archive_without_touching_the_others(
    scratch: Settings, scratch_admin: psycopg.Connection[Any],
) -> None:
    before = snapshot(scratch_admin)
    archive = backup.run_backup(scratch)

    # Loss in alpha; a legitimate new reading in beta after the backup.
    scratch_admin.execute("TRUNCATE tenant_alpha.measurements")
    scratch_admin.execute("DELETE FROM tenant_alpha.uplinks WHERE f_cnt % 2 = 0")
    scratch_admin.execute("UPDATE tenant_alpha.device_state SET uplinks_seen = 0")
    scratch_admin.execute(
        "INSERT INTO tenant_beta.measurements VALUES (now(), 'b2b2b2b2b2b20001', 'volume',"
        " 1.5, 'L', gen_random_uuid())")
    beta_after_backup = table_checksums(scratch_admin, "tenant_beta")
    assert table_checksums(scratch_admin, "tenant_alpha") != before["tenant_alpha"]

    rows = backup.restore_member(scratch, archive, "alpha")

    # Every table's rows but the schema's instance, which a restore leaves as it is.
    assert rows == sum(n for table, (n, _) in before["tenant_alpha"].items()
                       if table != dump.INSTANCE_TABLE)
    assert table_checksums(scratch_admin, "tenant_alpha") == before["tenant_alpha"]
    assert table_checksums(scratch_admin, "tenant_beta") == beta_after_backup
    # The rows went back into TimescaleDB's chunks, not into the hypertable's parent.
    only_parent = scratch_admin.execute(
        "SELECT count(*) FROM ONLY tenant_alpha.measurements").fetchone()
    chunks = scratch_admin.execute(
        "SELECT count(*) FROM timescaledb_information.chunks"
        " WHERE hypertable_schema = 'tenant_alpha' AND hypertable_name = 'measurements'"
    ).fetchone()
    assert only_parent == (0,)
    assert chunks is not None and chunks[0] > 10
    # The restore is in the audit trail, and the trail still verifies.
    entry = scratch_admin.execute(
        "SELECT action, member_slug, target FROM hv.audit_log ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert entry == ("backup.restore_member", "alpha", archive.name)
    assert audit.verify(scratch_admin).ok


def test_the_ingestion_role_can_write_a_restored_member_again(
    scratch: Settings, scratch_admin: psycopg.Connection[Any],
) -> None:
    archive = backup.run_backup(scratch, member="alpha")
    (saved,) = scratch_admin.execute("SELECT count(*) FROM tenant_alpha.measurements"
                                     ).fetchone() or (0,)
    assert saved > 0
    scratch_admin.execute("TRUNCATE tenant_alpha.measurements")
    backup.restore_member(scratch, archive, "alpha")

    # As the pipeline writes: the ingest login role, switched to the member's writer.
    with connect_as(scratch, scratch.ingest_role, autocommit=True) as conn:
        conn.execute("SET ROLE alpha_writer")
        written = conn.execute(
            "INSERT INTO tenant_alpha.measurements VALUES (now(), 'a1a1a1a1a1a10001',"
            " 'volume', 2.5, 'L', gen_random_uuid()) RETURNING metric, value").fetchall()
    assert written == [("volume", 2.5)]
    # The restored rows are back, and the new one is stored beside them.
    assert scratch_admin.execute(
        "SELECT count(*), count(*) FILTER (WHERE metric = 'volume' AND value = 2.5"
        " AND dev_eui = 'a1a1a1a1a1a10001' AND time > now() - interval '1 hour')"
        " FROM tenant_alpha.measurements").fetchone() == (saved + 1, 1)


def test_a_member_archive_holds_that_member_only(scratch: Settings) -> None:
    archive = backup.run_backup(scratch, member="beta")

    assert archive.scope == "member:beta"
    assert archive.members == ["beta"]
    assert not (archive.path / "databases").exists()
    with pytest.raises(backup.BackupError, match="--member beta"):
        backup.restore_databases(scratch, archive)
    with pytest.raises(backup.BackupError, match="no member 'alpha'"):
        backup.restore_member(scratch, archive, "alpha")


def test_the_whole_database_is_restored_after_it_was_dropped(
    scratch: Settings, platform_db: Settings,
) -> None:
    with connect_admin(scratch) as conn:
        before = snapshot(conn)
        last_audit = conn.execute("SELECT max(id) FROM hv.audit_log").fetchone()
    archive = backup.run_backup(scratch)
    with connect_admin(platform_db) as conn:
        conn.execute("DROP DATABASE hv_backup_test WITH (FORCE)")

    kept = backup.restore_databases(scratch, archive)

    assert kept == []  # nothing was live to keep aside
    with connect_admin(scratch) as conn:
        after = snapshot(conn)
        for schema in MEMBER_SCHEMAS:
            assert after[schema] == before[schema], schema
        for table, value in before["hv"].items():
            if table not in ("audit_log", "audit_head"):
                assert after["hv"][table] == value, table
        # The audit trail came back as archived, then the restore was appended to it (the
        # backup's own entry was written after its snapshot, so it is not in the archive).
        appended = conn.execute(
            "SELECT action FROM hv.audit_log WHERE id > %s ORDER BY id",
            (last_audit[0] or 0,)).fetchall()  # type: ignore[index]
        assert appended == [("backup.restore",)]
        assert audit.verify(conn).ok
        # TimescaleDB's catalogue came back: the hypertables are hypertables again.
        hypertables = conn.execute(
            "SELECT count(*) FROM timescaledb_information.hypertables"
            " WHERE hypertable_schema = ANY(%s)", (list(MEMBER_SCHEMAS),)).fetchone()
        assert hypertables is not None and hypertables[0] >= 6
        restoring = conn.execute("SHOW timescaledb.restoring").fetchone()
        assert restoring == ("off",)
        # The database's own privileges came back: PUBLIC still cannot connect.
        assert not public_can_connect(conn, "hv_backup_test")
    # The member reader roles can log in and read again.
    with connect_as(scratch, "alpha_reader") as reader:
        count = reader.execute("SELECT count(*) FROM tenant_alpha.measurements").fetchone()
        assert count == (before["tenant_alpha"]["measurements"][0],)


def test_a_whole_restore_keeps_the_live_database_aside_and_ends_its_sessions(
    scratch: Settings, platform_db: Settings,
) -> None:
    archive = backup.run_backup(scratch)
    with connect_admin(scratch) as conn:
        conn.execute("DROP SCHEMA tenant_beta CASCADE")
    lingering = connect_as(scratch, "alpha_reader", autocommit=True)

    kept = backup.restore_databases(scratch, archive)

    assert len(kept) == 1 and kept[0].startswith("hv_backup_test_before_")
    with pytest.raises(psycopg.OperationalError):
        lingering.execute("SELECT 1")
    lingering.close()
    with connect_admin(scratch) as conn:
        assert conn.execute("SELECT to_regnamespace('tenant_beta')").fetchone() != (None,)
    with connect_admin(scratch.model_copy(update={"pg_database": kept[0]})) as old:
        assert old.execute("SELECT to_regnamespace('tenant_beta')").fetchone() == (None,)


def test_a_damaged_archive_is_refused_before_anything_changes(
    scratch: Settings, scratch_admin: psycopg.Connection[Any],
) -> None:
    archive = backup.run_backup(scratch)
    alpha = next(m for m in archive.manifest["members"] if m["slug"] == "alpha")
    damaged = archive.path / alpha["tables"][0]["file"]
    damaged.chmod(0o600)
    with damaged.open("r+b") as handle:
        handle.seek(10)
        byte = handle.read(1)
        handle.seek(10)
        handle.write(bytes([byte[0] ^ 0xFF]))
    scratch_admin.execute("INSERT INTO tenant_alpha.measurements VALUES (now(),"
                          " 'a1a1a1a1a1a10001', 'volume', 9.5, 'L', gen_random_uuid())")
    before = table_checksums(scratch_admin, "tenant_alpha")

    with pytest.raises(backup.BackupError, match="checksum mismatch"):
        backup.restore_member(scratch, archive, "alpha")
    with pytest.raises(backup.BackupError, match="checksum mismatch"):
        backup.restore_databases(scratch, archive)

    assert table_checksums(scratch_admin, "tenant_alpha") == before
    assert [f for f in backup.verify(archive) if "mismatch" in f] == [
        f"{alpha['tables'][0]['file']}: checksum mismatch"]


def test_a_member_restore_needs_the_schema_and_says_how_to_recreate_it(
    scratch: Settings, scratch_admin: psycopg.Connection[Any],
) -> None:
    archive = backup.run_backup(scratch, member="alpha")
    scratch_admin.execute("DROP SCHEMA tenant_alpha CASCADE")
    scratch_admin.execute("DELETE FROM hv.schema_migrations WHERE schema_name = 'tenant_alpha'")

    with pytest.raises(backup.BackupError, match="hypervision tenants apply"):
        backup.restore_member(scratch, archive, "alpha")


# Rotation -------------------------------------------------------------------------------


def fake_archive(root: Path, when: datetime, scope: str = "full") -> Path:
    """An archive folder with only a manifest: enough for listing and rotation."""
    part = "full" if scope == "full" else f"member-{scope.split(':')[1]}"
    path = root / f"{when.strftime('%Y%m%dT%H%M%SZ')}-{part}"
    path.mkdir(parents=True)
    members = [] if scope == "full" else [{"slug": scope.split(":")[1], "tables": []}]
    (path / "manifest.json").write_text(json.dumps({
        "format": backup.FORMAT, "scope": scope, "created_at": when.isoformat(),
        "databases": [], "members": members}))
    return path


def test_rotation_keeps_the_newest_archive_of_recent_days_and_weeks(
    tmp_path: Path, settings: Settings,
) -> None:
    local = settings.model_copy(update={"backup_dir": tmp_path, "backup_keep_daily": 3,
                                        "backup_keep_weekly": 3})
    start = datetime(2026, 6, 1, 2, 30, tzinfo=UTC)  # a Monday
    for day in range(35):
        fake_archive(tmp_path, start + timedelta(days=day))
    extra_same_day = fake_archive(tmp_path, start + timedelta(days=34, hours=5))
    member = fake_archive(tmp_path, start + timedelta(days=1), "member:alpha")

    removed = backup.rotate(local)

    kept = sorted(a.name for a in backup.list_archives(local))
    assert kept == sorted([
        extra_same_day.name,                                          # newest of day 35
        (start + timedelta(days=33)).strftime("%Y%m%dT%H%M%SZ") + "-full",  # day 34
        (start + timedelta(days=32)).strftime("%Y%m%dT%H%M%SZ") + "-full",  # day 33
        (start + timedelta(days=27)).strftime("%Y%m%dT%H%M%SZ") + "-full",  # Sunday, week 4
        (start + timedelta(days=20)).strftime("%Y%m%dT%H%M%SZ") + "-full",  # Sunday, week 3
        member.name,                              # its own scope: the newest of its group
    ])
    assert len(removed) == 36 + 1 - len(kept)


def test_a_crashed_runs_leftovers_are_cleared_and_never_listed(scratch: Settings) -> None:
    root = backup.backup_dir(scratch)
    leftover = root / ".partial-20260101T000000Z-full"
    leftover.mkdir(parents=True)

    assert backup.list_archives(scratch) == []
    backup.run_backup(scratch, member="alpha")

    assert not leftover.exists()
    assert len(backup.list_archives(scratch)) == 1


# The command line -----------------------------------------------------------------------


def cli() -> Typer:
    app = Typer()
    backup_commands.register(app)
    return app


def test_the_cli_runs_lists_and_restores_only_with_yes(
    scratch: Settings, scratch_admin: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("hypervision.commands.backup.settings_or_exit", lambda: scratch)
    runner = CliRunner()

    made = runner.invoke(cli(), ["backup", "run", "--member", "alpha"])
    assert made.exit_code == 0, made.output
    listed = runner.invoke(cli(), ["backup", "list", "--verify"])
    assert listed.exit_code == 0, listed.output
    name = backup.list_archives(scratch)[0].name
    assert name in listed.output and "member:alpha" in listed.output and "ok" in listed.output

    scratch_admin.execute("TRUNCATE tenant_alpha.measurements")
    refused = runner.invoke(cli(), ["backup", "restore", name, "--member", "alpha"])
    assert refused.exit_code == 1
    assert "--yes" in refused.output
    assert scratch_admin.execute(
        "SELECT count(*) FROM tenant_alpha.measurements").fetchone() == (0,)

    done = runner.invoke(cli(), ["backup", "restore", name, "--member", "alpha", "--yes"])
    assert done.exit_code == 0, done.output
    assert scratch_admin.execute(
        "SELECT count(*) FROM tenant_alpha.measurements").fetchone() != (0,)

    unknown = runner.invoke(cli(), ["backup", "restore", "20990101T000000Z-full", "--yes"])
    assert unknown.exit_code == 1
    assert "no archive" in unknown.output


def test_an_archive_can_be_restored_from_a_copy_elsewhere(
    scratch: Settings, scratch_admin: psycopg.Connection[Any], tmp_path: Path,
) -> None:
    """Archives are copied off the host; a copy restores from its own path."""
    archive = backup.run_backup(scratch, member="alpha")
    copy = tmp_path / "offsite" / archive.name
    shutil.copytree(archive.path, copy)
    scratch_admin.execute("TRUNCATE tenant_alpha.uplinks")

    restored = backup.restore_member(scratch, backup.find_archive(scratch, str(copy)), "alpha")

    assert restored > 0
    assert scratch_admin.execute("SELECT count(*) FROM tenant_alpha.uplinks").fetchone() != (0,)

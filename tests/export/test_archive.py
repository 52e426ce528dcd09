"""Reversibility: a member's archive restores identical data into a fresh database under
another slug, a second import adds nothing, and a tampered archive is refused."""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import tarfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from hypervision import archive, audit, migrate
from hypervision.db import connect_admin
from hypervision.settings import Settings
from hypervision.tenancy.spec import TenantSpec
from tests.export.conftest import Ingest, status_event, topic, uplink_event

pytestmark = pytest.mark.services

T0 = datetime(2025, 2, 1, 6, tzinfo=UTC)


@pytest.fixture
def fresh_db(platform_db: Settings, admin: psycopg.Connection) -> Iterator[Settings]:
    """A second, empty platform database on the same server: "another instance"."""
    name = f"hv_restore_{secrets.token_hex(4)}"
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    other = platform_db.model_copy(update={"pg_database": name})
    with connect_admin(other) as conn:
        migrate.migrate_control(conn, log=lambda _: None)
    yield other
    admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def fill(admin: psycopg.Connection, spec: TenantSpec, ingest: Ingest) -> None:
    """Uplinks, measurements, status events and device state through the ingest path; a
    downlink and an audit entry directly."""
    items = []
    for i in range(6):
        at = T0 + timedelta(minutes=15 * i)
        items.append((topic(spec, i % 2), uplink_event(spec, i % 2, at, f_cnt=i + 1)))
    items.append((topic(spec, 0, "status"), status_event(spec, 0, T0, battery=88.0)))
    ingest(*items, received_at=(T0 + timedelta(seconds=1)).timestamp())
    admin.execute(
        sql.SQL("INSERT INTO {} (queue_item_id, dev_eui, model_id, command, params, f_port,"
                " data, confirmed, requested_by) VALUES (%s, %s, %s, 'reboot', '{{}}', 85,"
                " '\\xff10', true, 'user:agent@example.org')").format(
            sql.Identifier(spec.schema, "downlinks")),
        (uuid.uuid4(), spec.devices[1].dev_eui, spec.devices[1].model))
    audit.record(admin, actor="user:agent@example.org", member=spec.name,
                 action="measurements.read", source="api")


def table_digest(conn: psycopg.Connection, schema: str, table: str) -> tuple[int, str]:
    """Row count and a checksum of every row (all columns but the local watermark)."""
    columns = [r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s"
        " AND table_name = %s AND column_name <> 'ingested_xid' ORDER BY ordinal_position",
        (schema, table)).fetchall()]
    row = conn.execute(sql.SQL(
        "SELECT count(*), md5(coalesce(string_agg(r, E'\\n' ORDER BY r), ''))"
        " FROM (SELECT ROW({})::text AS r FROM {}) s").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(schema, table)
    )).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def test_a_member_archive_round_trips_into_a_fresh_database_under_another_slug(
    platform_db: Settings, admin: psycopg.Connection, member: TenantSpec, ingest: Ingest,
    fresh_db: Settings, tmp_path: Path
) -> None:
    fill(admin, member, ingest)
    result = archive.export_member(admin, platform_db, member.name, tmp_path / "a.tar")

    with tarfile.open(result.archive) as t:
        names = set(t.getnames())
        manifest_bytes = t.extractfile("manifest.json").read()  # type: ignore[union-attr]
    assert {"manifest.json", "tenant.yaml", "uplinks.jsonl", "data/uplinks.parquet",
            "data/measurements.parquet", "data/device_events.parquet", "audit.jsonl",
            "devices.jsonl"} <= names
    # What the member's dashboards are made of, in YAML.
    assert {"dashboards/templates/water.yaml", "dashboards/templates/datasets.yaml"} <= names
    assert hashlib.sha256(manifest_bytes).hexdigest() == result.fingerprint
    manifest = json.loads(manifest_bytes)
    assert manifest["member"] == member.name and manifest["format_version"] == 1
    assert manifest["counts"]["uplinks"] == 6 and manifest["counts"]["audit"] >= 1
    assert manifest["time_range"]["uplinks"] == [T0.isoformat(),
                                                 (T0 + timedelta(minutes=75)).isoformat()]
    assert set(manifest["files"]) == names - {"manifest.json"}

    new = f"restored_{secrets.token_hex(3)}"
    with connect_admin(fresh_db) as conn:
        imported = archive.import_member(conn, fresh_db, result.archive, as_slug=new)
        assert imported.inserted["uplinks"] == 6
        for table in archive.RESTORED_TABLES:
            source = table_digest(admin, member.schema, table)
            assert source[0] > 0, table
            assert table_digest(conn, f"tenant_{new}", table) == source, table
        restored = archive.load_member(conn, new)
        assert restored.model_dump(exclude={"name"}) == member.model_dump(exclude={"name"})
        # The QR labels on the devices still lead to their pages.
        public_ids = "SELECT dev_eui, public_id FROM hv.devices WHERE member_slug = %s"
        assert dict(conn.execute(public_ids, (new,)).fetchall()) == dict(
            admin.execute(public_ids, (member.name,)).fetchall())

        again = archive.import_member(conn, fresh_db, result.archive, as_slug=new)
        assert set(again.inserted.values()) == {0}
        assert table_digest(conn, f"tenant_{new}", "measurements") == table_digest(
            admin, member.schema, "measurements")


def test_devices_that_belong_to_another_member_are_not_taken_over(
    platform_db: Settings, admin: psycopg.Connection, member: TenantSpec, tmp_path: Path
) -> None:
    result = archive.export_member(admin, platform_db, member.name, tmp_path / "a.zip")
    with pytest.raises(archive.ArchiveError, match="belong to another member"):
        archive.import_member(admin, platform_db, result.archive, as_slug="someone_else")
    owners = admin.execute("SELECT DISTINCT member_slug FROM hv.devices WHERE dev_eui = ANY(%s)",
                           ([d.dev_eui for d in member.devices],)).fetchall()
    assert owners == [(member.name,)]
    # Nor can it be imported over the member it came from (tests/export/test_archive_hostile.py).
    with pytest.raises(archive.ArchiveError, match="already a member here"):
        archive.import_member(admin, platform_db, result.archive)


def _rewrite(src: Path, dst: Path, change: dict[str, bytes | None],
             extra: dict[str, bytes] | None = None) -> None:
    """Copy a tar archive, replacing (or with None, removing) some members."""
    with tarfile.open(src) as t_in, tarfile.open(dst, "w") as t_out:
        for member in t_in:
            data = t_in.extractfile(member).read()  # type: ignore[union-attr]
            if member.name in change:
                if change[member.name] is None:
                    continue
                data = change[member.name]  # type: ignore[assignment]
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            t_out.addfile(info, io.BytesIO(data))
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t_out.addfile(info, io.BytesIO(data))


def test_a_tampered_archive_is_refused(
    platform_db: Settings, admin: psycopg.Connection, member: TenantSpec, ingest: Ingest,
    tmp_path: Path
) -> None:
    fill(admin, member, ingest)
    result = archive.export_member(admin, platform_db, member.name, tmp_path / "a.tar")
    with tarfile.open(result.archive) as t:
        events = t.extractfile("uplinks.jsonl").read()  # type: ignore[union-attr]
        manifest = json.loads(t.extractfile("manifest.json").read())  # type: ignore[union-attr]
    forged = events.replace(b'"fCnt":1,', b'"fCnt":9,', 1)
    assert forged != events

    cases = {
        "edited": ({"uplinks.jsonl": forged}, None,
                   "uplinks.jsonl: content does not match its SHA-256"),
        "removed": ({"audit.jsonl": None}, None, "audit.jsonl: listed in the manifest but missing"),
        "added": ({}, {"data/extra.parquet": b"PAR1"}, "data/extra.parquet: not listed"),
        "escaping": ({}, {"../outside.txt": b"x"}, "unsafe name"),
    }
    for name, (change, extra, message) in cases.items():
        bad = tmp_path / f"{name}.tar"
        _rewrite(result.archive, bad, change, extra)
        with pytest.raises(archive.ArchiveError, match=message):
            archive.import_member(admin, platform_db, bad)

    # A forger who also rewrites the manifest's hashes is caught by the fingerprint.
    manifest["files"]["uplinks.jsonl"]["sha256"] = hashlib.sha256(forged).hexdigest()
    consistent = tmp_path / "consistent.tar"
    _rewrite(result.archive, consistent, {
        "uplinks.jsonl": forged,
        "manifest.json": json.dumps(manifest).encode(),
    })
    with pytest.raises(archive.ArchiveError, match="fingerprint"):
        archive.import_member(admin, platform_db, consistent, fingerprint=result.fingerprint)

    not_an_archive = tmp_path / "junk.tar"
    not_an_archive.write_bytes(b"not an archive")
    with pytest.raises(archive.ArchiveError, match="not a readable"):
        archive.import_member(admin, platform_db, not_an_archive)
    # Nothing was restored from any of them: the member's data is unchanged.
    assert admin.execute(sql.SQL("SELECT count(*) FROM {}").format(
        sql.Identifier(member.schema, "uplinks"))).fetchone() == (6,)

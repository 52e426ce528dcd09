"""Finding 9: the audit chain's head is anchored outside the database (in every backup's
manifest and in a file the operator keeps), so a rewrite of the trail by someone holding
the superuser, who can recompute every hash and move the head, is still found."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import psycopg.rows
import pytest

from hypervision import audit, backup
from hypervision.settings import Settings

pytestmark = pytest.mark.services


def test_a_backup_records_the_chain_head_in_its_manifest_and_the_anchor_file(
    platform_db: Settings, admin: psycopg.Connection, tmp_path: Path
) -> None:
    # Plain archives: the anchor does not depend on encryption (tested in
    # tests/deploy/test_backup_encryption.py), and the manifest is read below.
    settings = platform_db.model_copy(update={"backup_dir": tmp_path / "backups",
                                              "audit_anchor_file": tmp_path / "anchors.log",
                                              "backup_unencrypted": True})
    audit.record(admin, actor="system:test", member="alpha", action="test.anchor")
    head = admin.execute("SELECT last_id, encode(last_hash, 'hex') FROM hv.audit_head"
                         ).fetchone()
    archive = backup.run_backup(settings, member="alpha")
    manifest = json.loads((archive.path / "manifest.json").read_text())
    assert (manifest["audit_head"]["last_id"], manifest["audit_head"]["hash"]) == head
    line = (tmp_path / "anchors.log").read_text().splitlines()[-1].split()
    assert (int(line[1]), line[2]) == head


def test_verify_with_anchors_finds_a_rewrite_that_recomputed_every_hash(
    platform_db: Settings, admin: psycopg.Connection, tmp_path: Path
) -> None:
    entry = audit.record(admin, actor="user:eve@example.org", member="alpha",
                         action="export.csv", target="measurements")
    anchors = tmp_path / "anchors.log"
    audit.write_anchor(admin, anchors)
    assert audit.verify(admin, anchors=audit.read_anchors(anchors)).ok

    # The superuser rewrites the entry, then the chain after it and the head, consistently.
    with admin.transaction():
        admin.execute("ALTER TABLE hv.audit_log DISABLE TRIGGER USER")
        admin.execute("UPDATE hv.audit_log SET actor = 'user:someone@example.org'"
                      " WHERE id = %s", (entry,))
        previous = bytes(admin.execute("SELECT prev_hash FROM hv.audit_log WHERE id = %s",
                                       (entry,)).fetchone()[0])
        rows = admin.execute("SELECT id FROM hv.audit_log WHERE id >= %s ORDER BY id",
                             (entry,)).fetchall()
        for (entry_id,) in rows:
            admin.execute("UPDATE hv.audit_log SET prev_hash = %s WHERE id = %s",
                          (previous, entry_id))
            with admin.cursor(row_factory=psycopg.rows.dict_row) as cur:
                full = cur.execute(audit._VERIFY_QUERY.replace(" ORDER BY id", " WHERE id = %s"),
                                   (entry_id,)).fetchone()
            previous = audit.entry_hash(full)
            admin.execute("UPDATE hv.audit_log SET hash = %s WHERE id = %s", (previous, entry_id))
        admin.execute("UPDATE hv.audit_head SET last_hash = %s WHERE id = 1", (previous,))
        admin.execute("ALTER TABLE hv.audit_log ENABLE TRIGGER USER")
    # The rewrite is consistent (other tests still verify the trail): only an anchor finds it.
    assert audit.verify(admin).ok
    found = audit.verify(admin, anchors=audit.read_anchors(anchors))
    assert not found.ok
    assert any("anchor" in str(p) for p in found.problems)

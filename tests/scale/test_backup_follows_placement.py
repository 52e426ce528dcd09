"""Backups of a member on the second server: its rows are read there, in an archive with
the primary's database, and a member restore writes them back there, audited on the
primary."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hypervision import backup, placement
from hypervision.db import connect_admin
from tests.scale.conftest import TwoServers, kappa_uplink

pytestmark = pytest.mark.services



def _uplinks(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM tenant_kappa.uplinks").fetchone()
    return int(row[0]) if row else 0


def _write_uplinks(conn: psycopg.Connection[Any], first: int, count: int) -> None:
    start = datetime(2025, 4, 1, tzinfo=UTC)
    for n in range(first, first + count):
        kappa_uplink(conn, start + timedelta(minutes=n),
                     uuid.uuid5(uuid.NAMESPACE_URL, f"hv-test:backup:{n}"), n)


def _table(entry: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in entry["tables"] if t["name"] == name)


def test_kappa_is_backed_up_from_its_server_and_restored_there(
    two_servers: TwoServers, tmp_path: Path
) -> None:
    settings = two_servers.settings.model_copy(update={"backup_dir": tmp_path / "backups"})
    with placement.connect_admin(settings, "second") as second:
        _write_uplinks(second, 0, 15)
        held = _uplinks(second)
    assert held >= 15
    with connect_admin(settings) as primary:
        # The primary holds no copy of kappa: a backup read there would find nothing.
        assert primary.execute("SELECT to_regnamespace('tenant_kappa')").fetchone() == (None,)

    lines: list[str] = []
    full = backup.run_backup(settings, unencrypted=True, log=lines.append)
    kappa = next(m for m in full.manifest["members"] if m["slug"] == "kappa")
    sigma = next(m for m in full.manifest["members"] if m["slug"] == "sigma")
    assert kappa["server"] == "second"
    assert "server" not in sigma
    assert _table(kappa, "uplinks")["rows"] == held
    assert kappa["migrations"], "the migration ledger is read on the member's server"
    assert any(line.startswith("+ member kappa (on second)") for line in lines), lines
    assert backup.verify(full) == []

    only = backup.run_backup(settings, member="kappa", unencrypted=True)
    assert only.members == ["kappa"]
    assert _table(only.manifest["members"][0], "uplinks")["rows"] == held

    # Rows written and rows lost after the archive: the restore brings back the archive's.
    with placement.connect_admin(settings, "second") as second:
        _write_uplinks(second, 100, 3)
        second.execute("DELETE FROM tenant_kappa.uplinks WHERE f_cnt < 5")
        assert _uplinks(second) == held - 5 + 3

    restored = backup.restore_member(settings, full, "kappa")
    assert restored >= held
    with placement.connect_admin(settings, "second") as second:
        assert _uplinks(second) == held
    with connect_admin(settings) as primary:
        assert primary.execute("SELECT to_regnamespace('tenant_kappa')").fetchone() == (None,)
        entry = primary.execute(
            "SELECT rows, target FROM hv.audit_log WHERE action = 'backup.restore_member'"
            " AND member_slug = 'kappa' ORDER BY id DESC LIMIT 1").fetchone()
    assert entry == (restored, full.name)
    on_disk = json.loads((full.path / backup.MANIFEST).read_text(encoding="utf-8"))
    assert on_disk["members"] == full.manifest["members"]

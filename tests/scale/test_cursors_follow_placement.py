"""Export cursors across a move: a cursor holds transaction ids of the server that issued
it, so after kappa moves a cursor issued before is refused with the reason, and the new
server's cursors then work as before. kappa is moved to the primary and back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from hypervision import backup, placement
from hypervision.export import ExportError, ExportFilter, open_export
from hypervision.export import cursor as cursors
from hypervision.tenancy import move
from tests.scale.conftest import TwoServers

pytestmark = pytest.mark.services

AIR = "9a9a9a9a9a9a0002"
SCHEMA = "tenant_kappa"
T0 = datetime(2025, 5, 1, tzinfo=UTC)


def _measure(conn: psycopg.Connection, first: int, count: int) -> None:
    for n in range(first, first + count):
        conn.execute(sql.SQL(
            "INSERT INTO {} (time, dev_eui, metric, value, unit, deduplication_id)"
            " VALUES (%s, %s, 'co2', %s, 'ppm', %s) ON CONFLICT DO NOTHING"
        ).format(sql.Identifier(SCHEMA, "measurements")),
            (T0 + timedelta(minutes=n), AIR, 400.0 + n,
             uuid.uuid5(uuid.NAMESPACE_URL, f"hv-test:cursor:{n}")))


def _export(conn: psycopg.Connection, cursor: str | None = None) -> tuple[int, str]:
    stream = open_export(conn, SCHEMA, "measurements", "csv", ExportFilter(cursor=cursor))
    b"".join(stream.chunks)
    return stream.rows(), stream.next_cursor


def test_a_cursor_issued_before_a_move_is_refused_after_it(
    two_servers: TwoServers, tmp_path: Path
) -> None:
    settings = two_servers.settings.model_copy(update={"backup_dir": tmp_path})
    log: list[str] = []
    with placement.connect_admin(settings, "second") as second:
        _measure(second, 0, 10)
        total, before = _export(second)
        _measure(second, 10, 3)
        assert _export(second, before)[0] == 3
    assert cursors.decode(before).instance is not None
    archived = backup.run_backup(settings, member="kappa", unencrypted=True)

    move.move(settings, "kappa", "main", log=log.append)
    try:
        with placement.connect_admin(settings, None) as primary:
            with pytest.raises(ExportError, match="moved to this database server on"):
                _export(primary, before)
            assert primary.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            everything, after = _export(primary)
            assert everything == total + 3
            assert _export(primary, after)[0] == 0
            _measure(primary, 13, 2)
            assert _export(primary, after)[0] == 2
            assert cursors.decode(after).instance != cursors.decode(before).instance
    finally:
        move.drop_old(settings, "kappa", log=log.append)
        move.move(settings, "kappa", "second", log=log.append)
        move.drop_old(settings, "kappa", log=log.append)
    with placement.connect_admin(settings, "second") as second:
        # Back where it was, as a new copy: the primary's cursor is refused there too.
        with pytest.raises(ExportError, match="moved to this database server"):
            _export(second, after)
        everything, latest = _export(second)
        assert everything == total + 5
        assert _export(second, latest)[0] == 0

    # Rows restored from an archive of another copy are new for the next export: their
    # archived transaction ids meant something on that copy only.
    backup.restore_member(settings, archived, "kappa", log=log.append)
    assert any("archived from another copy" in line for line in log), log
    with placement.connect_admin(settings, "second") as second:
        assert _export(second, latest)[0] == total + 3

"""The audit trail is append-only in the database and any tampering is found by verify."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from hypervision import audit

pytestmark = pytest.mark.services


def _entry(conn: psycopg.Connection[Any], entry_id: int) -> dict[str, Any]:
    row = conn.execute(
        "SELECT actor, member_slug, action, target, params, rows, source, remote_addr,"
        " request_id, before, after FROM hv.audit_log WHERE id = %s", (entry_id,)
    ).fetchone()
    assert row is not None
    keys = ("actor", "member", "action", "target", "params", "rows", "source", "remote_addr",
            "request_id", "before", "after")
    return dict(zip(keys, row, strict=True))


def test_it_records_who_did_what_for_which_member_and_the_chain_verifies(
    admin: psycopg.Connection[Any],
) -> None:
    first = audit.record(admin, actor="user:agent@alpha.example.org", member="alpha",
                         action="measurements.read", target="a1a1a1a1a1a10001",
                         params={"start": "2024-01-01", "metrics": ["co2"]}, rows=42,
                         source="api", request_id="req-1", remote_addr="192.0.2.7")
    second = audit.record(admin, actor="system:retention", member=None, action="retention.run",
                          source="job", before={"days": 30}, after={"days": 10})
    assert second > first
    assert _entry(admin, first) == {
        "actor": "user:agent@alpha.example.org", "member": "alpha",
        "action": "measurements.read", "target": "a1a1a1a1a1a10001",
        "params": {"start": "2024-01-01", "metrics": ["co2"]}, "rows": 42, "source": "api",
        "remote_addr": "192.0.2.7", "request_id": "req-1", "before": None, "after": None,
    }
    assert _entry(admin, second)["after"] == {"days": 10}
    result = audit.verify(admin)
    assert result.ok, result.problems
    assert result.last_id >= second


def test_python_and_sql_agree_on_the_canonical_text_whatever_the_session_timezone(
    admin: psycopg.Connection[Any],
) -> None:
    admin.execute("SET TimeZone = 'Pacific/Chatham'")
    entry_id = audit.record(
        admin, actor="user:élodie@alpha.example.org", member="alpha", action="export.csv",
        params={"q": "l'été \"chaud\" \\ 😀", "n": 1e16, "x": 0.1, "nul": "a\x00b"},
        target="ligne\nsuivante", source="api")
    sql_text = admin.execute(
        "SELECT hv.audit_canonical(a) FROM hv.audit_log a WHERE id = %s", (entry_id,)
    ).fetchone()
    row = admin.cursor(row_factory=psycopg.rows.dict_row).execute(
        "SELECT id, at, actor, member_slug, action, target, params::text AS params, rows,"
        " source, remote_addr, request_id, before::text AS before, after::text AS after,"
        " prev_hash, hash FROM hv.audit_log WHERE id = %s", (entry_id,)).fetchone()
    assert sql_text is not None and row is not None
    assert audit.canonical(row) == sql_text[0].encode()
    assert audit.entry_hash(row) == bytes(row["hash"])
    assert _entry(admin, entry_id)["params"]["nul"] == "a\ufffdb"
    assert audit.verify(admin).ok


def test_it_refuses_update_delete_and_truncate_even_for_the_superuser(
    admin: psycopg.Connection[Any],
) -> None:
    entry_id = audit.record(admin, actor="cli:test", member="alpha", action="tenant.apply")
    for statement in (
        "UPDATE hv.audit_log SET rows = 1 WHERE id = %s",
        "DELETE FROM hv.audit_log WHERE id = %s",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            admin.execute(statement, (entry_id,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        admin.execute("TRUNCATE hv.audit_log")
    assert audit.verify(admin).ok


def test_an_application_role_may_append_but_never_update_delete_or_forge_the_chain(
    app_conn: psycopg.Connection[Any],
) -> None:
    with app_conn.transaction():
        entry_id = audit.record(app_conn, actor="token:1", member="alpha", action="uplinks.read",
                                source="api", rows=3)
    assert entry_id > 0
    forbidden = (
        ("UPDATE hv.audit_log SET rows = 0 WHERE id = %s", (entry_id,)),
        ("DELETE FROM hv.audit_log WHERE id = %s", (entry_id,)),
        ("TRUNCATE hv.audit_log", None),
        ("SELECT actor FROM hv.audit_log WHERE id = %s", (entry_id,)),
        ("INSERT INTO hv.audit_log (actor, action, source, hash, prev_hash)"
         " VALUES ('token:1', 'x', 'api', '\\x00', '\\x00')", None),
        ("UPDATE hv.audit_head SET last_id = 0", None),
        ("SELECT nextval('hv.audit_log_id_seq')", None),
    )
    for statement, params in forbidden:
        with pytest.raises(psycopg.errors.InsufficientPrivilege), app_conn.transaction():
            app_conn.execute(statement, params)


def test_an_entry_commits_or_rolls_back_with_the_change_it_records(
    app_conn: psycopg.Connection[Any], admin: psycopg.Connection[Any],
) -> None:
    with pytest.raises(RuntimeError), app_conn.transaction():
        entry_id = audit.record(app_conn, actor="token:1", member="alpha", action="token.create",
                                source="api")
        raise RuntimeError("the change failed")
    assert admin.execute("SELECT 1 FROM hv.audit_log WHERE id = %s", (entry_id,)).fetchone() is None
    assert audit.verify(admin).ok


def test_concurrent_writers_keep_one_consistent_chain(
    platform_db: Any, app_role: str, admin: psycopg.Connection[Any],
) -> None:
    from hypervision.db import connect_as

    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            with connect_as(platform_db, app_role, autocommit=True) as conn:
                for i in range(15):
                    audit.record(conn, actor=f"token:{n}", member="beta",
                                 action="measurements.read", rows=i, source="api")
        except BaseException as exc:  # reported below: a thread's failure fails the test
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    result = audit.verify(admin)
    assert result.ok, result.problems


@pytest.fixture
def tamper(admin: psycopg.Connection[Any]) -> Any:
    """A superuser transaction that is always rolled back, so that the shared test
    database keeps an intact trail for every other test."""
    admin.autocommit = False
    yield admin
    admin.rollback()
    admin.autocommit = True


def _three_entries(conn: psycopg.Connection[Any]) -> list[int]:
    return [audit.record(conn, actor="user:a@alpha.example.org", member="alpha",
                         action="measurements.read", rows=i, source="api") for i in range(3)]


def test_verify_finds_an_entry_edited_with_the_triggers_disabled(tamper: Any) -> None:
    ids = _three_entries(tamper)
    tamper.execute("ALTER TABLE hv.audit_log DISABLE TRIGGER audit_log_append_only")
    tamper.execute("UPDATE hv.audit_log SET rows = 0 WHERE id = %s", (ids[1],))
    result = audit.verify(tamper)
    assert not result.ok
    assert [p.entry_id for p in result.problems if p.entry_id] == [ids[1]]
    assert "edited" in str(result.problems[0])
    assert any("audit_log_append_only is disabled" in str(p) for p in result.problems)


def test_verify_finds_an_entry_edited_behind_the_triggers_back(tamper: Any) -> None:
    ids = _three_entries(tamper)
    # What a superuser can do without touching the triggers' state.
    tamper.execute("SET LOCAL session_replication_role = replica")
    tamper.execute("UPDATE hv.audit_log SET actor = 'user:someone@else.org' WHERE id = %s",
                   (ids[0],))
    problems = audit.verify(tamper).problems
    assert [p.entry_id for p in problems] == [ids[0]]


def test_verify_finds_a_deleted_entry(tamper: Any) -> None:
    ids = _three_entries(tamper)
    tamper.execute("SET LOCAL session_replication_role = replica")
    tamper.execute("DELETE FROM hv.audit_log WHERE id = %s", (ids[1],))
    problems = audit.verify(tamper).problems
    assert [p.entry_id for p in problems] == [ids[2]]
    assert "deleted" in str(problems[0])


def test_verify_finds_entries_deleted_at_the_end_of_the_trail(tamper: Any) -> None:
    ids = _three_entries(tamper)
    tamper.execute("SET LOCAL session_replication_role = replica")
    tamper.execute("DELETE FROM hv.audit_log WHERE id >= %s", (ids[1],))
    problems = audit.verify(tamper).problems
    assert len(problems) == 1 and "head names entry" in str(problems[0])


def test_a_rewritten_entry_with_a_recomputed_hash_still_breaks_the_next_link(
    tamper: Any,
) -> None:
    ids = _three_entries(tamper)
    tamper.execute("SET LOCAL session_replication_role = replica")
    tamper.execute(
        "UPDATE hv.audit_log a SET rows = 99 WHERE id = %s", (ids[0],))
    tamper.execute(
        "UPDATE hv.audit_log a SET hash = sha256(convert_to(hv.audit_canonical(a), 'UTF8'))"
        " WHERE id = %s", (ids[0],))
    problems = audit.verify(tamper).problems
    assert [p.entry_id for p in problems] == [ids[1]]

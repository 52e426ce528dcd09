"""Retention deletes exactly what has expired, by dropping whole chunks where it can, and
its dry run announces exactly that."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from hypervision import retention
from hypervision.commands import retention as retention_commands
from tests.retention.conftest import (
    NOW,
    STRAY,
    WASTE,
    Dataset,
    chunk_count,
    expired,
    label,
    remaining,
)

pytestmark = pytest.mark.services


def expected_counts(data: Dataset) -> dict[tuple[str, str], int]:
    counts: Counter[tuple[str, str]] = Counter(
        (table, label(table, dev_eui)) for table, dev_eui, time in data.rows
        if expired(table, dev_eui, time))
    gone = sum(1 for t in data.dead_letters if t < NOW - dt.timedelta(days=30))
    counts[("hv.dead_letters", "raw")] += gone
    return dict(counts)


def test_retention_deletes_exactly_what_has_expired_and_the_dry_run_said_so(
    dataset: Dataset, admin: psycopg.Connection
) -> None:
    chunks_before = chunk_count(admin, "measurements")
    (dry,) = retention.plan(admin, now=NOW, members=["ret_e"])
    assert remaining(admin) == dataset.rows  # the dry run wrote nothing

    (done,) = retention.run(admin, now=NOW, members=["ret_e"])

    # Exactly the expired rows are gone, and every other row is still there.
    kept = {r for r in dataset.rows if not expired(*r)}
    assert remaining(admin) == kept
    assert kept != dataset.rows and any(r[0] == "measurements" for r in dataset.rows - kept)
    # The dry run announced what the run removed, and both match the rule.
    assert done.removed == dry.counts() == expected_counts(dataset)
    assert done.plan.chunks() == dry.chunks()
    # Both ways were used: whole chunks dropped, and rows deleted from shared chunks
    # (water and air expired at 500 days, the waste container's row of that week stays).
    measurements = dry.tables[0]
    assert measurements.table == "measurements"
    assert measurements.drops and measurements.deleted
    assert chunk_count(admin, "measurements") == chunks_before - len(measurements.drops)
    # Hypertables partitioned by date (daily rollups) drop whole chunks too.
    assert next(t.drops for t in dry.tables if t.table == "rollup_daily")
    assert dry.kept_classes == ["waste-fill"]
    # Other members' dead letters are not ret_e's business.
    assert admin.execute(
        "SELECT count(*) FROM hv.dead_letters WHERE member_slug = 'alpha'"
        " AND origin = 'test:retention'").fetchone() == (4,)


def test_a_second_run_removes_nothing_and_every_run_is_audited(
    dataset: Dataset, admin: psycopg.Connection
) -> None:
    (first,) = retention.run(admin, now=NOW, members=["ret_e"], actor="cli:tester",
                             source="cli")
    (second,) = retention.run(admin, now=NOW, members=["ret_e"], actor="cli:tester",
                              source="cli")
    assert second.removed == {} and retention.plan(admin, now=NOW, members=["ret_e"])[
        0].total() == 0
    entries = admin.execute(
        "SELECT id, actor, action, target, rows, after FROM hv.audit_log"
        " WHERE id = ANY(%s) ORDER BY id", ([first.audit_id, second.audit_id],)
    ).fetchall()
    assert [(e[1], e[2], e[3]) for e in entries] == [
        ("cli:tester", "retention.run", "tenant_ret_e")] * 2
    assert [e[4] for e in entries] == [sum(first.removed.values()), 0]
    audited = {(r["table"], r["data_class"]): r["rows"] for r in entries[0][5]["rows"]}
    assert audited == first.removed


def test_a_member_without_retention_keeps_everything(dataset: Dataset,
                                                     admin: psycopg.Connection) -> None:
    (alpha,) = retention.plan(admin, now=NOW + dt.timedelta(days=10_000), members=["alpha"])
    assert alpha.total() == 0
    assert set(alpha.kept_classes) == {"raw", "water-consumption", "waste-fill", "indoor-air"}


def test_the_daily_job_enforces_retention_and_is_scheduled(
    dataset: Dataset, admin: psycopg.Connection
) -> None:
    from hypervision.jobs import retention as job

    assert job.SCHEDULE["daily-retention"]["task"] == job.enforce_retention.name
    # Real time now: the data set (up to 2025-06-01) is past every declared retention.
    # (Only ret_e: other tests' members are not this test's to clean.)
    result = job.enforce_retention.apply(kwargs={"members": ["ret_e"]}).get()
    assert result["ret_e"] > 0
    left = remaining(admin)
    assert {r for r in left if r[0] in ("uplinks", "device_events")} == set()
    # What is left: the waste container (no retention declared), the undeclared device.
    assert {r[1] for r in left} == {WASTE, STRAY}
    actor = admin.execute(
        "SELECT actor, source FROM hv.audit_log WHERE action = 'retention.run'"
        " AND member_slug = 'ret_e' ORDER BY id DESC LIMIT 1").fetchone()
    assert actor == ("system:retention", "job")


def cli() -> typer.Typer:
    app = typer.Typer()
    retention_commands.register(app)
    return app


def test_the_cli_dry_run_lists_counts_and_a_real_run_needs_yes(
    dataset: Dataset, admin: psycopg.Connection, monkeypatch: Any
) -> None:
    runner = CliRunner()
    dry = runner.invoke(cli(), ["retention", "run", "--dry-run", "-m", "ret_e"],
                        terminal_width=200)
    assert dry.exit_code == 0, dry.output
    assert "ret_e:" in dry.output and "measurements indoor-air:" in dry.output
    assert "kept, no retention declared: waste-fill" in dry.output
    assert remaining(admin) == dataset.rows

    refused = runner.invoke(cli(), ["retention", "run", "-m", "ret_e"])
    assert refused.exit_code == 1 and remaining(admin) == dataset.rows

    done = runner.invoke(cli(), ["retention", "run", "--yes", "-m", "ret_e"],
                         terminal_width=200)
    assert done.exit_code == 0, done.output
    assert "row(s) removed (audit entry" in done.output
    assert len(remaining(admin)) < len(dataset.rows)

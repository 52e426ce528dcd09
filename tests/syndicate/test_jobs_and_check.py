"""The syndicate's periodic jobs (beat schedule, one run in this process) and the check of
the declared gateways against those ChirpStack lists."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from hypervision.cli import app
from hypervision.settings import Settings
from hypervision.syndicate import assets
from hypervision.syndicate.spec import load
from tests.syndicate.conftest import NETWORK

pytestmark = pytest.mark.services


def test_the_jobs_are_scheduled_and_run_over_every_member(network_db: Settings) -> None:
    from hypervision import jobs
    from hypervision.jobs import coverage as coverage_job
    from hypervision.jobs import incidents as incidents_job

    schedule = jobs.collect_schedule()
    assert schedule["incidents-check"]["task"] == incidents_job.check.name
    assert schedule["incidents-audit-chain"]["kwargs"] == {"verify_audit": True}
    assert schedule["coverage-margins"]["task"] == coverage_job.check_margins.name
    assert set(incidents_job.check()) == {"opened", "warned", "overdue"}
    assert {"bourg", "plage", "cc_aven", "cc_odet"} <= set(coverage_job.check_margins())


def test_network_check_names_undeclared_and_unknown_gateways(
    network_db: Settings, admin: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As `gateways sync` leaves them: a001 and a003 declared, one nobody declared (other
    # tests' gateways may be there too: undeclared as well).
    ours = ("5e1d00000000a001", "5e1d00000000a003", "5e1d00000000ffff")
    for gid in ours:
        admin.execute(
            "INSERT INTO hv.gateways (gateway_id, tenant_id, name, state, state_since)"
            " VALUES (%s, gen_random_uuid(), %s, 'ONLINE', now())", (gid, gid))
    report = assets.compare(admin, load(NETWORK))
    assert report.matched == ["5e1d00000000a001", "5e1d00000000a003"]
    assert "5e1d00000000ffff" in report.undeclared
    assert report.unknown == ["5e1d00000000a002"]
    monkeypatch.setenv("HV_NETWORK_DIR", str(NETWORK))
    from hypervision.settings import get_settings

    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(app, ["network", "check"])
    finally:
        get_settings.cache_clear()
        admin.execute("DELETE FROM hv.gateways WHERE gateway_id = ANY(%s)", (list(ours),))
    assert out.exit_code == 1
    assert "5e1d00000000ffff: listed by ChirpStack, not declared" in out.output
    assert "5e1d00000000a002: declared, unknown to ChirpStack" in out.output

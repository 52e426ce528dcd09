"""The periodic jobs: their beat schedule entries, and one run of each task in this
process (the same code a worker runs), over every member."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from hypervision.settings import Settings
from tests.analytics.helpers import SCHEMA, SLUG, hourly, put, utc

pytestmark = pytest.mark.services


def test_the_jobs_declare_their_beat_schedule() -> None:
    from hypervision.jobs import alerts as alerts_job
    from hypervision.jobs import rollups as rollups_job

    assert rollups_job.SCHEDULE["rollups-refresh"]["task"] == rollups_job.refresh_all.name
    assert alerts_job.SCHEDULE["alerts-evaluate"]["task"] == alerts_job.evaluate_all.name
    assert rollups_job.SCHEDULE["rollups-refresh"]["schedule"] == 60.0


def test_one_run_of_each_job_refreshes_and_evaluates_every_member(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    from hypervision.jobs import alerts as alerts_job
    from hypervision.jobs import rollups as rollups_job

    admin = member_db
    put(admin, "c6c6c6c6c6c60008", "air.temperature", hourly(utc(2026, 3, 10, 8), [20, 21]))
    done = rollups_job.refresh_all()
    assert {SLUG, "alpha", "beta"} <= set(done)
    assert admin.execute(f"SELECT count(*) FROM {SCHEMA}.rollup_hourly").fetchone() == (2,)
    opened = alerts_job.evaluate_all()
    assert opened[SLUG] == 0  # no rule declared: nothing to open

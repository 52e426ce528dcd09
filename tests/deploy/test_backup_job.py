"""The nightly backup job: its beat schedule, its queue, and one run of the task itself
(in this process, as a worker would run it) on the session's database."""

from __future__ import annotations

import shutil
from typing import Any

import psycopg
import pytest
from celery.schedules import crontab

from hypervision import backup, jobs
from hypervision.settings import Settings

pytestmark = pytest.mark.services


def test_beat_schedules_the_nightly_backup_on_the_jobs_queue(
    monkeypatch: pytest.MonkeyPatch, settings: Settings,
) -> None:
    monkeypatch.setattr(jobs, "JOB_MODULES", ["hypervision.jobs.backup"])
    entry = jobs.collect_schedule()["nightly-backup"]
    assert entry["task"] == "hypervision.jobs.backup.nightly_backup"
    assert entry["options"]["queue"] == jobs.JOBS_QUEUE
    assert entry["schedule"] == crontab(hour=settings.backup_hour,
                                        minute=settings.backup_minute)


def test_the_task_acknowledges_on_receipt_so_a_long_dump_is_never_redelivered() -> None:
    from hypervision.jobs.backup import nightly_backup

    assert nightly_backup.acks_late is False


def test_a_nightly_run_writes_a_verified_encrypted_full_archive_and_audits_it(
    platform_db: Settings, admin: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pyrage import x25519

    from hypervision.jobs import backup as backup_job
    from hypervision.jobs.backup import nightly_backup

    public = str(x25519.Identity.generate().to_public())
    monkeypatch.setattr(backup_job, "get_settings", lambda: platform_db.model_copy(
        update={"backup_age_recipients": public}))

    name = nightly_backup.apply().get()

    archive = backup.find_archive(platform_db, name)
    try:
        assert archive.scope == "full"
        assert backup.verify(archive) == []
        assert {"alpha", "beta"} <= set(archive.members)
        assert archive.manifest["encryption"]["recipients"] == [public]
        entry = admin.execute(
            "SELECT actor, source, action FROM hv.audit_log WHERE target = %s", (name,)
        ).fetchone()
        assert entry == ("system:backup", "job", "backup.run")
    finally:
        shutil.rmtree(archive.path)

"""Finding 10: dead letters that belong to no member do not stay forever: a platform-wide
retention (HV_DEAD_LETTER_RETENTION_DAYS) removes them, with an audit entry."""

from __future__ import annotations

import datetime as dt
import secrets

import psycopg
import pytest

from hypervision import retention
from hypervision.settings import Settings

pytestmark = pytest.mark.services


def _dead(admin: psycopg.Connection, member: str | None, age_days: int) -> bytes:
    payload = secrets.token_bytes(16)
    admin.execute(
        "INSERT INTO hv.dead_letters (received_at, origin, event_type, dev_eui, member_slug,"
        " reason, detail, payload, digest) VALUES (now() - make_interval(days => %s), 'x',"
        " 'up', NULL, %s, 'unknown_device', 'test', %s, %s)",
        (age_days, member, payload, secrets.token_bytes(32)))
    return payload


def _kept(admin: psycopg.Connection, payload: bytes) -> bool:
    return admin.execute("SELECT count(*) FROM hv.dead_letters WHERE payload = %s",
                         (payload,)).fetchone() == (1,)


def test_member_less_dead_letters_expire_after_the_platform_retention(
    platform_db: Settings, admin: psycopg.Connection
) -> None:
    assert platform_db.dead_letter_retention_days == 30
    old, recent = _dead(admin, None, 31), _dead(admin, None, 29)
    members_own = _dead(admin, "alpha", 400)  # alpha declares no `raw`: its own rule keeps it
    removed, audit_id = retention.expire_unattributed_dead_letters(
        admin, days=30, now=dt.datetime.now(dt.UTC), actor="system:retention", source="job")
    assert removed >= 1
    assert not _kept(admin, old)
    assert _kept(admin, recent) and _kept(admin, members_own)
    entry = admin.execute("SELECT action, member_slug, rows FROM hv.audit_log WHERE id = %s",
                          (audit_id,)).fetchone()
    assert entry == ("retention.dead_letters", None, removed)


def test_the_daily_job_applies_the_platform_retention(
    platform_db: Settings, admin: psycopg.Connection
) -> None:
    from hypervision.jobs.retention import enforce_retention

    old = _dead(admin, None, 45)
    enforce_retention()
    assert not _kept(admin, old)

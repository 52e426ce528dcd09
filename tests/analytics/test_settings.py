"""A member's analytics settings and alert rules come from its tenant file: `tenants plan`
shows their change as a change of the member, `tenants apply` stores it in hv.members.spec
and audits it, and the refresh copies it into the member's schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from hypervision.analytics import members
from hypervision.analytics.config import for_member
from hypervision.db import connect_as
from hypervision.settings import Settings
from hypervision.tenancy import apply as tenancy
from hypervision.tenancy.spec import load_file
from ingest.decode import Catalogue
from tests.analytics.helpers import SCHEMA, SLUG, TENANTS

CM1 = "c6c6c6c6c6c60008"
RULE = {"name": "co2-cm1", "metric": "air.co2", "condition": "above", "threshold": 1200,
        "duration": "20m", "devices": [CM1],
        "recipients": {"emails": ["agent@analytica.example.org"]}}


def test_a_member_without_settings_in_its_spec_gets_the_defaults() -> None:
    # A spec stored before `analytics:` and `alerts:` existed, or declaring neither.
    config = for_member("ancien", {"version": "v1", "kind": "tenant", "name": "ancien"})
    assert (config.name, config.alerts, config.air.high_ppm, config.water.leak_nights) == (
        "ancien", [], 1500, 3)


@pytest.mark.services
def test_a_tenant_files_rules_and_settings_reach_the_members_schema(
    member_db: psycopg.Connection[Any], asettings: Settings, tmp_path: Path
) -> None:
    admin = member_db
    raw = yaml.safe_load((TENANTS / f"{SLUG}.yaml").read_text(encoding="utf-8"))
    raw["analytics"] = {"air": {"high_ppm": 1200}, "water": {"leak_nights": 5}}
    raw["alerts"] = [RULE]
    path = tmp_path / f"{SLUG}.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    spec = load_file(path)
    catalogue = Catalogue.load()

    # Plan: one change of the member, naming the fields; nothing written.
    changes = [str(s) for s in tenancy.plan(admin, [spec], catalogue, asettings)
               if s.symbol != "="]
    assert changes == ["~ analytica: member details (alerts, analytics)"]
    assert members.member(admin, SLUG).spec["alerts"] == []

    # Apply: stored, audited with the fields before and after; a second plan finds nothing.
    tenancy.apply(admin, [spec], catalogue, asettings, log=lambda _: None, actor="cli:test")
    assert [s for s in tenancy.plan(admin, [spec], catalogue, asettings) if s.symbol != "="] == []
    params, before, after = admin.execute(
        "SELECT params, before, after FROM hv.audit_log WHERE member_slug = %s"
        " AND action = 'tenant.apply' AND actor = 'cli:test' ORDER BY id DESC LIMIT 1",
        (SLUG,)).fetchone()
    assert params == {"changes": changes}
    assert sorted(before) == sorted(after) == ["alerts", "analytics"]
    assert (before["alerts"], [r["name"] for r in after["alerts"]]) == ([], ["co2-cm1"])
    assert (before["analytics"]["air"]["high_ppm"], after["analytics"]["air"]["high_ppm"]) == (
        1500.0, 1200.0)

    # The refresh job's copy, in the member's schema, readable by its read-only role.
    members.sync(admin, members.member(admin, SLUG))
    (stored,) = admin.execute(
        f"SELECT config FROM {SCHEMA}.analytics_settings WHERE id = 1").fetchone()
    assert (stored["name"], stored["air"]["high_ppm"], stored["air"]["low_ppm"],
            stored["water"]["leak_nights"]) == (SLUG, 1200.0, 800.0, 5)
    assert [(r["name"], r["threshold"], r["duration"], r["devices"]) for r in stored["alerts"]
            ] == [("co2-cm1", 1200.0, "PT20M", [CM1])]
    with connect_as(asettings, f"{SLUG}_reader") as reader:
        (rule,) = members.settings_of(reader, SCHEMA).alerts
    assert (rule.duration.total_seconds(), rule.recipients.targets()) == (
        1200.0, [("email", "agent@analytica.example.org")])

    # Removing them from the file removes them from the member's schema too.
    tenancy.apply(admin, [load_file(TENANTS / f"{SLUG}.yaml")], catalogue, asettings,
                  log=lambda _: None)
    config = members.sync(admin, members.member(admin, SLUG))
    assert (config.alerts, config.air.high_ppm, config.water.leak_nights) == ([], 1500, 3)
    (stored,) = admin.execute(
        f"SELECT config FROM {SCHEMA}.analytics_settings WHERE id = 1").fetchone()
    assert stored["alerts"] == []

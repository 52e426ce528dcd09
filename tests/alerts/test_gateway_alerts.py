"""Gateways offline, an alert kind for the syndicate's operators: a gateway ChirpStack
reports offline, or not seen for the rule's duration, opens an alert (its id in place of
a DevEUI) and closes it when heard again; only the syndicate may declare the rule."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from hypervision.alerts import lifecycle
from hypervision.analytics.config import MemberAnalytics
from hypervision.tenancy.spec import SpecError, load_file
from tests.analytics.helpers import SCHEMA, SLUG, TENANTS, utc

NOW = utc(2026, 3, 10, 12)


def gateway(gid: str, state: str, seen_ago: dt.timedelta | None) -> lifecycle.Gateway:
    return lifecycle.Gateway(gid, f"Passerelle {gid[-2:]}", state,
                             None if seen_ago is None else NOW - seen_ago)


@pytest.mark.services
def test_an_offline_gateway_opens_an_alert_and_closes_when_heard_again(
    member_db: psycopg.Connection[Any],
) -> None:
    admin = member_db
    config = MemberAnalytics.model_validate({"name": SLUG, "alerts": [
        {"name": "passerelles", "condition": "gateway_offline", "severity": "critical"}]})
    # Not seen for 2 hours (the default limit is 60 minutes), ChirpStack says offline, seen
    # 5 minutes ago, never seen (not installed yet: no alert).
    gateways = [gateway("0016c001f0000001", "ONLINE", dt.timedelta(hours=2)),
                gateway("0016c001f0000002", "OFFLINE", dt.timedelta(minutes=20)),
                gateway("0016c001f0000003", "ONLINE", dt.timedelta(minutes=5)),
                gateway("0016c001f0000004", "NEVER_SEEN", None)]
    result = lifecycle.evaluate(admin, SCHEMA, config, NOW, SLUG, gateways)
    assert len(result.opened) == 2
    found = {a["dev_eui"]: a for a in lifecycle.alerts(admin, SCHEMA)}
    assert set(found) == {"0016c001f0000001", "0016c001f0000002"}
    first = found["0016c001f0000001"]
    assert (first["condition"], first["severity"], first["since"]) == (
        "gateway_offline", "critical", NOW - dt.timedelta(hours=1))
    assert first["message"].startswith("passerelle Passerelle 01 hors ligne")
    # Heard again: the alert closes; the other stays open.
    gateways[0] = gateway("0016c001f0000001", "ONLINE", dt.timedelta(minutes=1))
    again = lifecycle.evaluate(admin, SCHEMA, config, NOW, SLUG, gateways)
    assert again.closed == [first["id"]] and again.still_open == 1


def test_only_the_syndicate_may_watch_the_gateways(tmp_path: Path) -> None:
    base = yaml.safe_load((TENANTS / f"{SLUG}.yaml").read_text(encoding="utf-8"))
    rule = {"name": "passerelles", "condition": "gateway_offline", "duration": "30m"}
    path = tmp_path / f"{SLUG}.yaml"
    path.write_text(yaml.safe_dump({**base, "alerts": [rule]}, allow_unicode=True),
                    encoding="utf-8")
    with pytest.raises(SpecError, match="only its operators"):
        load_file(path)
    syndicate = {**base, "identity": {**base["identity"], "kind": "syndicate"},
                 "alerts": [rule]}
    path.write_text(yaml.safe_dump(syndicate, allow_unicode=True), encoding="utf-8")
    assert load_file(path).alerts[0].duration == dt.timedelta(minutes=30)
    path.write_text(yaml.safe_dump({**syndicate, "alerts": [{**rule, "buildings": ["Mairie"]}]},
                                   allow_unicode=True), encoding="utf-8")
    with pytest.raises(SpecError, match="takes no devices nor buildings"):
        load_file(path)

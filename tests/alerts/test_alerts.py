"""Alerts: an alert opens once, notifies once by e-mail and webhook, and closes; a person
acknowledges and closes one; failed notifications are retried or given up; silent
devices and leaks; rules are validated with the member's tenant file."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from pathlib import Path
from typing import Any

import psycopg
import pytest
import typer
import yaml
from typer.testing import CliRunner

from hypervision.alerts import lifecycle, notify
from hypervision.analytics import members
from hypervision.commands import alerts as alerts_commands
from hypervision.settings import Settings
from hypervision.tenancy.spec import SpecError, TenantSpec, load_file
from tests.alerts.conftest import SIGNING_KEY, Receiver, SmtpSink
from tests.analytics.helpers import SCHEMA, SLUG, TENANTS, declare, hourly, put, refresh, utc

pytestmark = pytest.mark.services

CE2, MUTE, NEVER, LEAKY = "c6c6c6c6c6c60020", "c6c6c6c6c6c60011", "c6c6c6c6c6c60012", (
    "c6c6c6c6c6c60003")
T0 = utc(2026, 3, 9, 9)


def _minutes(n: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


def _co2_rule(url: str, **extra: Any) -> dict[str, Any]:
    return {"name": "co2-ce2", "metric": "air.co2", "condition": "above", "threshold": 1500,
            "duration": "20m", "severity": "warning", "devices": [CE2],
            "recipients": {"emails": ["agent@analytica.example.org"], "webhooks": [url]},
            **extra}


def _evaluate(admin: psycopg.Connection[Any], settings: Settings,
              now: dt.datetime) -> lifecycle.Evaluation:
    return lifecycle.evaluate_member(admin, members.member(admin, SLUG), settings, now)


def _deliver(admin: psycopg.Connection[Any], settings: Settings) -> notify.Delivery:
    return notify.deliver_due(admin, members.member(admin, SLUG), settings)


def test_an_alert_opens_once_notifies_once_and_closes(
    member_db: psycopg.Connection[Any], nsettings: Settings,
    smtp_sink: tuple[SmtpSink, int], receiver: Receiver,
) -> None:
    admin, sink = member_db, smtp_sink[0]
    declare(admin, nsettings, {"alerts": [_co2_rule(receiver.url())]})
    refresh(admin, nsettings)
    put(admin, CE2, "air.co2", hourly(T0, [1600, 1700, 1800, 1900, 900],
                                      dt.timedelta(minutes=10)))

    # Above 1500 since 09:00; at 09:10 only for 10 minutes: not yet.
    assert _evaluate(admin, nsettings, _minutes(10)).opened == []
    # At 09:20 the 20 minutes are reached: one alert.
    opened = _evaluate(admin, nsettings, _minutes(20)).opened
    assert len(opened) == 1
    delivery = _deliver(admin, nsettings)
    assert (len(delivery.sent), delivery.retried, delivery.failed) == (2, [], [])
    # Still above at 09:30: the same alert, no new notification.
    again = _evaluate(admin, nsettings, _minutes(30))
    assert (again.opened, again.still_open) == ([], 1)
    assert _deliver(admin, nsettings).sent == []
    # 900 ppm at 09:40: closed by the system.
    assert _evaluate(admin, nsettings, _minutes(40)).closed == opened

    assert len(sink.messages) == 1
    sender, recipients, message = sink.messages[0]
    assert (sender, recipients) == ("alertes@hv.test", ["agent@analytica.example.org"])
    assert "Avertissement" in message["Subject"] and "co2-ce2" in message["Subject"]
    assert "Air CE2" in message["Subject"]
    assert "1800" in message.get_payload(decode=True).decode()
    assert len(receiver.requests) == 1
    _, headers, body = receiver.requests[0]
    expected = "sha256=" + hmac.new(SIGNING_KEY.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Hypervision-Signature"] == expected
    alert = receiver.bodies()[0]["alert"]
    assert (alert["id"], alert["rule"], alert["dev_eui"], alert["value"], alert["state"]) == (
        opened[0], "co2-ce2", CE2, 1800.0, "open")
    assert alert["since"].startswith("2026-03-09T09:00")

    rows = admin.execute(f"SELECT state, closed_by FROM {SCHEMA}.alerts").fetchall()
    assert rows == [("closed", "system")]
    assert admin.execute(f"SELECT state, attempts FROM {SCHEMA}.alert_notifications"
                         " ORDER BY channel").fetchall() == [("sent", 1), ("sent", 1)]


def test_a_person_acknowledges_and_closes_an_alert_from_the_cli(
    member_db: psycopg.Connection[Any], nsettings: Settings,
    receiver: Receiver,
) -> None:
    admin = member_db
    declare(admin, nsettings, {"alerts": [_co2_rule(receiver.url(), duration="0s")]})
    put(admin, CE2, "air.co2", hourly(T0, [1600, 1700, 1800], dt.timedelta(minutes=10)))
    (alert_id,) = _evaluate(admin, nsettings, _minutes(0)).opened
    app = typer.Typer()
    alerts_commands.register(app)
    runner = CliRunner(env={"COLUMNS": "200"})

    result = runner.invoke(app, ["alerts", "ack", SLUG, str(alert_id), "--by", "Agent Dupont"])
    assert result.exit_code == 0, result.output
    assert "acknowledged" in result.output
    listed = runner.invoke(app, ["alerts", "list", SLUG, "--state", "acknowledged"])
    assert listed.exit_code == 0 and "co2-ce2" in listed.output
    # Acknowledged is not closed: the rule neither opens another alert nor closes it.
    assert _evaluate(admin, nsettings, _minutes(10)).still_open == 1
    assert runner.invoke(app, ["alerts", "close", SLUG, str(alert_id), "--reason",
                               "fenêtres ouvertes"]).exit_code == 0
    # The condition still holds, but a person closed this episode: no new alert.
    assert _evaluate(admin, nsettings, _minutes(20)).opened == []
    refused = runner.invoke(app, ["alerts", "ack", SLUG, str(alert_id)])
    assert refused.exit_code == 1 and "closed" in refused.output
    assert runner.invoke(app, ["alerts", "ack", SLUG, "999999"]).exit_code == 1

    row = admin.execute(f"SELECT state, acknowledged_by, closed_by, close_reason FROM {SCHEMA}"
                        ".alerts WHERE id = %s", (alert_id,)).fetchone()
    assert row[0] == "closed" and row[1] == "Agent Dupont" and row[3] == "fenêtres ouvertes"
    actions = [r[0] for r in admin.execute(
        "SELECT action FROM hv.audit_log WHERE member_slug = %s AND target = %s ORDER BY id",
        (SLUG, f"alert:{alert_id}")).fetchall()]
    assert actions == ["alerts.acknowledge", "alerts.close"]

    # A new episode (below, then above again) opens a new alert.
    put(admin, CE2, "air.co2", [(_minutes(30), 700), (_minutes(40), 1600)])
    assert _evaluate(admin, nsettings, _minutes(30)).opened == []
    assert len(_evaluate(admin, nsettings, _minutes(40)).opened) == 1


def test_failed_notifications_are_retried_or_given_up(
    member_db: psycopg.Connection[Any], nsettings: Settings,
    receiver: Receiver,
) -> None:
    admin = member_db
    receiver.fail_first = [503]
    declare(admin, nsettings, {"alerts": [
        {"name": "co2-hook", "metric": "air.co2", "condition": "above", "threshold": 1500,
         "devices": [CE2], "recipients": {"webhooks": [receiver.url(), receiver.url("/gone")]}},
        {"name": "co2-mail", "metric": "air.co2", "condition": "above", "threshold": 1500,
         "devices": [CE2], "recipients": {"emails": ["nobody@analytica.example.org"]}},
    ]})
    put(admin, CE2, "air.co2", [(T0, 1800)])
    assert len(_evaluate(admin, nsettings, T0).opened) == 2
    # No SMTP server on this port: a transient error, retried up to 3 attempts.
    closed_port = nsettings.model_copy(update={"smtp_port": 1})

    first = _deliver(admin, closed_port)
    # /hook answered 503 (retry), /gone 404 (permanent), the mail relay is unreachable.
    assert (len(first.sent), len(first.retried), len(first.failed)) == (0, 2, 1)
    second = _deliver(admin, closed_port)
    assert (len(second.sent), len(second.retried), len(second.failed)) == (1, 1, 0)
    third = _deliver(admin, closed_port)
    assert (len(third.sent), len(third.retried), len(third.failed)) == (0, 0, 1)
    assert _deliver(admin, closed_port).sent == []

    rows = admin.execute(
        f"SELECT channel, target, state, attempts, last_error IS NOT NULL"
        f" FROM {SCHEMA}.alert_notifications ORDER BY id").fetchall()
    assert rows == [
        ("webhook", receiver.url(), "sent", 2, False),
        ("webhook", receiver.url("/gone"), "failed", 1, True),
        ("email", "nobody@analytica.example.org", "failed", 3, True),
    ]
    assert [p for p, _, _ in receiver.requests].count("/hook") == 2


def test_the_backoff_doubles_up_to_its_cap() -> None:
    import random

    rng = random.Random(1)
    waits = [notify.backoff(n, 30, 3600, rng) for n in range(1, 10)]
    assert 15 <= waits[0] <= 30 and 30 <= waits[1] <= 60 and 60 <= waits[2] <= 120
    assert all(w <= 3600 for w in waits) and waits[-1] >= 1800


def test_a_silent_device_opens_an_alert_and_closes_when_heard_again(
    member_db: psycopg.Connection[Any], nsettings: Settings,
) -> None:
    admin = member_db
    declare(admin, nsettings, {"alerts": [
        {"name": "muet", "condition": "silent", "duration": "1h", "severity": "critical",
         "devices": [MUTE, NEVER]}]})
    now = utc(2026, 3, 10, 12)
    admin.execute(f"INSERT INTO {SCHEMA}.device_state (dev_eui, last_seen) VALUES (%s, %s)",
                  (MUTE, now - dt.timedelta(hours=2)))
    # NEVER has never been heard: not installed yet, no alert.
    result = _evaluate(admin, nsettings, now)
    assert len(result.opened) == 1
    alert = lifecycle.alerts(admin, SCHEMA)[0]
    assert (alert["dev_eui"], alert["severity"], alert["since"]) == (
        MUTE, "critical", now - dt.timedelta(hours=1))
    admin.execute(f"UPDATE {SCHEMA}.device_state SET last_seen = %s WHERE dev_eui = %s",
                  (now - dt.timedelta(minutes=5), MUTE))
    assert _evaluate(admin, nsettings, now).closed == result.opened


def test_a_leak_rule_opens_an_alert_after_three_nights(
    member_db: psycopg.Connection[Any], nsettings: Settings,
) -> None:
    admin = member_db
    declare(admin, nsettings, {"alerts": [{"name": "fuite", "condition": "leak"}]})
    put(admin, LEAKY, "water.index", hourly(utc(2026, 1, 12, 22), [10.0 * i for i in range(56)]))
    refresh(admin, nsettings)
    # 15 January, 06:00 in Paris: the night ending that morning (01:00-05:00) is complete.
    result = _evaluate(admin, nsettings, utc(2026, 1, 15, 5))
    assert len(result.opened) == 1
    alert = lifecycle.alerts(admin, SCHEMA)[0]
    assert alert["dev_eui"] == LEAKY and "3 nuits" in alert["message"]
    # At 03:00 UTC the third night is not over: only two complete nights, no leak yet.
    admin.execute(f"TRUNCATE {SCHEMA}.alerts CASCADE")
    assert _evaluate(admin, nsettings, utc(2026, 1, 15, 3)).opened == []


def test_rules_are_validated_with_the_tenant_file(tmp_path: Path) -> None:
    base = yaml.safe_load((TENANTS / f"{SLUG}.yaml").read_text(encoding="utf-8"))
    path = tmp_path / f"{SLUG}.yaml"

    def rules(*items: dict[str, Any]) -> TenantSpec:
        path.write_text(yaml.safe_dump({**base, "alerts": list(items)}, allow_unicode=True),
                        encoding="utf-8")
        return load_file(path)

    with pytest.raises(SpecError, match=r"alerts\.0: .*needs a metric and a threshold"):
        rules({"name": "a", "metric": "air.co2", "condition": "above", "duration": "15m"})
    with pytest.raises(SpecError, match=r"alerts\.0\.metric: .*unknown metric 'air.co3'"):
        rules({"name": "a", "metric": "air.co3", "condition": "above", "threshold": 1})
    with pytest.raises(SpecError, match=r"alerts\.1\.recipients\.emails\.0: "):
        rules({"name": "a", "condition": "silent"},
              {"name": "b", "condition": "silent", "recipients": {"emails": ["not-a-mail"]}})
    rule = rules({"name": "a", "condition": "silent", "duration": "90m", "recipients": {
        "emails": ["x@example.org"], "webhooks": ["http://127.0.0.1/h"]}}).alerts[0]
    assert rule.duration == dt.timedelta(minutes=90)
    assert rule.recipients.targets() == [("email", "x@example.org"),
                                         ("webhook", "http://127.0.0.1/h")]

"""Deliveries to a partner's URL: signed with HMAC-SHA256, retried, logged for both sides,
and a failure alerts the provider by e-mail without losing a row."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import json

import pyarrow.parquet as pq
import pytest

from hypervision.db import connect_admin
from hypervision.settings import Settings
from hypervision.sharing import deliveries
from hypervision.tenancy.spec import Delivery, Partner, SftpTarget, Share, TenantSpec
from tests.alerts.conftest import Receiver, SmtpSink, receiver, smtp_sink
from tests.sharing.conftest import BINS, SftpServer, Story

pytestmark = pytest.mark.services

__all__ = ["receiver", "smtp_sink"]


def with_partner(story: Story, name: str, url: str, fmt: str) -> list[TenantSpec]:
    today = dt.datetime.now(dt.UTC).date()
    share = Share(name=name, partner=Partner(name="Université (test)"),
                  data_classes=["waste-fill"], metrics=["fill.level"],
                  purpose="Research on the filling of containers", legal_basis="public-task",
                  starts=today, ends=today + dt.timedelta(days=30),
                  delivery=Delivery(schedule="weekly", format=fmt, url=url))  # type: ignore[arg-type]
    return [s.model_copy(update={"shares": [*s.shares, share]}) if s.name == "commune_a"
            else s for s in story.specs]


@pytest.fixture
def dsettings(story: Story, smtp_sink: tuple[SmtpSink, int]) -> Settings:
    return story.settings.model_copy(update={
        "delivery_retry_pause": 0.0, "delivery_attempts": 3, "notify_timeout": 5.0,
        "smtp_host": "127.0.0.1", "smtp_port": smtp_sink[1], "smtp_from": "hv@hv.test"})


def test_a_signed_delivery_is_retried_until_it_lands(
        story: Story, dsettings: Settings, receiver: Receiver) -> None:
    lines = story.apply(with_partner(story, "to-university", receiver.url(), "jsonl"))
    assert any("share to-university → partner Université (test)" in line
               and "delivered weekly as jsonl" in line for line in lines)
    receiver.fail_first = [503]
    try:
        with connect_admin(dsettings) as conn:
            sent = [o for o in deliveries.run_due(conn, dsettings)
                    if o.agreement == "commune_a/to-university"]
            assert [(o.status, o.rows) for o in sent] == [("sent", 120)]
            log = [d for d in deliveries.log_of(conn, "commune_a")
                   if d["agreement"] == "to-university"]
            assert log[0]["attempts"] == 2 and log[0]["status"] == "sent"
            # Weekly: not due again tomorrow.
            tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
            assert not [o for o in deliveries.run_due(conn, dsettings, now=tomorrow)
                        if o.agreement == "commune_a/to-university"]
        assert len(receiver.requests) == 2
        _, headers, body = receiver.requests[-1]
        key = deliveries.signing_key(dsettings, "commune_a", "to-university")
        expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Hypervision-Signature"], expected)
        rows = [json.loads(line) for line in body.decode().splitlines()]
        assert len(rows) == 120 and {r["device"] for r in rows} == set(BINS)
        assert headers["X-Hypervision-File"] == sent[0].file_name
    finally:
        story.apply()


def test_a_failed_delivery_alerts_the_provider_and_loses_nothing(
        story: Story, dsettings: Settings, receiver: Receiver,
        smtp_sink: tuple[SmtpSink, int]) -> None:
    story.apply(with_partner(story, "to-lab", receiver.url("/gone"), "parquet"))
    try:
        with connect_admin(dsettings) as conn:
            failed = [o for o in deliveries.run_due(conn, dsettings)
                      if o.agreement == "commune_a/to-lab"]
            assert [(o.status, o.error) for o in failed] == [("failed", "HTTP 404")]
            entries = conn.execute(
                "SELECT member_slug, params ->> 'error' FROM hv.audit_log"
                " WHERE action = 'share.delivery-failed' AND target = 'commune_a/to-lab'"
            ).fetchall()
            assert entries == [("commune_a", "HTTP 404")]
        (_sender, to, message), = smtp_sink[0].messages
        assert to == ["dpo@commune-a.example.org"] and "to-lab" in message["Subject"]
        # The recipient fixes its URL: the next delivery holds every row, none lost.
        story.apply(with_partner(story, "to-lab", receiver.url(), "parquet"))
        with connect_admin(dsettings) as conn:
            sent = [o for o in deliveries.run_due(conn, dsettings)
                    if o.agreement == "commune_a/to-lab"]
            assert [(o.status, o.rows) for o in sent] == [("sent", 120)]
            log = [d["status"] for d in deliveries.log_of(conn, "commune_a")
                   if d["agreement"] == "to-lab"]
            assert log == ["sent", "failed"]
        table = pq.read_table(io.BytesIO(receiver.requests[-1][2]))
        assert table.num_rows == 120 and table.column_names[:3] == ["time", "device", "metric"]
    finally:
        story.apply()


def test_an_sftp_server_with_another_host_key_gets_nothing(
        story: Story, dsettings: Settings, sftp_server: SftpServer) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    today = dt.datetime.now(dt.UTC).date()
    share = Share(name="to-impostor", partner=Partner(name="Partner (test)"),
                  data_classes=["waste-fill"], purpose="Checking the host key is checked",
                  legal_basis="public-task", starts=today, ends=today + dt.timedelta(days=2),
                  delivery=Delivery(sftp=SftpTarget(
                      host=sftp_server.host, port=sftp_server.port, user=sftp_server.user,
                      path=str(sftp_server.root), host_key=other)))
    story.apply([s.model_copy(update={"shares": [*s.shares, share]})
                 if s.name == "commune_a" else s for s in story.specs])
    try:
        with connect_admin(dsettings) as conn:
            outcome, = [o for o in deliveries.run_due(conn, dsettings)
                        if o.agreement == "commune_a/to-impostor"]
        assert outcome.status == "failed" and "SFTP" in (outcome.error or "")
        assert not list(sftp_server.root.glob("commune_a_to-impostor_*"))
    finally:
        story.apply()

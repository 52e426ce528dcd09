"""The whole story of a sharing agreement: commune A shares its waste containers with
intercommunality B for a year; B's reader sees them in SQL, in the API and in
SensorThings; B's delivery lands on the SFTP server; the agreement expires and B's next
read is refused; both members' journals show all of it."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from hypervision import accounts
from hypervision.api.main import create_app
from hypervision.db import connect_admin, connect_as
from hypervision.jobs.sharing import expire_agreements
from hypervision.sharing import deliveries
from hypervision.tenancy.spec import Delivery, SftpTarget
from tests.sharing.conftest import BINS, METER, SCHEMA, T0, SftpServer, Story

pytestmark = pytest.mark.services

DAY = {"start": "2026-01-05T00:00:00Z", "end": "2026-01-06T00:00:00Z"}


@pytest.fixture
def client(story: Story) -> Iterator[TestClient]:
    with TestClient(create_app(story.settings)) as test_client:
        yield test_client


def bea_token(story: Story) -> dict[str, str]:
    with connect_admin(story.settings) as conn:
        issued = accounts.create_token(conn, accounts.Who("system:test-setup"),
                                       email="bea@epci-b.example.org",
                                       expires_at=dt.datetime.now(dt.UTC)
                                       + dt.timedelta(hours=1))
    return {"Authorization": f"Bearer {issued.secret}"}


def ada_token(story: Story) -> dict[str, str]:
    with connect_admin(story.settings) as conn:
        issued = accounts.create_token(conn, accounts.Who("system:test-setup"),
                                       email="ada@commune-a.example.org",
                                       expires_at=dt.datetime.now(dt.UTC)
                                       + dt.timedelta(hours=1))
    return {"Authorization": f"Bearer {issued.secret}"}


def with_delivery(story: Story, server: SftpServer) -> list:
    """A's file, its agreement now delivered daily by SFTP to B's server."""
    specs = []
    for spec in story.specs:
        if spec.name == "commune_a":
            delivery = Delivery(schedule="daily", format="csv", sftp=SftpTarget(
                host=server.host, port=server.port, user=server.user,
                path=str(server.root), host_key=server.host_key))
            spec = spec.model_copy(update={"shares": [
                spec.shares[0].model_copy(update={"delivery": delivery})]})
        specs.append(spec)
    return specs


def actions(story: Story, member: str, since: int) -> list[tuple[str, str]]:
    with connect_admin(story.settings) as conn:
        return [(r[0], r[1]) for r in conn.execute(
            "SELECT action, source FROM hv.audit_log WHERE member_slug = %s AND id > %s"
            " ORDER BY id", (member, since)).fetchall()]


def test_commune_a_shares_its_containers_with_intercommunality_b_for_a_year(
        story: Story, sftp_server: SftpServer, client: TestClient) -> None:
    with connect_admin(story.settings) as conn:
        row = conn.execute("SELECT coalesce(max(id), 0) FROM hv.audit_log").fetchone()
    first = row[0] if row else 0

    # A declares the delivery in its file; `tenants apply` shows and applies it.
    lines = story.apply(with_delivery(story, sftp_server))
    assert any(line.startswith("~ commune_a: share waste-to-epci → member epci_b")
               and "delivered daily as csv" in line for line in lines), lines

    # B's reader, in SQL: the two containers' fill level, nothing else.
    with connect_as(story.settings, "epci_b_reader", autocommit=True) as conn:
        rows = conn.execute(sql.SQL("SELECT DISTINCT device, metric FROM {} ORDER BY 1")
                            .format(sql.Identifier(SCHEMA, "measurements"))).fetchall()
    assert rows == [(BINS[0], "fill.level"), (BINS[1], "fill.level")]

    # B, in the API, with a token of one of its people.
    headers = bea_token(story)
    listed = client.get("/api/v1/members/epci_b/shares", headers=headers)
    assert listed.status_code == 200
    assert [(a["provider"], a["name"], a["state"]) for a in listed.json()] == [
        ("commune_a", "waste-to-epci", "active")]
    url = "/api/v1/members/epci_b/shares/commune_a/waste-to-epci/measurements"
    read = client.get(url, headers=headers, params={**DAY, "limit": 10_000})
    assert read.status_code == 200, read.text
    body = read.json()["measurements"]
    assert len(body) == 120 and {m["device"] for m in body} == set(BINS)
    assert METER not in read.text

    # B, in SensorThings: the shared containers are Things, their fill level Observations.
    sta = "/sta/v1.1/epci_b"
    things = client.get(f"{sta}/Things", headers=headers,
                        params={"$filter": "properties/provider eq 'commune_a'"})
    assert things.status_code == 200, things.text
    assert sorted(t["properties"]["device"] for t in things.json()["value"]) == list(BINS)
    observations = client.get(f"{sta}/Observations", headers=headers,
                              params={"$count": "true", "$top": "5",
                                      "$filter": "Datastream/ObservedProperty/name eq"
                                                 " 'fill.level'"})
    assert observations.status_code == 200, observations.text
    assert observations.json()["@iot.count"] == 120

    # B's delivery lands on its SFTP server; the next one holds only what is new.
    with connect_admin(story.settings) as conn:
        sent = deliveries.run_due(conn, story.settings)
        assert [(o.agreement, o.status, o.rows) for o in sent] == [
            ("commune_a/waste-to-epci", "sent", 120)]
        landed = sftp_server.root / sent[0].file_name
        table = list(csv.DictReader(io.StringIO(landed.read_text())))
        assert len(table) == 120 and {r["device"] for r in table} == set(BINS)
        assert not list(sftp_server.root.glob("*.part"))
        # Not due again today; tomorrow, only the reading written since.
        assert deliveries.run_due(conn, story.settings) == []
        conn.execute(sql.SQL("INSERT INTO {} VALUES (%s, %s, 'fill.level', 99, '%%', %s)")
                     .format(sql.Identifier("tenant_commune_a", "measurements")),
                     (T0 + dt.timedelta(hours=2), BINS[0], uuid.uuid4()))
        tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(days=1, minutes=1)
        again = deliveries.run_due(conn, story.settings, now=tomorrow)
        assert [(o.status, o.rows) for o in again] == [("sent", 1)]
        log = deliveries.log_of(conn, "epci_b")
        assert [d["status"] for d in log] == ["sent", "sent"]
        assert log == [d for d in deliveries.log_of(conn, "commune_a")
                       if d["recipient_member"] == "epci_b"]
    for member in ("epci_b", "commune_a"):  # both sides read the log in the API
        seen = client.get(f"/api/v1/members/{member}/shares/deliveries",
                          headers=headers if member == "epci_b" else ada_token(story))
        assert [(d["status"], d["rows"]) for d in seen.json()
                if d["agreement"] == "waste-to-epci"] == [("sent", 1), ("sent", 120)]
    with connect_admin(story.settings) as conn:

        # A year goes by: the agreement's dates are a year earlier, and the job runs.
        conn.execute("UPDATE hv.share_agreements SET starts_at = starts_at - interval"
                     " '366 days', ends_at = now() - interval '1 second'"
                     " WHERE provider = 'commune_a' AND name = 'waste-to-epci'")
    assert expire_agreements() == ["commune_a/waste-to-epci"]
    assert expire_agreements() == []
    with connect_admin(story.settings) as conn:
        granted = conn.execute("SELECT has_schema_privilege('epci_b_reader', %s, 'USAGE')",
                               (SCHEMA,)).fetchone()
    assert granted == (False,)  # revoked, not only refused by the gate

    # B's next read is refused, in SQL, in the API and in SensorThings.
    with connect_as(story.settings, "epci_b_reader", autocommit=True) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier(SCHEMA, "measurements")))
    assert client.get(url, headers=headers, params=DAY).status_code == 403
    things = client.get(f"{sta}/Things", headers=headers)
    assert things.status_code == 200 and things.json()["value"] == []

    # Both journals show all of it.
    for member in ("commune_a", "epci_b"):
        seen = actions(story, member, first)
        for expected in (("share.changed", "cli"), ("share.read", "sql"),
                         ("share.read", "api"), ("share.delivered", "job"),
                         ("share.expired", "job")):
            assert expected in seen, (member, expected, seen)
        assert seen.index(("share.changed", "cli")) < seen.index(("share.read", "sql")) \
            < seen.index(("share.delivered", "job")) < seen.index(("share.expired", "job"))

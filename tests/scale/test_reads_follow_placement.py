"""The API's reads and exports of a member on the second server are served from there,
with the member's reader role (the primary holds no schema of it)."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from psycopg.types.json import Json

from hypervision import accounts, placement
from hypervision.api.main import create_app
from hypervision.db import connect_admin
from tests.scale.conftest import TwoServers

pytestmark = pytest.mark.services

AIR = "9a9a9a9a9a9a0002"
T0 = datetime(2025, 1, 1, 10, 0, tzinfo=UTC)
WINDOW = {"start": "2025-01-01T00:00:00Z", "end": "2025-01-02T00:00:00Z"}
SETUP = accounts.Who("system:test-setup")


def test_measurements_uplinks_and_exports_of_a_member_on_the_second_server(
    two_servers: TwoServers
) -> None:
    settings = two_servers.settings
    with placement.connect_admin(settings, "second") as second:
        for minute in range(60):
            at = T0 + timedelta(minutes=minute)
            dedup = uuid.uuid5(uuid.NAMESPACE_URL, f"hv-test:kappa:{minute}")
            second.execute(sql.SQL(
                "INSERT INTO {} (time, received_at, dev_eui, deduplication_id, f_cnt, f_port,"
                " data, event) VALUES (%s, %s, %s, %s, %s, 85, %s, %s) ON CONFLICT DO NOTHING"
            ).format(sql.Identifier("tenant_kappa", "uplinks")),
                (at, at, AIR, dedup, minute, bytes([minute]), Json({"fCnt": minute})))
            second.execute(sql.SQL(
                "INSERT INTO {} (time, dev_eui, metric, value, unit, deduplication_id)"
                " VALUES (%s, %s, 'co2', %s, 'ppm', %s) ON CONFLICT DO NOTHING"
            ).format(sql.Identifier("tenant_kappa", "measurements")),
                (at, AIR, 400.0 + minute, dedup))
    with connect_admin(settings) as conn:
        accounts.upsert_account(conn, SETUP, email="gina@kappa.example.org", name="Gina",
                                member="kappa", rights=["read", "export"])
        token = accounts.create_token(conn, SETUP, email="gina@kappa.example.org").secret
        assert conn.execute("SELECT to_regclass('tenant_kappa.measurements')"
                            ).fetchone() == (None,)
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        measurements = client.get("/api/v1/members/kappa/measurements",
                                  params={**WINDOW, "devices": AIR}, headers=headers)
        assert measurements.status_code == 200, measurements.text
        rows = measurements.json()["rows"]
        assert len(rows) == 60 and rows[-1]["value"] == 459.0

        uplinks = client.get("/api/v1/members/kappa/uplinks", params={**WINDOW, "limit": 7},
                             headers=headers)
        assert uplinks.status_code == 200, uplinks.text
        assert len(uplinks.json()["items"]) == 7

        export = client.get("/api/v1/members/kappa/exports/measurements.csv",
                            params={**WINDOW, "devices": AIR}, headers=headers)
        assert export.status_code == 200, export.text
        assert len(list(csv.DictReader(io.StringIO(export.text)))) == 60

        # A stranger still gets 404: scoping is unchanged.
        with connect_admin(settings) as conn:
            stranger = accounts.create_token(conn, SETUP, email="gina@kappa.example.org")
        assert client.get("/api/v1/members/alpha/measurements", params=WINDOW, headers={
            "Authorization": f"Bearer {stranger.secret}"}).status_code == 404

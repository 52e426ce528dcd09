"""Fixtures of the API tests: a syndicate member with operators, named accounts and
their tokens (the personas of the authorisation matrix), a little data in alpha's and
beta's schemas, and the application served in-process by FastAPI's TestClient against
the real database.

Personas (healthchecks' Alice, Bob and Charlie):
- alpha: alice@alpha, an admin of member alpha (read, export, admin);
- beta: bob@beta, the same for member beta: a stranger to alpha, who must get 404;
- op: olga@syndic, an operator of the syndicate, without grant;
- op_grant: oscar@syndic, an operator holding a grant to read alpha's personal data;
- anon: no token; expired and revoked: alice's tokens past expiry or revoked.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from psycopg.types.json import Json

from hypervision import accounts
from hypervision.api.db import ensure_api_role
from hypervision.api.main import create_app
from hypervision.db import connect_admin
from hypervision.settings import Settings
from hypervision.tenancy import apply as tenancy
from hypervision.tenancy.spec import User, load_dir, load_file
from ingest.decode import Catalogue
from tests.conftest import TENANTS

HERE = Path(__file__).parent
SYNDIC = HERE / "tenants" / "syndic.yaml"
# The data window of the fixtures: 2025-01-01, 10:00 to 11:00 UTC, one point a minute.
T0 = datetime(2025, 1, 1, 10, 0, tzinfo=UTC)
WINDOW = {"start": "2025-01-01T00:00:00Z", "end": "2025-01-02T00:00:00Z"}
WATER, BIN, AIR = "a1a1a1a1a1a10001", "a1a1a1a1a1a10002", "a1a1a1a1a1a10003"
SETUP = accounts.Who("system:test-setup")


@dataclass
class World:
    """What the fixtures created: tokens per persona, and ids tests refer to."""

    settings: Settings
    tokens: dict[str, str]
    token_ids: dict[str, int]

    def headers(self, persona: str) -> dict[str, str]:
        token = self.tokens.get(persona)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def fresh_token(self, email: str,
                    rights: tuple[str, ...] | None = None) -> accounts.IssuedToken:
        with connect_admin(self.settings) as conn:
            return accounts.create_token(conn, SETUP, email=email, rights=rights,
                                         expires_at=datetime.now(UTC) + timedelta(days=1))

    def fresh_grant(self, operator: str = "oscar@syndic.example.org",
                    member: str = "alpha") -> accounts.Grant:
        with connect_admin(self.settings) as conn:
            return accounts.create_grant(conn, SETUP, operator_email=operator, member=member,
                                         hours=2, reason="test: investigating a leak")

    def fresh_alert(self, dev_eui: str = BIN, member: str = "alpha") -> int:
        """An open alert, written as the evaluation job would (hypervision.alerts); each
        under a rule of its own, since a rule has one alert at most per device not closed."""
        with connect_admin(self.settings) as conn:
            row = conn.execute(sql.SQL(
                "INSERT INTO {} (rule, dev_eui, condition, metric, threshold, severity, message,"
                " value, since, last_value, rule_spec)"
                " VALUES (%s, %s, 'above', 'fill.level', 80, 'warning', %s, 91, %s, 91, %s)"
                " RETURNING id"
            ).format(sql.Identifier(f"tenant_{member}", "alerts")),
                (f"test-{uuid.uuid4().hex[:12]}", dev_eui, "fill.level = 91 au-dessus de 80",
                 T0, Json({"name": "test"}))).fetchone()
        assert row is not None
        return int(row[0])


def _insert_data(conn: psycopg.Connection, schema: str, devices: list[str]) -> None:
    """One uplink and one measurement per device and minute, for an hour. The
    deduplication ids derive from the device and the minute: a second run of the fixture
    (tests/console imports it, and pytest runs it once per conftest) adds nothing."""
    uplinks, measurements = [], []
    for device in devices:
        for minute in range(60):
            at = T0 + timedelta(minutes=minute)
            dedup = uuid.uuid5(uuid.NAMESPACE_URL, f"hv-test:{schema}:{device}:{minute}")
            uplinks.append((at, at, device, dedup, minute, 85, bytes([minute]),
                            Json({"deduplicationId": str(dedup), "fCnt": minute})))
            measurements.append((at, device, "level", float(minute), "%", dedup))
    with conn.cursor() as cur:
        cur.executemany(sql.SQL(
            "INSERT INTO {} (time, received_at, dev_eui, deduplication_id, f_cnt, f_port, data,"
            " event) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
        ).format(sql.Identifier(schema, "uplinks")), uplinks)
        cur.executemany(sql.SQL(
            "INSERT INTO {} (time, dev_eui, metric, value, unit, deduplication_id)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
        ).format(sql.Identifier(schema, "measurements")), measurements)


def _expire(conn: psycopg.Connection, token_id: int) -> None:
    conn.execute("UPDATE hv.api_tokens SET expires_at = now() - interval '1 minute'"
                 " WHERE id = %s", (token_id,))


@pytest.fixture(scope="session")
def world(platform_db: Settings) -> World:
    settings = platform_db
    specs = [*load_dir(TENANTS), load_file(SYNDIC)]
    with connect_admin(settings) as conn:
        tenancy.apply(conn, specs, Catalogue.load(), settings, log=lambda _: None)
        ensure_api_role(conn, settings)
        by_name = {s.name: s for s in specs}
        alpha = by_name["alpha"].model_copy(update={"users": [
            User(name="Alice Admin", email="alice@alpha.example.org",
                 rights=["read", "export", "admin"]),
            User(name="Ana Reader", email="ana@alpha.example.org", rights=["read"]),
        ]})
        beta = by_name["beta"].model_copy(update={"users": [
            User(name="Bob Admin", email="bob@beta.example.org",
                 rights=["read", "export", "admin"]),
        ]})
        for spec in (alpha, beta):
            accounts.sync_users(conn, spec, SETUP)
        for email, name in (("olga@syndic.example.org", "Olga Operator"),
                            ("oscar@syndic.example.org", "Oscar Operator")):
            accounts.upsert_account(conn, SETUP, email=email, name=name, member="syndic",
                                    rights=["read", "export", "admin"], operator=True)
        accounts.set_password(conn, SETUP, "alice@alpha.example.org", "correct horse battery")
        # Ana reads only: her password alone signs her in (no second factor required).
        accounts.set_password(conn, SETUP, "ana@alpha.example.org", "correct horse battery")
        tokens: dict[str, str] = {}
        ids: dict[str, int] = {}
        for persona, email in (("alpha", "alice@alpha.example.org"),
                               ("alpha_read", "ana@alpha.example.org"),
                               ("beta", "bob@beta.example.org"),
                               ("op", "olga@syndic.example.org"),
                               ("op_grant", "oscar@syndic.example.org"),
                               ("expired", "alice@alpha.example.org"),
                               ("revoked", "alice@alpha.example.org")):
            issued = accounts.create_token(conn, SETUP, email=email, label=persona)
            tokens[persona], ids[persona] = issued.secret, issued.id
        _expire(conn, ids["expired"])
        accounts.revoke_token(conn, SETUP, ids["revoked"])
        accounts.create_grant(conn, SETUP, operator_email="oscar@syndic.example.org",
                              member="alpha", hours=24 * 7, reason="test: leak investigation")
        _insert_data(conn, "tenant_alpha", [WATER, BIN, AIR])
        _insert_data(conn, "tenant_beta", ["b2b2b2b2b2b20001"])
    return World(settings, tokens, ids)


def make_client(settings: Settings, **overrides: Any) -> TestClient:
    return TestClient(create_app(settings.model_copy(update=overrides)),
                      raise_server_exceptions=False)


@pytest.fixture(scope="session")
def client(world: World) -> Iterator[TestClient]:
    with make_client(world.settings, api_login_attempts=10_000) as c:
        yield c


@pytest.fixture
def admin_conn(world: World) -> Iterator[psycopg.Connection]:
    with connect_admin(world.settings) as conn:
        yield conn


@pytest.fixture
def fresh_limiter(world: World) -> None:
    """Forget the sign-in counters (Redis keeps them for the whole session otherwise)."""
    import redis

    client = redis.Redis.from_url(world.settings.redis_url)
    try:
        for key in client.scan_iter("hv:login:*"):
            client.delete(key)
    finally:
        client.close()

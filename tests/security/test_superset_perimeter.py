"""Finding 10: Superset behind the TLS proxy marks its session cookie Secure and trusts
the proxy's forwarded headers; only the syndicate's operators get the operator's view."""

from __future__ import annotations

import runpy
from typing import Any

import pytest

from hypervision.settings import get_settings
from hypervision.superset import server
from hypervision.superset.provision import user_roles
from hypervision.superset.server import CONFIG_FILE
from hypervision.tenancy.spec import TenantSpec

SYNDIC = {"version": "v1", "kind": "tenant", "name": "syndic_x",
          "identity": {"name": "Syndicat", "kind": "syndicate"},
          "contacts": {"dpo": {"name": "DPO", "email": "dpo@example.org"}},
          "users": [{"name": "Olga Operator", "email": "olga@example.org", "operator": True},
                    {"name": "Sam Secretary", "email": "sam@example.org"}]}


def _config(monkeypatch: pytest.MonkeyPatch, public_url: str | None) -> dict[str, Any]:
    settings = get_settings().model_copy(update={"superset_public_url": public_url})
    monkeypatch.setattr(server, "metadata_uri", lambda _: "postgresql+psycopg2://x@y/z")
    for name, value in server.environment(settings).items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(CONFIG_FILE))


def test_superset_served_over_https_sends_a_secure_cookie_and_trusts_the_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _config(monkeypatch, "https://dashboards.example.org")
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["TALISMAN_CONFIG"]["session_cookie_secure"] is True
    assert config["ENABLE_PROXY_FIX"] is True
    assert config["PROXY_FIX_CONFIG"]["x_for"] == 1
    assert config["PROXY_FIX_CONFIG"]["x_proto"] == 1


def test_superset_on_plain_loopback_http_keeps_a_usable_cookie(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _config(monkeypatch, None)
    assert config["SESSION_COOKIE_SECURE"] is False
    assert config["ENABLE_PROXY_FIX"] is False


def test_only_the_syndicates_operators_get_the_operator_role() -> None:
    spec = TenantSpec.model_validate(SYNDIC)
    olga, sam = spec.users
    assert user_roles(spec, olga, [1, 2], 9) == [1, 2, 9]
    assert user_roles(spec, sam, [1, 2], 9) == [1, 2]
    commune = TenantSpec.model_validate({
        **SYNDIC, "identity": {"name": "Commune", "kind": "commune"},
        "users": [SYNDIC["users"][1]]})
    assert user_roles(commune, commune.users[0], [1, 2], 9) == [1, 2]

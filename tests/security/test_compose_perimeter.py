"""Findings 1, 3 and 4 in docker-compose.yml: each container gets only the secrets it
uses. Read from the file (the stack's own tests start it)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.test_compose import COMPOSE, load_compose

# The containers that parse hostile input (devices' payloads, the HTTP integration).
PARSERS = ("receiver", "worker")
PLATFORM_SECRETS = {"HV_SECRET_KEY", "HV_ADMIN_DATABASE_URL", "HV_CHIRPSTACK_API_TOKEN",
                    "HV_MQTT_PASSWORD"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


def _env(compose: dict[str, Any], service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (compose["services"][service].get("environment") or {}).items()}


def _mounts(compose: dict[str, Any], service: str) -> list[str]:
    return [str(v) for v in compose["services"][service].get("volumes", [])]


def test_superset_gets_only_its_metadata_database_and_its_own_secret(
    compose: dict[str, Any],
) -> None:
    env = _env(compose, "superset")
    assert not PLATFORM_SECRETS & set(env), sorted(PLATFORM_SECRETS & set(env))
    assert not [k for k in env if "PASSWORD" in k or "TOKEN" in k]
    assert env["HV_SUPERSET_SECRET_KEY"].startswith("${SUPERSET_SECRET_KEY:?")
    assert "${ROLE_SECRETS_DIR:-./secrets}/superset:/run/hypervision/secrets:ro" in _mounts(
        compose, "superset")
    assert compose["services"]["superset"]["command"][-1] == "--prepared"
    # The bootstrap, as the superuser, runs once before it in its own container.
    init = compose["services"]["superset-init"]
    assert init["restart"] == "no" and "HV_ADMIN_DATABASE_URL" in _env(compose, "superset-init")
    assert compose["services"]["superset"]["depends_on"]["superset-init"]["condition"] == (
        "service_completed_successfully")


@pytest.mark.parametrize("service", (*PARSERS, "beat"))
def test_containers_that_parse_payloads_hold_no_platform_secret(
    compose: dict[str, Any], service: str
) -> None:
    env = _env(compose, service)
    assert not {"HV_SECRET_KEY", "HV_ADMIN_DATABASE_URL", "HV_CHIRPSTACK_API_TOKEN"} & set(env)


def test_each_container_mounts_only_its_own_roles_passwords(compose: dict[str, Any]) -> None:
    secrets = {name: [m for m in _mounts(compose, name) if "ROLE_SECRETS_DIR" in m]
               for name in compose["services"]}
    mount = "${ROLE_SECRETS_DIR:-./secrets}/%s:/run/hypervision/secrets:ro"
    assert secrets["worker"] == [mount % "worker"]
    assert secrets["api"] == [mount % "api"]
    assert secrets["receiver"] == [] and secrets["beat"] == []
    # Only the superuser's side writes the main folder.
    writers = sorted(n for n, m in secrets.items() if any(x.endswith("/secrets") for x in m))
    assert writers == ["migrate", "superset-init"]


def test_redis_has_a_user_per_client_and_no_default_user(compose: dict[str, Any]) -> None:
    command = " ".join(compose["services"]["redis"]["command"])
    assert "--user default off" in command
    passwords = {}
    for service in ("receiver", "worker", "jobs", "beat"):
        env = _env(compose, service)
        assert env["HV_REDIS_USERNAME"] == service
        assert f"--user {service} on" in command
        passwords[service] = env["HV_REDIS_PASSWORD"]
    assert len(set(passwords.values())) == 4
    assert "-@admin" in command


def test_the_http_integration_token_is_required(compose: dict[str, Any]) -> None:
    assert _env(compose, "receiver")["HV_HTTP_INTEGRATION_TOKEN"].startswith(
        "${HV_HTTP_INTEGRATION_TOKEN:?")


def test_chirpstacks_site_needs_the_operators_networks() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    assert "${CHIRPSTACK_OPERATOR_NETWORKS:?" in text


def test_chirpstack_is_served_only_after_its_admin_password_is_set(
    compose: dict[str, Any],
) -> None:
    init = compose["services"]["chirpstack-init"]
    assert init["command"] == ["hypervision", "chirpstack", "secure-admin"]
    assert _env(compose, "chirpstack-init")["HV_CHIRPSTACK_ADMIN_PASSWORD"].startswith(
        "${CHIRPSTACK_ADMIN_PASSWORD:?")
    proxy = compose["services"]["proxy"]["depends_on"]
    assert proxy["chirpstack-init"]["condition"] == "service_completed_successfully"
    assert "chirpstack" not in proxy

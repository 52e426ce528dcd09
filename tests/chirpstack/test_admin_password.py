"""Finding 2: ChirpStack's `admin`/`admin` is replaced at bootstrap, before the site is
served (`hypervision chirpstack secure-admin`, docker-compose.yml's chirpstack-init)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from hypervision.chirpstack.admin import _login, secure_admin
from hypervision.settings import Settings, get_settings
from tests.chirpstack.fake_chirpstack import FakeChirpStack


def _settings(chirpstack: FakeChirpStack, password: str | None) -> Settings:
    return get_settings().model_copy(update={
        "chirpstack_api_url": chirpstack.target, "chirpstack_api_attempts": 2,
        "chirpstack_api_backoff": 0.05,
        "chirpstack_admin_password": SecretStr(password) if password else None})


def test_the_default_admin_password_is_replaced_once(chirpstack: FakeChirpStack) -> None:
    settings = _settings(chirpstack, "a-long-operator-password")
    assert _login(settings, "admin") is not None  # as ChirpStack installs itself
    assert secure_admin(settings) is True
    assert _login(settings, "admin") is None
    assert _login(settings, "a-long-operator-password") is not None
    # Idempotent: once changed, nothing to do.
    assert secure_admin(settings) is False
    assert chirpstack.store.calls["UserService.UpdatePassword"] == 1


@pytest.mark.parametrize("password", [None, "admin", "short"])
def test_it_needs_a_real_password(chirpstack: FakeChirpStack, password: str | None) -> None:
    with pytest.raises(ValueError, match="HV_CHIRPSTACK_ADMIN_PASSWORD"):
        secure_admin(_settings(chirpstack, password))
    assert _login(_settings(chirpstack, None), "admin") is not None

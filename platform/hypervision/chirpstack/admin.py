"""ChirpStack's `admin` account out of its default password, before the site is served.

ChirpStack creates a user `admin` with password `admin` at its first start. `secure_admin`
(`hypervision chirpstack secure-admin`, the one-shot `chirpstack-init` container of
docker-compose.yml, which the proxy waits for):

1. logs in as `admin`/`admin` (InternalService.Login); refused: the password was changed
   already, nothing to do;
2. with that session, finds the `admin` user (UserService.List) and sets its password to
   HV_CHIRPSTACK_ADMIN_PASSWORD (UserService.UpdatePassword);
3. checks the default password no longer logs in.
"""

from __future__ import annotations

from chirpstack_api import api

from hypervision.chirpstack.client import ChirpStack, Unauthenticated
from hypervision.settings import Settings

DEFAULT_EMAIL = "admin"
DEFAULT_PASSWORD = "admin"


def _client(settings: Settings, token: str) -> ChirpStack:
    ca = settings.chirpstack_api_ca_file
    return ChirpStack(settings.chirpstack_api_url, token, timeout=settings.chirpstack_api_timeout,
                      attempts=settings.chirpstack_api_attempts,
                      backoff=settings.chirpstack_api_backoff, tls=settings.chirpstack_api_tls,
                      root_certificates=ca.read_bytes() if ca is not None else None)


def _login(settings: Settings, password: str) -> str | None:
    """A session token, or None when ChirpStack refuses the password."""
    # Login needs no token; the client wants one to send.
    with _client(settings, "login") as anonymous:
        try:
            return str(anonymous.call("InternalService", "Login", api.LoginRequest(
                email=DEFAULT_EMAIL, password=password)).jwt)
        except Unauthenticated:
            return None


def secure_admin(settings: Settings) -> bool:
    """Replace the default password of ChirpStack's `admin`; True if it was changed,
    False if it was not the default any more."""
    if settings.chirpstack_admin_password is None:
        raise ValueError("HV_CHIRPSTACK_ADMIN_PASSWORD is not set: the password to give"
                         " ChirpStack's admin account (see .env.example)")
    new = settings.chirpstack_admin_password.get_secret_value()
    if new == DEFAULT_PASSWORD or len(new) < 12:
        raise ValueError("HV_CHIRPSTACK_ADMIN_PASSWORD must be at least 12 characters, not"
                         " the default")
    session = _login(settings, DEFAULT_PASSWORD)
    if session is None:
        return False
    with _client(settings, session) as client:
        users = [u for u in client.list_all("UserService", api.ListUsersRequest())
                 if u.email == DEFAULT_EMAIL]
        if len(users) != 1:
            raise RuntimeError("ChirpStack logged `admin` in but does not list that user")
        client.call("UserService", "UpdatePassword", api.UpdateUserPasswordRequest(
            user_id=users[0].id, password=new))
    if _login(settings, DEFAULT_PASSWORD) is not None:
        raise RuntimeError("ChirpStack still accepts the default admin password")
    return True

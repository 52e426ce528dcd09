"""Single sign-on: the OpenID Connect authorisation code flow with PKCE (authlib) against
the provider declared in settings (HV_OIDC_*), e.g. ProConnect. See
platform/hypervision/api/README.md, "Single sign-on".

1. `start`: a state, a nonce and a PKCE verifier, kept in `hv.sso_requests` (state as a
   SHA-256 digest, ten minutes, single-use); the browser goes to the provider.
2. `finish`: the state is claimed once (an expired or replayed one is refused), the code
   is exchanged with the verifier and the client secret, and the ID token is checked:
   signature (the provider's JWKS), issuer, audience (our client id), nonce, expiry.
3. `match`: the person is the declared account whose e-mail equals the provider's
   verified e-mail (or whose `sso_subject` is the `sub`, HV_OIDC_MATCH=sub); nobody is
   created by signing in; a suspended account is refused. With HV_OIDC_CHECK_SIRET
   (ProConnect), the `siret` claim's SIREN must be the member's `identity.siren`.
4. `second_factor`: the provider's `acr`/`amr` claims may prove a second factor
   (HV_OIDC_MFA_ACR, HV_OIDC_MFA_AMR); otherwise the platform asks its own.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from hypervision.accounts import Account, get_account, get_account_by_subject, token_digest
from hypervision.settings import Settings

REQUEST_MINUTES = 10
CALLBACK_PATH = "/console/sso/callback"
_METADATA: dict[str, tuple[float, dict[str, Any]]] = {}
METADATA_SECONDS = 300.0


class SSOError(Exception):
    """A single sign-on refused; the message is safe to show to the person."""


@dataclass(frozen=True)
class Identity:
    """What a verified ID token says, and where the browser goes next."""

    claims: dict[str, Any]
    id_token: str
    next_path: str


def enabled(settings: Settings) -> bool:
    return bool(settings.oidc_issuer and settings.oidc_client_id
                and settings.oidc_client_secret)


def redirect_uri(settings: Settings) -> str:
    return settings.public_base_url.rstrip("/") + CALLBACK_PATH


def metadata(settings: Settings) -> dict[str, Any]:
    """The provider's discovery document (kept five minutes)."""
    issuer = (settings.oidc_issuer or "").rstrip("/")
    cached = _METADATA.get(issuer)
    if cached is not None and time.monotonic() - cached[0] < METADATA_SECONDS:
        return cached[1]
    try:
        answer = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=10)
        answer.raise_for_status()
        found = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SSOError("the identity provider does not answer; try again later") from exc
    if found.get("issuer", "").rstrip("/") != issuer:
        raise SSOError("the identity provider's discovery document names another issuer")
    _METADATA[issuer] = (time.monotonic(), found)
    return found


def _client(settings: Settings) -> OAuth2Client:
    assert settings.oidc_client_secret is not None
    return OAuth2Client(settings.oidc_client_id, settings.oidc_client_secret.get_secret_value(),
                        scope=settings.oidc_scopes, redirect_uri=redirect_uri(settings),
                        code_challenge_method="S256", timeout=10)


def start(conn: psycopg.Connection, settings: Settings, next_path: str) -> str:
    """Record a new authorisation request; returns the provider's URL to send the
    browser to."""
    if not enabled(settings):
        raise SSOError("single sign-on is not enabled")
    found = metadata(settings)
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(48)
    with conn.transaction():
        conn.execute("DELETE FROM hv.sso_requests WHERE expires_at < now() - interval '1 day'")
        conn.execute(
            "INSERT INTO hv.sso_requests (state_hash, nonce, code_verifier, next_path,"
            " expires_at) VALUES (%s, %s, %s, %s, now() + make_interval(mins => %s))",
            (token_digest(state), nonce, verifier, next_path, REQUEST_MINUTES))
    with _client(settings) as client:
        url, _ = client.create_authorization_url(
            found["authorization_endpoint"], state=state, nonce=nonce, code_verifier=verifier)
    return str(url)


def _claim_request(conn: psycopg.Connection, state: str) -> tuple[str, str, str]:
    with conn.transaction():
        row = conn.execute(
            "UPDATE hv.sso_requests SET used_at = now() WHERE state_hash = %s"
            " AND used_at IS NULL AND expires_at > now()"
            " RETURNING nonce, code_verifier, next_path",
            (token_digest(state),)).fetchone()
    if row is None:
        raise SSOError("this sign-in request is unknown, expired or already used;"
                       " start again")
    return row[0], row[1], row[2]


def validate_id_token(settings: Settings, id_token: str, nonce: str) -> dict[str, Any]:
    """The ID token's claims, once its signature, issuer, audience, nonce and expiry
    are right; SSOError otherwise."""
    found = metadata(settings)
    try:
        keys = httpx.get(found["jwks_uri"], timeout=10).json()
        token = jwt.decode(id_token, KeySet.import_key_set(keys))
        jwt.JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True, "value": found["issuer"]},
            aud={"essential": True, "value": settings.oidc_client_id or ""},
            nonce={"essential": True, "value": nonce},
            exp={"essential": True}, sub={"essential": True},
        ).validate(token.claims)
    except (JoseError, ValueError, KeyError, httpx.HTTPError) as exc:
        raise SSOError(f"the identity provider's answer is not valid ({type(exc).__name__})"
                       ) from None
    claims: dict[str, Any] = dict(token.claims)
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != settings.oidc_client_id:
        raise SSOError("the identity provider's answer is for another service")
    return claims


def finish(conn: psycopg.Connection, settings: Settings, code: str, state: str) -> Identity:
    """Claim the request named by `state`, exchange `code`, validate the ID token."""
    if not enabled(settings):
        raise SSOError("single sign-on is not enabled")
    nonce, verifier, next_path = _claim_request(conn, state)
    found = metadata(settings)
    try:
        with _client(settings) as client:
            token = client.fetch_token(found["token_endpoint"], code=code,
                                       code_verifier=verifier)
    except Exception as exc:  # authlib raises its own errors and httpx's
        raise SSOError("the identity provider refused the sign-in code") from exc
    id_token = token.get("id_token")
    if not id_token:
        raise SSOError("the identity provider sent no ID token")
    claims = validate_id_token(settings, id_token, nonce)
    # Providers (ProConnect among them) often put the e-mail and the organisation in the
    # userinfo answer only: it completes the ID token's claims, for the same `sub`.
    if found.get("userinfo_endpoint") and token.get("access_token"):
        extra = _userinfo(settings, found, str(token["access_token"]))
        if extra.get("sub") != claims["sub"]:
            raise SSOError("the identity provider's userinfo names another person")
        claims = {**extra, **claims}
    return Identity(claims, id_token, next_path)


def _userinfo(settings: Settings, found: dict[str, Any], access_token: str) -> dict[str, Any]:
    """The userinfo claims, plain JSON or a JWT signed by the provider (ProConnect)."""
    try:
        answer = httpx.get(found["userinfo_endpoint"], timeout=10,
                           headers={"Authorization": f"Bearer {access_token}"})
        answer.raise_for_status()
        if answer.headers.get("content-type", "").startswith("application/jwt"):
            keys = httpx.get(found["jwks_uri"], timeout=10).json()
            return dict(jwt.decode(answer.text.strip(), KeySet.import_key_set(keys)).claims)
        body = answer.json()
    except (JoseError, ValueError, httpx.HTTPError) as exc:
        raise SSOError(f"the identity provider's userinfo is not valid ({type(exc).__name__})"
                       ) from None
    if not isinstance(body, dict):
        raise SSOError("the identity provider's userinfo is not valid")
    return body


def match(conn: psycopg.Connection, settings: Settings, claims: dict[str, Any]) -> Account:
    """The declared, active account the claims name; SSOError otherwise."""
    if settings.oidc_match == "sub":
        account = get_account_by_subject(conn, str(claims["sub"]))
    else:
        email = claims.get("email")
        if not isinstance(email, str) or claims.get("email_verified") is not True:
            raise SSOError("the identity provider gave no verified e-mail address")
        account = get_account(conn, email)
    if account is None or not account.declared:
        raise SSOError("no account of the platform matches this identity; ask your"
                       " administrator to declare you")
    if not account.active:
        raise SSOError("this account is suspended")
    if settings.oidc_check_siret:
        siret = str(claims.get("siret") or "")
        row = conn.execute("SELECT siren FROM hv.members WHERE slug = %s",
                           (account.member_slug,)).fetchone()
        if not siret[:9].isdigit() or row is None or row[0] != siret[:9]:
            raise SSOError("the organisation you signed in for is not this account's member")
    return account


def second_factor(settings: Settings, claims: dict[str, Any]) -> str | None:
    """'sso' when the provider's acr or amr claims prove a second factor, else None."""
    acrs = {v.strip() for v in settings.oidc_mfa_acr.split(",") if v.strip()}
    amrs = {v.strip() for v in settings.oidc_mfa_amr.split(",") if v.strip()}
    amr = claims.get("amr")
    if claims.get("acr") in acrs or (isinstance(amr, list) and amrs & set(map(str, amr))):
        return "sso"
    return None


def end_session_url(settings: Settings, id_token: str) -> str | None:
    """Where to send the browser to end the provider's session too, if it says."""
    try:
        endpoint = metadata(settings).get("end_session_endpoint")
    except SSOError:
        return None
    if not endpoint:
        return None
    query = urlencode({"id_token_hint": id_token, "client_id": settings.oidc_client_id,
                       "post_logout_redirect_uri":
                           settings.public_base_url.rstrip("/") + "/console/login"})
    return f"{endpoint}?{query}"

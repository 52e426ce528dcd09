"""Superset signs people in through the platform (see platform/hypervision/superset/README.md,
"Signing in").

The platform is a minimal OAuth 2 authorisation server whose one client is Superset
(AUTH_OAUTH, provider `hypervision`, infra/superset/superset_config.py):

1. `issue_code`: a person with a console session (password and second factor, or single
   sign-on, already checked there) is sent back to Superset with a code, single-use and
   valid one minute, bound to that session and to Superset's callback address.
2. `exchange`: Superset, authenticated by its client secret, trades the code for a token
   of kind `superset`, made from the console session: it never outlives the session,
   never holds a right the session lacks, and is revoked with it (hypervision.accounts).
3. `user_info`: who the token's holder is and the Superset roles the tenant file gives
   them now (read at every sign-in: roles follow the file).
4. `alive`: Superset asks before every request whether the token is still valid; a
   suspended user, a revoked session or a logout end their Superset session at once.
5. `record_view`: every dashboard and chart Superset shows a person enters the member's
   audit trail (`superset.dashboard-view`, `superset.chart-view`).
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from hypervision import accounts
from hypervision.accounts import IssuedToken, Principal, Who
from hypervision.settings import Settings
from hypervision.superset import server

CLIENT_ID = "superset"
PROVIDER = "hypervision"
KIND = "superset"
CODE_SECONDS = 60
CODE_PREFIX = "hvsc_"
GAMMA = "Gamma"
OPERATOR_ROLE = "hv_operator"
VIEW_KINDS = ("dashboard", "chart")


def member_role_name(slug: str) -> str:
    """The Superset role of a member's users (hypervision.superset.provision)."""
    return f"hv_member_{slug}"


def client_secret(settings: Settings) -> str:
    """Superset's secret as the platform's OAuth client (HV_SUPERSET_OAUTH_SECRET, or
    derived from HV_SECRET_KEY)."""
    if settings.superset_oauth_secret is not None:
        return settings.superset_oauth_secret.get_secret_value()
    return server.derive(settings, "oauth-client")


def platform_url(settings: Settings) -> str:
    """Where Superset reaches the platform's API (server to server)."""
    return f"http://{settings.api_host}:{settings.api_port}"


def platform_public_url(settings: Settings) -> str:
    """Where people's browsers reach the console (sent there to sign in)."""
    return (settings.platform_public_url or platform_url(settings)).rstrip("/")


def redirect_uri(settings: Settings) -> str:
    """Superset's callback, the only address a code is ever sent to."""
    return f"{server.public_url(settings)}/oauth-authorized/{PROVIDER}"


def check_client(settings: Settings, client_id: str, secret: str) -> bool:
    return client_id == CLIENT_ID and hmac.compare_digest(
        secret.encode(), client_secret(settings).encode())


def issue_code(conn: psycopg.Connection, session: Principal, redirect: str) -> str:
    """Step 1: a code for Superset, from a console session."""
    code = CODE_PREFIX + secrets.token_urlsafe(32)
    with conn.transaction():
        conn.execute(
            "INSERT INTO hv.superset_codes (code_hash, token_id, redirect_uri, expires_at)"
            " VALUES (%s, %s, %s, now() + make_interval(secs => %s))",
            (accounts.token_digest(code), session.token_id, redirect, CODE_SECONDS))
    return code


def exchange(conn: psycopg.Connection, who: Who, code: str, redirect: str,
             hours: int) -> IssuedToken | None:
    """Step 2: the code, used once, within its minute, with the address it was issued
    for, and while its session is valid, becomes a `superset` token; else None."""
    if not code.startswith(CODE_PREFIX) or len(code) > 100:
        return None
    with conn.transaction():
        row = conn.execute(
            "UPDATE hv.superset_codes SET used_at = now() WHERE code_hash = %s"
            " AND used_at IS NULL AND expires_at > now() AND redirect_uri = %s"
            " RETURNING token_id", (accounts.token_digest(code), redirect)).fetchone()
    if row is None:
        return None
    session = accounts.authenticate_id(conn, int(row[0]))
    if session is None:
        return None
    who = Who(session.actor, who.source, who.request_id, who.remote_addr)
    token = accounts.create_token(
        conn, who, email=session.account.email, rights=sorted(session.rights),
        expires_at=datetime.now(UTC) + timedelta(hours=hours), label=KIND, kind=KIND,
        parent=session, method=session.method)
    with conn.transaction():
        who.record(conn, member=session.member_slug, action="superset.sign-in",
                   target=session.account.email,
                   after={"session": session.token_id, "token": token.id,
                          "roles": roles(session)})
    return token


def roles(principal: Principal) -> list[str]:
    """The Superset roles the tenant file gives a person: Gamma and their member's role,
    plus the syndicate's view across members for its operators."""
    found = [GAMMA, member_role_name(principal.member_slug)]
    if principal.operator:
        found.append(OPERATOR_ROLE)
    return found


def user_info(principal: Principal) -> dict[str, Any]:
    """Step 3: what Superset makes (or updates) its user from."""
    first, _, last = principal.account.name.strip().partition(" ")
    return {"username": principal.account.email, "email": principal.account.email,
            "first_name": first or principal.account.name, "last_name": last or "-",
            "member": principal.member_slug, "roles": roles(principal)}


def record_view(conn: psycopg.Connection, who: Who, principal: Principal, kind: str,
                object_id: int, title: str, dashboard: int | None) -> int:
    """Step 5: one dashboard or chart shown to a person, in their member's trail."""
    after: dict[str, Any] = {"title": title[:300]}
    if kind == "chart" and dashboard is not None:
        after["dashboard"] = dashboard
    with conn.transaction():
        return who.record(conn, member=principal.member_slug,
                          action=f"superset.{kind}-view", target=f"{kind}:{object_id}",
                          params={"token": principal.token_id}, after=after)

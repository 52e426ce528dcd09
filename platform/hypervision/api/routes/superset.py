"""Superset's side of its sign-in through the platform: the OAuth 2 token endpoint, the
user information, the per-request session check and the views it reports
(hypervision.superset.signin). Superset calls these server to server; people never do.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from hypervision.accounts import Principal, Who
from hypervision.api.deps import Audit, CurrentPrincipal, State
from hypervision.superset import signin

router = APIRouter(tags=["superset"], include_in_schema=False)
MAX_FORM_BYTES = 8 * 1024


def _oauth_error(error: str, code: int, description: str) -> JSONResponse:
    """An RFC 6749 error answer: Superset's OAuth client shows `error` and logs the rest."""
    return JSONResponse({"error": error, "error_description": description}, status_code=code,
                        headers={"Cache-Control": "no-store"})


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
    """client_secret_basic (authlib's default) or client_secret_post."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        client_id, _, secret = decoded.partition(":")
        return unquote(client_id), unquote(secret)
    return form.get("client_id", ""), form.get("client_secret", "")


@router.post("/superset/token")
async def token(request: Request, state: State, audit_: Audit) -> JSONResponse:
    """The authorisation code grant (RFC 6749 section 4.1.3), for the client `superset`."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return _oauth_error("invalid_request", 400, "request too large")
    try:
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8")).items()}
    except (UnicodeDecodeError, ValueError):
        return _oauth_error("invalid_request", 400, "unreadable form")
    client_id, secret = _client_credentials(request, form)
    if not signin.check_client(state.settings, client_id, secret):
        return _oauth_error("invalid_client", 401, "unknown client or wrong secret")
    if form.get("grant_type") != "authorization_code":
        return _oauth_error("unsupported_grant_type", 400, "only authorization_code")
    redirect = form.get("redirect_uri", "")
    if redirect != signin.redirect_uri(state.settings):
        return _oauth_error("invalid_grant", 400, "redirect_uri is not Superset's callback")
    with state.dbs.control() as conn:
        issued = signin.exchange(conn, audit_.who, form.get("code", ""), redirect,
                                 state.settings.api_login_token_hours)
    if issued is None:
        return _oauth_error("invalid_grant", 400,
                            "the code is unknown, used, expired, or its session ended")
    assert issued.expires_at is not None
    from datetime import UTC, datetime

    seconds = int((issued.expires_at - datetime.now(UTC)).total_seconds())
    return JSONResponse({"access_token": issued.secret, "token_type": "Bearer",
                         "expires_in": max(seconds, 1)}, headers={"Cache-Control": "no-store"})


def superset_principal(principal: CurrentPrincipal) -> Principal:
    """Only the tokens made for Superset's sign-in are accepted here."""
    if principal.kind != signin.KIND:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a Superset sign-in token is expected")
    return principal


SupersetPrincipal = Annotated[Principal, Depends(superset_principal)]


@router.get("/superset/userinfo")
def userinfo(principal: SupersetPrincipal) -> dict[str, object]:
    """Who signed in, and the Superset roles the tenant file gives them now."""
    return signin.user_info(principal)


@router.get("/superset/session", status_code=204)
def session(principal: SupersetPrincipal) -> Response:
    """204 while the person may use Superset; 401 once the token, its console session or
    the account is no longer valid (logout, revocation, suspension in the tenant file)."""
    return Response(status_code=204)


class View(BaseModel):
    kind: Literal["dashboard", "chart"]
    id: int = Field(ge=1, lt=2**63)
    title: str = Field(default="", max_length=1000)
    dashboard: int | None = Field(default=None, ge=1, lt=2**63)


@router.post("/superset/views", status_code=201)
def view(body: View, principal: SupersetPrincipal, state: State,
         audit_: Audit) -> dict[str, int]:
    """A dashboard or chart Superset showed this person: an entry in their member's
    audit trail."""
    who: Who = audit_.who
    with state.dbs.control() as conn:
        entry = signin.record_view(conn, who, principal, body.kind, body.id, body.title,
                                   body.dashboard)
    return {"entry": entry}

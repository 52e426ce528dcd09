"""Superset's sign-in page is the console's: Superset (AUTH_OAUTH) sends the browser here,
and a person with a console session goes back to Superset with a single-use code
(hypervision.superset.signin). Without a session, the console's own sign-in comes first
(password and second factor, or single sign-on), then this page again.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response

from hypervision.api.deps import State
from hypervision.console.session import SESSION_KIND, ConsoleUser
from hypervision.superset import signin

router = APIRouter()


@router.get("/superset/authorize", name="console_superset_authorize")
def authorize(request: Request, principal: ConsoleUser, state: State) -> Response:
    """OAuth 2 authorisation endpoint (RFC 6749 section 4.1.1) for the client `superset`.
    A request that is not Superset's own is refused here, never redirected."""
    query = request.query_params
    if query.get("client_id") != signin.CLIENT_ID or query.get("response_type") != "code":
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "unknown client or response type")
    redirect = query.get("redirect_uri", "")
    if redirect != signin.redirect_uri(state.settings):
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            "redirect_uri is not Superset's callback address")
    client_state = query.get("state", "")
    if not client_state or len(client_state) > 4000:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "state is missing or too long")
    if principal.kind != SESSION_KIND:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a console session is expected")
    with state.dbs.control() as conn:
        code = signin.issue_code(conn, principal, redirect)
    return RedirectResponse(f"{redirect}?{urlencode({'code': code, 'state': client_state})}",
                            status_code=303, headers={"Cache-Control": "no-store"})

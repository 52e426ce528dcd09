"""The console's single sign-on (hypervision.sso): the button's target, the provider's
callback, and the logout that ends the provider's session too.

A sign-in whose account needs a second factor the provider did not prove continues with
the platform's own (console.second_factor), like after a password.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from hypervision import signin, sso
from hypervision.api.deps import Audit, State
from hypervision.console import PREFIX, second_factor
from hypervision.console.session import SESSION_KIND
from hypervision.console.web import render

router = APIRouter()


def _refused(request: Request, message: str, status_code: int) -> Response:
    return render(request, "login.html", status_code=status_code, next=PREFIX + "/",
                  email="", error="sso", sso_error=message)


@router.get("/sso/start", name="console_sso_start")
def start(request: Request, state: State, next: str | None = None) -> Response:
    from hypervision.console.login import safe_next

    if not sso.enabled(state.settings):
        return _refused(request, "single sign-on is not enabled", 404)
    try:
        with state.dbs.control() as conn:
            url = sso.start(conn, state.settings, safe_next(next))
    except sso.SSOError as exc:
        return _refused(request, str(exc), 503)
    return RedirectResponse(url, status_code=303)


@router.get("/sso/callback", name="console_sso_callback")
def callback(request: Request, state: State, audit_: Audit, code: str = "",
             error: str = "") -> Response:
    from hypervision.console.login import safe_next, start_session

    # `state` names the app state here; the request's is read from the query.
    given_state = request.query_params.get("state", "")
    if not sso.enabled(state.settings):
        return _refused(request, "single sign-on is not enabled", 404)
    client = request.client.host if request.client else "?"
    if state.limiter.hit(f"addr:{client}"):
        return _refused(request, "too many attempts; try again in a few minutes", 429)
    if error or not code or not given_state:
        return _refused(request, "the identity provider did not sign you in", 400)
    with state.dbs.control() as conn:
        try:
            identity = sso.finish(conn, state.settings, code[:2000], given_state[:200])
            account = sso.match(conn, state.settings, identity.claims)
        except sso.SSOError as exc:
            with conn.transaction():
                audit_.who.record(conn, member=None, action="auth.sso-failed",
                                  target=str(exc)[:200])
            return _refused(request, str(exc), 401)
        outcome = signin.sso_login(
            conn, audit_.who, account, hours=state.settings.api_login_token_hours,
            second_factor=sso.second_factor(state.settings, identity.claims),
            id_token=identity.id_token, subject=str(identity.claims["sub"]),
            kind=SESSION_KIND)
    next_url = safe_next(identity.next_path)
    if isinstance(outcome, signin.Pending):
        return second_factor.ask(state, outcome, next_url)
    return start_session(request, state, outcome, next_url)


def provider_logout(state: State, token_id: int) -> str | None:
    """The provider's end-session URL for a session opened by single sign-on."""
    if not sso.enabled(state.settings):
        return None
    with state.dbs.control() as conn:
        row = conn.execute("SELECT id_token FROM hv.sso_sessions WHERE token_id = %s",
                           (token_id,)).fetchone()
    return None if row is None else sso.end_session_url(state.settings, row[0])

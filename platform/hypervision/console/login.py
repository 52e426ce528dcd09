"""Signing in and out of the console, and the language switch.

The login flow, in order (one function per step, so that a step can be added between
them, e.g. a second factor before the session is issued):
1. `login_page`: the form (e-mail, password), with the CSRF token.
2. `login_submit`: the limiter (per address and per e-mail, the API's), then the
   password (`signin.password_login`, which audits a failure); an account with (or
   needing) a second factor goes to its step (console.second_factor), then
   `start_session`.
3. `start_session`: the token becomes the HttpOnly cookie `hv_session`; the browser goes
   to the page it asked for (only a /console path is followed).
Logging out revokes the session's token (audited) and clears the cookie.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from hypervision import accounts, signin
from hypervision.accounts import IssuedToken
from hypervision.api.deps import Audit, State
from hypervision.console import PREFIX, second_factor
from hypervision.console.forms import PostedForm
from hypervision.console.session import SESSION_COOKIE, SESSION_KIND, ConsoleUser
from hypervision.console.web import LANG_COOKIE, LANGS, render, set_csrf_cookie

router = APIRouter()


def safe_next(value: str | None) -> str:
    """Only a path of the console is followed after a login or a language switch."""
    if value and value.startswith(PREFIX + "/") and not value.startswith("//") \
            and "\\" not in value and "\n" not in value and "\r" not in value:
        return value
    return PREFIX + "/"


@router.get("/login", name="console_login")
def login_page(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", next=safe_next(next), error=None, email="")


@router.post("/login")
def login_submit(request: Request, form: PostedForm, state: State, audit_: Audit) -> Response:
    email = form.get("email", "").strip().lower()[:254]
    password = form.get("password", "")[:1024]
    next_url = safe_next(form.get("next"))
    client = request.client.host if request.client else "?"
    wait = state.limiter.hit(f"addr:{client}", f"email:{email}")
    if wait:
        response = render(request, "login.html", status_code=429, next=next_url, email=email,
                          error="too_many")
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    outcome = None
    if email and password:
        with state.dbs.control() as conn:
            outcome = signin.password_login(conn, audit_.who, email, password,
                                            hours=state.settings.api_login_token_hours,
                                            kind=SESSION_KIND)
    if outcome is None:
        return render(request, "login.html", status_code=401, next=next_url, email=email,
                      error="wrong")
    if isinstance(outcome, signin.Pending):
        # The second factor (or its enrolment) comes before the session.
        return second_factor.ask(state, outcome, next_url)
    return start_session(request, state, outcome, next_url)


def start_session(request: Request, state: State, token: IssuedToken,
                  next_url: str) -> Response:
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(SESSION_COOKIE, token.secret, httponly=True, samesite="lax",
                        path=PREFIX, secure=state.settings.console_secure_cookie,
                        max_age=state.settings.api_login_token_hours * 3600)
    return response


@router.post("/logout", name="console_logout")
def logout(request: Request, principal: ConsoleUser, form: PostedForm, state: State,
           audit_: Audit) -> Response:
    from hypervision.console.sso import provider_logout

    elsewhere = provider_logout(state, principal.token_id)
    with state.dbs.control() as conn:
        accounts.revoke_token(conn, audit_.who, principal.token_id)
    # A session opened by single sign-on ends at the provider too.
    response = RedirectResponse(elsewhere or f"{PREFIX}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


@router.get("/lang/{code}", name="console_lang")
def switch_language(request: Request, code: str, next: str | None = None) -> Response:
    """Remember the reader's language (a preference cookie) and go back to the page."""
    response = RedirectResponse(safe_next(next), status_code=303)
    if code in LANGS:
        response.set_cookie(LANG_COOKIE, code, samesite="lax", path=PREFIX,
                            max_age=365 * 86400)
    set_csrf_cookie(request, response)
    return response

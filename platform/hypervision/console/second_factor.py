"""The console's second-factor step of a sign-in (hypervision.signin): after the password
(or a single sign-on) when the account has a TOTP factor or needs one.

1. `ask`: the pending sign-in's secret goes into the HttpOnly cookie `hv_pending` (ten
   minutes, /console only), and the browser to the code page or, for an account that
   needs a factor and has none yet, to the enrolment page.
2. Code page: a TOTP code or a recovery code; five wrong codes end the pending sign-in.
3. Enrolment page: a QR code of the new secret (segno, inline SVG) and the secret as
   text, then a first code; the recovery codes are shown once, on the next page.
Then the session starts as after a password (console.login.start_session).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from hypervision import mfa, signin
from hypervision.api.deps import Audit, State
from hypervision.console import PREFIX
from hypervision.console.forms import PostedForm
from hypervision.console.session import SESSION_KIND
from hypervision.console.web import render

router = APIRouter()
PENDING_COOKIE = "hv_pending"


def ask(state: State, pending: signin.Pending, next_url: str) -> Response:
    step = "code" if pending.purpose == "code" else "enrol"
    from urllib.parse import quote

    response = RedirectResponse(f"{PREFIX}/login/{step}?next={quote(next_url)}",
                                status_code=303)
    response.set_cookie(PENDING_COOKIE, pending.secret, httponly=True, samesite="lax",
                        path=PREFIX, secure=state.settings.console_secure_cookie,
                        max_age=signin.CHALLENGE_MINUTES * 60)
    return response


def _restart(request: Request) -> Response:
    """The pending sign-in is unknown, used or expired: back to the password."""
    from hypervision.console.login import safe_next

    next_url = safe_next(request.query_params.get("next"))
    return RedirectResponse(f"{PREFIX}/login?next={next_url}", status_code=303)


def _limited(request: Request, state: State, secret: str) -> float:
    client = request.client.host if request.client else "?"
    return state.limiter.hit(f"addr:{client}", f"challenge:{secret[-16:]}")


@router.get("/login/code", name="console_login_code")
def code_page(request: Request, state: State, next: str | None = None) -> Response:
    from hypervision.console.login import safe_next

    secret = request.cookies.get(PENDING_COOKIE, "")
    with state.dbs.control() as conn:
        found = signin.challenge(conn, secret)
    if found is None or found.purpose != "code":
        return _restart(request)
    return render(request, "login_code.html", next=safe_next(next), error=None)


@router.post("/login/code")
def code_submit(request: Request, form: PostedForm, state: State, audit_: Audit) -> Response:
    from hypervision.console.login import safe_next, start_session

    next_url = safe_next(form.get("next"))
    secret = request.cookies.get(PENDING_COOKIE, "")
    if _limited(request, state, secret):
        return render(request, "login_code.html", status_code=429, next=next_url,
                      error="too_many")
    with state.dbs.control() as conn:
        token = signin.answer(conn, audit_.who, secret, form.get("code", "")[:64],
                              hours=state.settings.api_login_token_hours, kind=SESSION_KIND)
        alive = token is None and signin.challenge(conn, secret) is not None
    if token is None:
        if not alive:
            return _restart(request)
        return render(request, "login_code.html", status_code=401, next=next_url,
                      error="wrong")
    response = start_session(request, state, token, next_url)
    response.delete_cookie(PENDING_COOKIE, path=PREFIX)
    return response


def _enrol_page(request: Request, state: State, next_url: str, error: str | None,
                status_code: int = 200) -> Response:
    secret = request.cookies.get(PENDING_COOKIE, "")
    with state.dbs.control() as conn:
        found = signin.enrolment_secret(conn, secret)
    if found is None:
        return _restart(request)
    account, totp = found
    uri = mfa.provisioning_uri(totp, account.email)
    return render(request, "login_enrol.html", status_code=status_code, next=next_url,
                  error=error, qr=mfa.qr_svg(uri),
                  secret=" ".join(totp[i:i + 4] for i in range(0, len(totp), 4)),
                  email=account.email)


@router.get("/login/enrol", name="console_login_enrol")
def enrol_page(request: Request, state: State, next: str | None = None) -> Response:
    from hypervision.console.login import safe_next

    return _enrol_page(request, state, safe_next(next), None)


@router.post("/login/enrol")
def enrol_submit(request: Request, form: PostedForm, state: State, audit_: Audit) -> Response:
    from hypervision.console.login import safe_next, start_session

    next_url = safe_next(form.get("next"))
    secret = request.cookies.get(PENDING_COOKIE, "")
    if _limited(request, state, secret):
        return _enrol_page(request, state, next_url, "too_many", 429)
    with state.dbs.control() as conn:
        done = signin.enrol(conn, audit_.who, secret, form.get("code", "")[:64],
                            hours=state.settings.api_login_token_hours, kind=SESSION_KIND)
    if done is None:
        return _enrol_page(request, state, next_url, "wrong", 401)
    token, codes = done
    page = render(request, "recovery_codes.html", next=next_url, codes=codes)
    # The session starts with this page: the codes are shown once, then the person goes on.
    session = start_session(request, state, token, next_url)
    for key, value in session.raw_headers:
        if key == b"set-cookie":
            page.raw_headers.append((key, value))
    page.delete_cookie(PENDING_COOKIE, path=PREFIX)
    return page

"""My account: the signed-in person's own password, second factor and personal tokens.

The same functions as the API's `/auth/password`, `/auth/mfa/*` and `/tokens` routes
(hypervision.api.routes.auth), with the same rules and the same audit entries:
- changing the password proves the current one and revokes every session and token of
  the account, this session included: the person signs in again with the new one;
- (re-)enrolling a TOTP factor or renewing the recovery codes needs a session that passed
  the second factor when one is enrolled (a stolen session cannot replace it); the new
  secret travels in the form, as in the API, and is saved only with a code it produced;
- removing the factor (`mfa.reset`, which also revokes every token) is offered only to an
  account that does not need one;
- a personal token holds at most the session's rights and expires no later than it
  (`accounts.create_token(parent=...)`, as `POST /tokens`); its secret is shown once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, status
from fastapi.responses import RedirectResponse, Response

from hypervision import accounts, mfa
from hypervision.accounts import Principal
from hypervision.api.deps import Audit, State
from hypervision.api.routes.auth import _fresh_factor
from hypervision.console import PREFIX
from hypervision.console.forms import PostedForm
from hypervision.console.session import SESSION_COOKIE, ConsoleUser
from hypervision.console.web import render

router = APIRouter()
TokenId = Annotated[int, Path(ge=1, lt=2**63)]
RIGHTS = ("read", "export", "admin")
# The API's bounds (schemas.PasswordChange, schemas.TokenRequest).
MIN_PASSWORD = 12
MAX_TOKEN_DAYS = 730
SHOWN_INACTIVE = 20
DONE = ("revoked", "codes")


def _limited(state: State, key: str) -> None:
    wait = state.limiter.hit(key)
    if wait:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many attempts; try again"
                            " in a few minutes", headers={"Retry-After": str(int(wait) + 1)})


def _page(request: Request, state: State, principal: Principal, status_code: int = 200,
          **extra: Any) -> Response:
    with state.dbs.control() as conn:
        tokens = accounts.list_tokens(conn, account_id=principal.account.id)
        codes_left = mfa.recovery_codes_left(conn, principal.account.id)
    active = [t for t in tokens if t.state == "active"]
    inactive = sorted((t for t in tokens if t.state != "active"), key=lambda t: t.id,
                      reverse=True)[:SHOWN_INACTIVE]
    context: dict[str, Any] = {"error": None, "issued": None, "done": None}
    done = request.query_params.get("done")
    if done in DONE:
        context["done"] = done
    context.update(extra)
    return render(request, "account.html", status_code=status_code, me=principal,
                  account=principal.account, active=active, inactive=inactive,
                  codes_left=codes_left, rights=[r for r in RIGHTS if r in principal.rights],
                  may_change_factor=not principal.account.mfa_enrolled or principal.mfa,
                  max_days=MAX_TOKEN_DAYS, min_password=MIN_PASSWORD, **context)


@router.get("/account", name="console_account")
def account_page(request: Request, principal: ConsoleUser, state: State) -> Response:
    return _page(request, state, principal)


# Password -------------------------------------------------------------------------------


def _signed_out(request: Request, reason: str) -> Response:
    """Every token of the account was just revoked: a page that says so, no session."""
    request.state.principal = None
    page = render(request, "account_signed_out.html", reason=reason)
    page.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return page


@router.post("/account/password", name="console_account_password")
def change_password(request: Request, principal: ConsoleUser, state: State, form: PostedForm,
                    audit_: Audit) -> Response:
    current, new = form.get("current", "")[:1024], form.get("new", "")[:1024]
    if len(new) < MIN_PASSWORD:
        return _page(request, state, principal, 400, error="short")
    if new != form.get("confirm", ""):
        return _page(request, state, principal, 400, error="mismatch")
    _limited(state, f"password:{principal.account.id}")
    with state.dbs.control() as conn:
        if not accounts.change_password(conn, audit_.who, principal, current, new):
            return _page(request, state, principal, 403, error="current")
    return _signed_out(request, "password")


# Second factor ------------------------------------------------------------------------


def _enrol_page(request: Request, principal: Principal, secret: str, error: str | None,
                status_code: int = 200) -> Response:
    uri = mfa.provisioning_uri(secret, principal.account.email)
    return render(request, "account_totp.html", status_code=status_code, error=error,
                  qr=mfa.qr_svg(uri), secret=secret,
                  spaced=" ".join(secret[i:i + 4] for i in range(0, len(secret), 4)),
                  account=principal.account)


@router.get("/account/second-factor", name="console_account_totp")
def begin_totp(request: Request, principal: ConsoleUser) -> Response:
    """A new secret (QR code and text), not saved until a first code confirms it."""
    _fresh_factor(principal)
    return _enrol_page(request, principal, mfa.new_secret(), None)


@router.post("/account/second-factor")
def confirm_totp(request: Request, principal: ConsoleUser, state: State, form: PostedForm,
                 audit_: Audit) -> Response:
    _fresh_factor(principal)
    secret = form.get("secret", "").replace(" ", "").upper()[:64]
    _limited(state, f"enrol:{principal.account.id}")
    try:
        with state.dbs.control() as conn:
            codes = mfa.enrol(conn, audit_.who, principal.account, secret,
                              form.get("code", "")[:16])
    except accounts.AccountError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    if codes is None:
        return _enrol_page(request, principal, secret, "wrong", 400)
    return render(request, "account_codes.html", codes=codes, renewed=False)


@router.post("/account/recovery-codes", name="console_account_codes")
def renew_codes(request: Request, principal: ConsoleUser, state: State, form: PostedForm,
                audit_: Audit) -> Response:
    _fresh_factor(principal)
    try:
        with state.dbs.control() as conn:
            codes = mfa.new_recovery_codes(conn, audit_.who, principal.account)
    except accounts.AccountError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    return render(request, "account_codes.html", codes=codes, renewed=True)


@router.post("/account/second-factor/remove", name="console_account_totp_remove")
def remove_totp(request: Request, principal: ConsoleUser, state: State, form: PostedForm,
                audit_: Audit) -> Response:
    """Remove the factor of an account that does not need one (mfa.reset: audited, every
    token revoked)."""
    _fresh_factor(principal)
    if principal.account.needs_mfa:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "this account needs a second factor: replace it instead")
    if not principal.account.mfa_enrolled:
        return RedirectResponse(f"{PREFIX}/account", status_code=303)
    with state.dbs.control() as conn:
        mfa.reset(conn, audit_.who, principal.account.email)
    return _signed_out(request, "factor")


# Personal tokens ----------------------------------------------------------------------


@router.post("/account/tokens", name="console_account_tokens")
def create_token(request: Request, principal: ConsoleUser, state: State, form: PostedForm,
                 audit_: Audit) -> Response:
    rights = [r for r in form.all("rights") if r in RIGHTS]
    label = form.get("label", "").strip()[:200]
    try:
        days = int(form.get("days", "90"))
    except ValueError:
        days = 0
    if not rights or not 1 <= days <= MAX_TOKEN_DAYS or any(
            ord(c) < 32 or ord(c) == 127 for c in label):
        return _page(request, state, principal, 400, error="token")
    beyond = set(rights) - principal.rights
    if beyond:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"this session cannot grant rights it lacks: {sorted(beyond)}")
    try:
        with state.dbs.control() as conn:
            token = accounts.create_token(
                conn, audit_.who, email=principal.account.email, rights=rights,
                expires_at=datetime.now(UTC) + timedelta(days=days), label=label,
                parent=principal)
    except accounts.AccountError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    return _page(request, state, principal, issued=token)


@router.post("/account/tokens/{token_id}/revoke", name="console_account_token_revoke")
def revoke_token(request: Request, principal: ConsoleUser, state: State, form: PostedForm,
                 audit_: Audit, token_id: TokenId) -> Response:
    """Revoke one of the person's own tokens (and those made from it); another person's
    token is a 404, as in the API."""
    with state.dbs.control() as conn:
        found = accounts.revoke_token(conn, audit_.who, token_id,
                                      account_id=principal.account.id)
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"token {token_id} not found")
    if token_id == principal.token_id:
        return _signed_out(request, "session")
    return RedirectResponse(f"{PREFIX}/account?done=revoked#tokens", status_code=303)

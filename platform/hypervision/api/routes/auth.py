"""Login and the caller's own tokens: `/auth/*` and `/tokens`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response, status

from hypervision import accounts, mfa, signin
from hypervision.api import schemas
from hypervision.api.deps import Audit, CurrentPrincipal, State, not_found

router = APIRouter(tags=["auth"])
TokenId = Annotated[int, Path(ge=1, lt=2**63, description="The token's id.")]


def _issued(token: accounts.IssuedToken) -> schemas.IssuedToken:
    return schemas.IssuedToken(token=token.secret, token_id=token.id, member=token.member_slug,
                               rights=list(token.rights),
                               expires_at=token.expires_at)


@router.post("/auth/login", response_model=schemas.IssuedToken,
             responses={401: {"model": schemas.Problem}, 403: {"model": schemas.Problem},
                        429: {"model": schemas.Problem}})
def login(body: schemas.LoginRequest, request: Request, state: State,
          audit_: Audit) -> schemas.IssuedToken:
    """Exchange an account's e-mail and password for a token valid a few hours.

    An account with a second factor sends its code too (`code`: TOTP or a recovery
    code). An account that needs one (admin rights, operators, `mfa: required`) and has
    none yet gets 403: it enrols at its first sign-in in the console."""
    client = request.client.host if request.client else "?"
    email = str(body.email).lower()
    wait = state.limiter.hit(f"addr:{client}", f"email:{email}")
    if wait:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many login attempts",
                            headers={"Retry-After": str(int(wait) + 1)})
    with state.dbs.control() as conn:
        outcome = signin.password_login(conn, audit_.who, email, body.password,
                                        hours=state.settings.api_login_token_hours,
                                        code=body.code)
    if outcome is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            "wrong e-mail, password or second-factor code",
                            headers={"WWW-Authenticate": "Bearer"})
    if isinstance(outcome, signin.Pending):
        if outcome.purpose == "enrol":
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                "this account needs a second factor: sign in to the console"
                                " once to enrol one, then send its code here")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            "this account has a second factor: send its code as `code`",
                            headers={"WWW-Authenticate": 'Bearer error="mfa_required"'})
    return _issued(outcome)


@router.get("/auth/me", response_model=schemas.Me)
def me(principal: CurrentPrincipal) -> schemas.Me:
    """The account and member behind the token used."""
    account = principal.account
    return schemas.Me(email=account.email, name=account.name, member=principal.member_slug,
                      rights=sorted(principal.rights), operator=principal.operator,
                      token_id=principal.token_id, second_factor=principal.mfa,
                      mfa_enrolled=account.mfa_enrolled, mfa_required=account.needs_mfa)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(principal: CurrentPrincipal, state: State, audit_: Audit) -> Response:
    """Revoke the token used for this request."""
    with state.dbs.control() as conn:
        accounts.revoke_token(conn, audit_.who, principal.token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _info(t: accounts.TokenInfo) -> schemas.TokenInfo:
    return schemas.TokenInfo(id=t.id, email=t.email, member=t.member_slug, rights=list(t.rights),
                             label=t.label, state=t.state,
                             kind=t.kind,
                             created_at=t.created_at, expires_at=t.expires_at,
                             revoked_at=t.revoked_at, last_used_at=t.last_used_at)


@router.get("/tokens", response_model=list[schemas.TokenInfo], tags=["tokens"])
def list_tokens(principal: CurrentPrincipal, state: State) -> list[schemas.TokenInfo]:
    """The caller's tokens; with the admin right, every token of the caller's member."""
    with state.dbs.control() as conn:
        if "admin" in principal.rights:
            found = accounts.list_tokens(conn, member=principal.member_slug)
        else:
            found = accounts.list_tokens(conn, account_id=principal.account.id)
    return [_info(t) for t in found]


@router.post("/tokens", response_model=schemas.IssuedToken, tags=["tokens"],
             status_code=status.HTTP_201_CREATED)
def create_token(body: schemas.TokenRequest, principal: CurrentPrincipal, state: State,
                 audit_: Audit) -> schemas.IssuedToken:
    """A new token for the caller (for a script, say), with at most this token's rights,
    expiring no later than it, and revoked with it."""
    rights = body.rights if body.rights is not None else sorted(principal.rights)
    beyond = set(rights) - principal.rights
    if beyond:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"this token cannot grant rights it lacks: {sorted(beyond)}")
    try:
        with state.dbs.control() as conn:
            token = accounts.create_token(
                conn, audit_.who, email=principal.account.email, rights=rights,
                expires_at=datetime.now(UTC) + timedelta(days=body.expires_days),
                label=body.label, parent=principal)
    except accounts.AccountError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    return _issued(token)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["tokens"],
               responses={404: {"model": schemas.Problem}})
def revoke_token(token_id: TokenId, principal: CurrentPrincipal, state: State,
                 audit_: Audit) -> Response:
    """Revoke one of the caller's tokens; with the admin right, any of the member's."""
    with state.dbs.control() as conn:
        if "admin" in principal.rights:
            found = accounts.revoke_token(conn, audit_.who, token_id, member=principal.member_slug)
        else:
            found = accounts.revoke_token(conn, audit_.who, token_id,
                                          account_id=principal.account.id)
    if not found:
        raise not_found(f"token {token_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# The caller's own password and second factor ---------------------------------------------


def _fresh_factor(principal: CurrentPrincipal) -> None:
    """Replacing an existing second factor needs a sign-in that passed it: a stolen
    token without one cannot take the account over."""
    if principal.account.mfa_enrolled and not principal.mfa:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "sign in with your second factor first to change it")


@router.post("/auth/password", status_code=status.HTTP_204_NO_CONTENT,
             responses={403: {"model": schemas.Problem}, 429: {"model": schemas.Problem}})
def change_password(body: schemas.PasswordChange, principal: CurrentPrincipal, state: State,
                    audit_: Audit) -> Response:
    """Change the caller's password; every session and token of theirs is revoked, this
    one too."""
    wait = state.limiter.hit(f"password:{principal.account.id}")
    if wait:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many attempts",
                            headers={"Retry-After": str(int(wait) + 1)})
    with state.dbs.control() as conn:
        if not accounts.change_password(conn, audit_.who, principal, body.current, body.new):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "the current password is wrong")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/auth/mfa/totp", response_model=schemas.TotpEnrolment,
             responses={403: {"model": schemas.Problem}})
def begin_totp(principal: CurrentPrincipal) -> schemas.TotpEnrolment:
    """A new TOTP secret for the caller, not saved until confirmed with a first code."""
    _fresh_factor(principal)
    secret = mfa.new_secret()
    return schemas.TotpEnrolment(secret=secret,
                                 uri=mfa.provisioning_uri(secret, principal.account.email))


@router.post("/auth/mfa/totp/confirm", response_model=schemas.RecoveryCodes,
             responses={400: {"model": schemas.Problem}, 403: {"model": schemas.Problem}})
def confirm_totp(body: schemas.TotpConfirm, principal: CurrentPrincipal, state: State,
                 audit_: Audit) -> schemas.RecoveryCodes:
    """Save the TOTP secret once a code it produced proves the caller holds it; returns
    ten single-use recovery codes, shown once."""
    _fresh_factor(principal)
    wait = state.limiter.hit(f"enrol:{principal.account.id}")
    if wait:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many attempts",
                            headers={"Retry-After": str(int(wait) + 1)})
    with state.dbs.control() as conn:
        codes = mfa.enrol(conn, audit_.who, principal.account, body.secret, body.code)
    if codes is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            "this code does not match the secret; check the phone's clock")
    return schemas.RecoveryCodes(recovery_codes=codes)


@router.post("/auth/mfa/recovery-codes", response_model=schemas.RecoveryCodes,
             responses={400: {"model": schemas.Problem}, 403: {"model": schemas.Problem}})
def renew_recovery_codes(principal: CurrentPrincipal, state: State,
                         audit_: Audit) -> schemas.RecoveryCodes:
    """Ten new recovery codes for the caller; the old ones stop working."""
    _fresh_factor(principal)
    with state.dbs.control() as conn:
        codes = mfa.new_recovery_codes(conn, audit_.who, principal.account)
    return schemas.RecoveryCodes(recovery_codes=codes)

"""Signing a person in: a password or the identity provider first, then the second factor
when the account needs or has one; the result is a token (see hypervision.accounts).

The steps, for the API (`POST /auth/login`) and the console alike:
1. The first factor: the account's password, or a single sign-on whose ID token the
   provider signed (hypervision.sso). A wrong password is audited as `auth.login-failed`.
2. If the account has a TOTP factor, or needs one (admin rights, operators, `mfa:
   required`), and the first step did not already prove one (the provider's `acr`/`amr`
   claims), the sign-in is *pending*: a challenge secret, single-use, valid ten minutes
   and five attempts, leads to the code (`code`) or to the enrolment of a factor
   (`enrol`) when the account has none yet.
3. The token is issued (`auth.login` in the audit trail, with the method and whether a
   second factor was checked).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.rows import dict_row

from hypervision import mfa
from hypervision.accounts import (
    Account,
    IssuedToken,
    Who,
    check_password,
    create_token,
    get_account,
    password_hash,
    token_digest,
)

CHALLENGE_MINUTES = 10
CHALLENGE_ATTEMPTS = 5


@dataclass(frozen=True)
class Pending:
    """A sign-in waiting for its second factor: `secret` names it (shown to the client
    once), `purpose` says what comes next: 'code' or 'enrol'."""

    secret: str
    purpose: str
    account: Account


def _as(who: Who, email: str) -> Who:
    """Entries of a sign-in are written in the name of the person signing in."""
    return Who(f"user:{email.strip().lower()[:254] or '?'}", who.source, who.request_id,
               who.remote_addr)


def _issue(conn: psycopg.Connection, who: Who, account: Account, *, hours: int, kind: str,
           method: str, second_factor: str | None, id_token: str | None = None,
           subject: str | None = None) -> IssuedToken:
    token = create_token(conn, who, email=account.email,
                         expires_at=datetime.now(UTC) + timedelta(hours=hours),
                         label=kind, kind=kind, mfa=second_factor is not None, method=method)
    with conn.transaction():
        if id_token is not None and subject is not None:
            conn.execute("INSERT INTO hv.sso_sessions (token_id, subject, id_token)"
                         " VALUES (%s, %s, %s)", (token.id, subject, id_token))
        who.record(conn, member=account.member_slug, action="auth.login", target=account.email,
                   after={"method": method, "second_factor": second_factor, "kind": kind,
                          "token": token.id})
    return token


def _pending(conn: psycopg.Connection, who: Who, account: Account, method: str,
             id_token: str | None = None) -> Pending:
    purpose = "code" if account.mfa_enrolled else "enrol"
    secret = "hvc_" + secrets.token_urlsafe(32)
    with conn.transaction():
        conn.execute(
            "INSERT INTO hv.auth_challenges (secret_hash, account_id, purpose, method,"
            " sso_id_token, expires_at) VALUES (%s, %s, %s, %s, %s,"
            " now() + make_interval(mins => %s))",
            (token_digest(secret), account.id, purpose, method, id_token, CHALLENGE_MINUTES))
        who.record(conn, member=account.member_slug, action="auth.second-factor-asked",
                   target=account.email, after={"method": method, "next": purpose})
    return Pending(secret, purpose, account)


def password_login(conn: psycopg.Connection, who: Who, email: str, password: str, *,
                   hours: int, kind: str = "login",
                   code: str | None = None) -> IssuedToken | Pending | None:
    """Check an e-mail and password; returns a token, a pending sign-in (second factor
    still to come), or None when refused (audited). With `code`, an enrolled account's
    second factor is checked at once (the API's one-request login)."""
    who = _as(who, email)
    account = get_account(conn, email)
    stored = password_hash(conn, account.id) if account is not None and account.active else None
    if not check_password(stored, password) or account is None:
        with conn.transaction():
            who.record(conn, member=account.member_slug if account else None,
                       action="auth.login-failed", target=who.actor.removeprefix("user:"))
        return None
    if not (account.mfa_enrolled or account.needs_mfa):
        return _issue(conn, who, account, hours=hours, kind=kind, method="password",
                      second_factor=None)
    if code is not None and account.mfa_enrolled:
        used = mfa.verify(conn, who, account, code)
        if used is None:
            return None
        return _issue(conn, who, account, hours=hours, kind=kind, method="password",
                      second_factor=used)
    return _pending(conn, who, account, "password")


def sso_login(conn: psycopg.Connection, who: Who, account: Account, *, hours: int,
              second_factor: str | None, id_token: str, subject: str,
              kind: str = "session") -> IssuedToken | Pending:
    """The provider vouched for `account`; `second_factor` names what its acr/amr claims
    proved (None: nothing), which is enough when the account would need one."""
    who = _as(who, account.email)
    if second_factor is None and (account.mfa_enrolled or account.needs_mfa):
        return _pending(conn, who, account, "sso", id_token=f"{subject}\n{id_token}")
    return _issue(conn, who, account, hours=hours, kind=kind, method="sso",
                  second_factor=second_factor, id_token=id_token, subject=subject)


@dataclass(frozen=True)
class Challenge:
    id: int
    purpose: str
    method: str
    account: Account
    pending_totp: str | None
    sso: tuple[str, str] | None  # (subject, id token) of a single sign-on


def challenge(conn: psycopg.Connection, secret: str) -> Challenge | None:
    """A pending sign-in still usable: not used, not expired, attempts left, account
    still active."""
    if not secret.startswith("hvc_") or len(secret) > 100:
        return None
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT c.id, c.purpose, c.method, c.pending_totp, c.sso_id_token, a.email"
            " FROM hv.auth_challenges c JOIN hv.accounts a ON a.id = c.account_id"
            " WHERE c.secret_hash = %s AND c.used_at IS NULL AND c.expires_at > now()"
            " AND c.attempts < %s AND a.active",
            (token_digest(secret), CHALLENGE_ATTEMPTS)).fetchone()
    if row is None:
        return None
    account = get_account(conn, row["email"])
    assert account is not None
    sso = None
    if row["sso_id_token"]:
        subject, _, id_token = row["sso_id_token"].partition("\n")
        sso = (subject, id_token)
    return Challenge(row["id"], row["purpose"], row["method"], account, row["pending_totp"],
                     sso)


def _claim(conn: psycopg.Connection, found: Challenge) -> bool:
    """Use a challenge up (once only, even between two processes)."""
    return conn.execute("UPDATE hv.auth_challenges SET used_at = now() WHERE id = %s"
                        " AND used_at IS NULL", (found.id,)).rowcount == 1


def _count_attempt(conn: psycopg.Connection, found: Challenge) -> None:
    with conn.transaction():
        conn.execute("UPDATE hv.auth_challenges SET attempts = attempts + 1 WHERE id = %s",
                     (found.id,))


def _finish(conn: psycopg.Connection, who: Who, found: Challenge, hours: int, kind: str,
            second_factor: str) -> IssuedToken | None:
    with conn.transaction():
        if not _claim(conn, found):
            return None
    if found.sso is not None:
        return _issue(conn, who, found.account, hours=hours, kind=kind, method="sso",
                      second_factor=second_factor, id_token=found.sso[1],
                      subject=found.sso[0])
    return _issue(conn, who, found.account, hours=hours, kind=kind, method=found.method,
                  second_factor=second_factor)


def answer(conn: psycopg.Connection, who: Who, secret: str, code: str, *, hours: int,
           kind: str = "session") -> IssuedToken | None:
    """Complete a pending sign-in with a TOTP or recovery code; None when the challenge
    is unknown, used up or expired, or the code is wrong (audited)."""
    found = challenge(conn, secret)
    if found is None or found.purpose != "code":
        return None
    who = _as(who, found.account.email)
    used = mfa.verify(conn, who, found.account, code)
    if used is None:
        _count_attempt(conn, found)
        return None
    return _finish(conn, who, found, hours, kind, used)


def enrolment_secret(conn: psycopg.Connection, secret: str) -> tuple[Account, str] | None:
    """The TOTP secret to enrol during a pending sign-in (made once per challenge)."""
    found = challenge(conn, secret)
    if found is None or found.purpose != "enrol":
        return None
    if found.pending_totp is not None:
        return found.account, found.pending_totp
    totp = mfa.new_secret()
    with conn.transaction():
        conn.execute("UPDATE hv.auth_challenges SET pending_totp = %s WHERE id = %s"
                     " AND pending_totp IS NULL", (totp, found.id))
    again = challenge(conn, secret)
    assert again is not None and again.pending_totp is not None
    return found.account, again.pending_totp


def enrol(conn: psycopg.Connection, who: Who, secret: str, code: str, *, hours: int,
          kind: str = "session") -> tuple[IssuedToken, list[str]] | None:
    """Complete a pending sign-in by enrolling its TOTP secret with a first code; returns
    the token and the recovery codes (shown once), or None."""
    found = challenge(conn, secret)
    if found is None or found.purpose != "enrol" or found.pending_totp is None:
        return None
    who = _as(who, found.account.email)
    codes = mfa.enrol(conn, who, found.account, found.pending_totp, code)
    if codes is None:
        _count_attempt(conn, found)
        return None
    token = _finish(conn, who, found, hours, kind, "totp")
    return None if token is None else (token, codes)

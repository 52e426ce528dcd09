"""The second factor: TOTP (RFC 6238, pyotp) and single-use recovery codes (tables from
migrations/control/0100_identity.sql; see platform/hypervision/api/README.md, "Sign-in").

- Enrolment: a fresh base32 secret is shown once (a QR code of its otpauth:// URI, made
  with segno, and the text); it is saved only when the person sends a code it produced,
  and then ten recovery codes are issued, shown once, stored as SHA-256 digests.
- A TOTP code is accepted within one time step either side of now, and never twice: the
  last step used is kept, and a conditional UPDATE claims the new one (a replayed code,
  even from a second process at the same time, is refused).
- A recovery code works once.
- A reset (by the member's admin, or `hypervision accounts mfa-reset`) removes the factor
  and its codes and revokes the person's tokens; every change is audited.
"""

from __future__ import annotations

import hashlib
import io
import re
import secrets
from datetime import UTC, datetime

import psycopg
import pyotp
import segno

from hypervision.accounts import Account, AccountError, Who, get_account, revoke_all

ISSUER = "Hypervision"
RECOVERY_CODES = 10
# One step (30 s) either side of the server's clock: phones drift a little.
VALID_WINDOW = 1
# pyotp's secrets: 32 base32 characters (160 bits); nothing shorter (RFC 4226 advises it).
_SECRET = re.compile(r"^(?:[A-Z2-7]{8}){4,8}$")


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str, issuer: str = ISSUER) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The enrolment QR code as an inline SVG (no external image, nothing to fetch)."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=5, border=2, xmldecl=False,
                                    svgns=True, title="QR code")
    return out.getvalue().decode("utf-8")


def _clean_code(code: str) -> str:
    return "".join(ch for ch in code if ch.isalnum()).lower()


def matching_step(secret: str, code: str, at: datetime | None = None) -> int | None:
    """The time step whose TOTP code is `code` (within the window), or None."""
    code = _clean_code(code)
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    moment = at or datetime.now(UTC)
    now_step = totp.timecode(moment)
    for offset in range(-VALID_WINDOW, VALID_WINDOW + 1):
        step = now_step + offset
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _recovery_digest(code: str) -> bytes:
    return hashlib.sha256(_clean_code(code).encode("ascii", "replace")).digest()


def _new_recovery_codes() -> list[str]:
    return ["-".join(secrets.token_hex(2) for _ in range(4)) for _ in range(RECOVERY_CODES)]


def _totp(conn: psycopg.Connection, account_id: int) -> str | None:
    row = conn.execute("SELECT totp_secret FROM hv.accounts WHERE id = %s",
                       (account_id,)).fetchone()
    return row[0] if row else None


def verify(conn: psycopg.Connection, who: Who, account: Account, code: str) -> str | None:
    """Check a second-factor code: a TOTP code (not used before) or an unused recovery
    code. Returns 'totp' or 'recovery', or None (audited as a failure)."""
    secret = _totp(conn, account.id)
    with conn.transaction():
        if secret is not None:
            step = matching_step(secret, code)
            if step is not None:
                claimed = conn.execute(
                    "UPDATE hv.accounts SET totp_last_step = %s WHERE id = %s"
                    " AND (totp_last_step IS NULL OR totp_last_step < %s)",
                    (step, account.id, step)).rowcount
                if claimed == 1:
                    return "totp"
        if len(_clean_code(code)) == 16:
            used = conn.execute(
                "UPDATE hv.recovery_codes SET used_at = now() WHERE account_id = %s"
                " AND code_hash = %s AND used_at IS NULL RETURNING id",
                (account.id, _recovery_digest(code))).fetchone()
            if used is not None:
                left = recovery_codes_left(conn, account.id)
                who.record(conn, member=account.member_slug, action="mfa.recovery-code-used",
                           target=account.email, after={"left": left})
                return "recovery"
        who.record(conn, member=account.member_slug, action="auth.mfa-failed",
                   target=account.email)
    return None


def recovery_codes_left(conn: psycopg.Connection, account_id: int) -> int:
    row = conn.execute("SELECT count(*) FROM hv.recovery_codes WHERE account_id = %s"
                       " AND used_at IS NULL", (account_id,)).fetchone()
    return int(row[0]) if row else 0


def enrol(conn: psycopg.Connection, who: Who, account: Account, secret: str,
          code: str) -> list[str] | None:
    """Save `secret` as the account's TOTP factor once `code` proves the person holds
    it; returns the new recovery codes (shown once), or None when the code is wrong.
    Enrolling again replaces the factor and the codes."""
    if not _SECRET.match(secret):  # a secret sent back by a client, maybe altered
        raise AccountError("this enrolment secret is not valid; start again")
    step = matching_step(secret, code)
    if step is None:
        with conn.transaction():
            who.record(conn, member=account.member_slug, action="mfa.enrol-failed",
                       target=account.email)
        return None
    codes = _new_recovery_codes()
    with conn.transaction():
        conn.execute("UPDATE hv.accounts SET totp_secret = %s, totp_enrolled_at = now(),"
                     " totp_last_step = %s, updated_at = now() WHERE id = %s",
                     (secret, step, account.id))
        conn.execute("DELETE FROM hv.recovery_codes WHERE account_id = %s", (account.id,))
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO hv.recovery_codes (account_id, code_hash)"
                            " VALUES (%s, %s)",
                            [(account.id, _recovery_digest(c)) for c in codes])
        who.record(conn, member=account.member_slug, action="mfa.enrol", target=account.email,
                   after={"method": "totp", "recovery_codes": len(codes)})
    return codes


def new_recovery_codes(conn: psycopg.Connection, who: Who, account: Account) -> list[str]:
    """Replace an enrolled person's recovery codes (the old ones stop working)."""
    if not account.mfa_enrolled:
        raise AccountError("enrol a second factor first")
    codes = _new_recovery_codes()
    with conn.transaction():
        conn.execute("DELETE FROM hv.recovery_codes WHERE account_id = %s", (account.id,))
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO hv.recovery_codes (account_id, code_hash)"
                            " VALUES (%s, %s)",
                            [(account.id, _recovery_digest(c)) for c in codes])
        who.record(conn, member=account.member_slug, action="mfa.recovery-codes",
                   target=account.email, after={"recovery_codes": len(codes)})
    return codes


def reset(conn: psycopg.Connection, who: Who, email: str) -> Account:
    """Remove a person's second factor and recovery codes (a lost phone) and revoke their
    tokens: they enrol again at their next sign-in."""
    account = get_account(conn, email)
    if account is None:
        raise AccountError(f"no account {email}")
    with conn.transaction():
        conn.execute("UPDATE hv.accounts SET totp_secret = NULL, totp_enrolled_at = NULL,"
                     " totp_last_step = NULL, updated_at = now() WHERE id = %s", (account.id,))
        conn.execute("DELETE FROM hv.recovery_codes WHERE account_id = %s", (account.id,))
        who.record(conn, member=account.member_slug, action="mfa.reset", target=account.email)
        revoke_all(conn, who, account.id, reason="second factor reset")
    return account

"""Named accounts, API tokens and operators' access grants (tables from
migrations/control/0011_accounts_and_tokens.sql; see platform/hypervision/api/README.md).

- An account is one named person of one member, with rights among read, export and
  admin. Syndicate staff flagged `operator` manage the network across members.
- A token is a random secret shown once; only its SHA-256 is stored. It acts for its
  account's member with at most its own rights, intersected at each use with the
  account's current rights, until it expires or is revoked.
- An operator reads another member's personal data (PERSONAL_DATA_CLASSES, raw uplinks,
  exports) only under a grant: explicit, time-limited, and audited like every change here.

Every function that changes something writes its audit entry in the same transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg.rows import dict_row

from hypervision import audit

RIGHTS = ("read", "export", "admin")
# Data classes whose measurements are personal data (a household's water consumption).
# Raw uplinks are always treated as personal: they hold every device's payloads.
PERSONAL_DATA_CLASSES = frozenset({"water-consumption"})
TOKEN_PREFIX = "hv_"
MIN_PASSWORD_LENGTH = 12
MAX_GRANT_HOURS = 24 * 31
MAX_TOKEN_DAYS = 366 * 2
# A token's last use is written at most this often, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so that a login takes as long either way.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """A domain error (unknown account, rights beyond the account's, ...): a CLI exit
    code 1, an API 4xx."""


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    name: str
    member_slug: str
    rights: tuple[str, ...]
    operator: bool
    active: bool
    declared: bool
    has_password: bool


@dataclass(frozen=True)
class Principal:
    """Who is calling, resolved from a valid token."""

    account: Account
    token_id: int
    member_slug: str
    member_kind: str
    rights: frozenset[str]

    @property
    def operator(self) -> bool:
        """Operators are flagged accounts of the syndicate member, nowhere else."""
        return self.account.operator and self.member_kind == "syndicate"

    @property
    def actor(self) -> str:
        return f"user:{self.account.email}"


@dataclass(frozen=True)
class IssuedToken:
    id: int
    secret: str
    member_slug: str
    rights: tuple[str, ...]
    expires_at: datetime | None


@dataclass(frozen=True)
class Grant:
    id: int
    operator_email: str
    member_slug: str
    reason: str
    starts_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class Who:
    """Who asks for a change, and from where: copied into the audit entry."""

    actor: str
    source: str = "cli"
    request_id: str | None = None
    remote_addr: str | None = None

    def record(self, conn: psycopg.Connection, **entry: Any) -> int:
        return audit.record(conn, actor=self.actor, source=self.source,
                            request_id=self.request_id, remote_addr=self.remote_addr, **entry)


def _now() -> datetime:
    return datetime.now(UTC)


def normalise_rights(rights: Iterable[str]) -> tuple[str, ...]:
    wanted = {r.strip().lower() for r in rights if r.strip()}
    unknown = wanted - set(RIGHTS)
    if unknown:
        raise AccountError(f"unknown right(s) {sorted(unknown)}; rights are {', '.join(RIGHTS)}")
    return tuple(r for r in RIGHTS if r in wanted)


# Passwords ------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def check_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


# Accounts -------------------------------------------------------------------------------

_ACCOUNT_COLUMNS = (
    "id, email, name, member_slug, rights, operator, active, declared,"
    " password_hash IS NOT NULL AS has_password"
)


def _account(row: dict[str, Any]) -> Account:
    return Account(
        id=row["id"], email=row["email"], name=row["name"], member_slug=row["member_slug"],
        rights=tuple(row["rights"]), operator=row["operator"], active=row["active"],
        declared=row["declared"], has_password=row["has_password"],
    )


def get_account(conn: psycopg.Connection, email: str) -> Account | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {_ACCOUNT_COLUMNS} FROM hv.accounts WHERE email = %s",  # type: ignore[arg-type]
                          (email.strip().lower(),)).fetchone()
    return None if row is None else _account(row)


def list_accounts(conn: psycopg.Connection, member: str | None = None) -> list[Account]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {_ACCOUNT_COLUMNS} FROM hv.accounts"  # type: ignore[arg-type]
            " WHERE %(m)s::text IS NULL OR member_slug = %(m)s ORDER BY member_slug, email",
            {"m": member},
        ).fetchall()
    return [_account(r) for r in rows]


def _member_kind(conn: psycopg.Connection, member: str) -> str:
    row = conn.execute("SELECT kind FROM hv.members WHERE slug = %s", (member,)).fetchone()
    if row is None:
        raise AccountError(f"unknown member '{member}'")
    return str(row[0])


def _public(account: Account | None) -> dict[str, Any] | None:
    """An account as written to the audit trail: never its password hash."""
    if account is None:
        return None
    return {"email": account.email, "name": account.name, "member": account.member_slug,
            "rights": list(account.rights), "operator": account.operator,
            "active": account.active}


def upsert_account(
    conn: psycopg.Connection,
    who: Who,
    *,
    email: str,
    name: str,
    member: str,
    rights: Sequence[str],
    operator: bool = False,
    declared: bool = False,
    active: bool = True,
) -> tuple[str, Account]:
    """Create or update an account; returns ('+' | '~' | '=', account)."""
    email = email.strip().lower()
    wanted = normalise_rights(rights)
    if operator and _member_kind(conn, member) != "syndicate":
        raise AccountError(f"{email}: only members of kind 'syndicate' have operators")
    with conn.transaction():
        current = get_account(conn, email)
        if current is not None and current.member_slug != member:
            raise AccountError(f"{email} is already an account of member"
                               f" '{current.member_slug}'; one account belongs to one member")
        if current is not None and (current.name, current.rights, current.operator,
                                    current.active, current.declared) == (
                                        name, wanted, operator, active, declared):
            return "=", current
        conn.execute(
            """
            INSERT INTO hv.accounts (email, name, member_slug, rights, operator, declared, active)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (email) DO UPDATE SET name = EXCLUDED.name, rights = EXCLUDED.rights,
                operator = EXCLUDED.operator, declared = EXCLUDED.declared,
                active = EXCLUDED.active, updated_at = now()
            """,
            (email, name, member, list(wanted), operator, declared, active),
        )
        after = get_account(conn, email)
        symbol = "+" if current is None else "~"
        who.record(conn, member=member, action="account.create" if current is None
                   else "account.update", target=email, before=_public(current),
                   after=_public(after))
    assert after is not None
    return symbol, after


def sync_users(
    conn: psycopg.Connection, spec: Any, who: Who | None = None, *, dry_run: bool = False,
) -> list[str]:
    """Make a member's declared users (`users:` in tenants/<slug>.yaml) into accounts.

    Called by `tenants apply` after the member row exists. Declared accounts no longer in
    the file are deactivated (their tokens stop working), never deleted. Returns one line
    per change, prefixed with the plan symbols (+ ~ -); with dry_run nothing is written.
    """
    who = who or Who(actor="system:tenancy")
    member = spec.name
    declared = {u.email.strip().lower(): u for u in spec.users}
    with conn.transaction():
        return _sync_users(conn, member, declared, who, dry_run)


def _sync_users(conn: psycopg.Connection, member: str, declared: dict[str, Any], who: Who,
                dry_run: bool) -> list[str]:
    changes: list[str] = []
    existing = {a.email: a for a in list_accounts(conn, member)}
    for email, user in declared.items():
        operator = bool(getattr(user, "operator", False))
        current = existing.get(email)
        wanted = normalise_rights(user.rights)
        if current is not None and (current.name, current.rights, current.operator,
                                    current.active, current.declared) == (
                                        user.name, wanted, operator, True, True):
            continue
        symbol = "+" if current is None else "~"
        changes.append(f"{symbol} {member}: account {email} ({', '.join(wanted)}"
                       f"{', operator' if operator else ''})")
        if not dry_run:
            upsert_account(conn, who, email=email, name=user.name, member=member,
                           rights=wanted, operator=operator, declared=True)
    for email, account in existing.items():
        if account.declared and account.active and email not in declared:
            changes.append(f"- {member}: account {email} deactivated (no longer declared)")
            if not dry_run:
                upsert_account(conn, who, email=email, name=account.name, member=member,
                               rights=account.rights, operator=account.operator,
                               declared=True, active=False)
    return changes


def set_password(conn: psycopg.Connection, who: Who, email: str, password: str) -> None:
    account = get_account(conn, email)
    if account is None:
        raise AccountError(f"no account {email}")
    hashed = hash_password(password)
    with conn.transaction():
        conn.execute("UPDATE hv.accounts SET password_hash = %s, updated_at = now()"
                     " WHERE id = %s", (hashed, account.id))
        who.record(conn, member=account.member_slug, action="account.password",
                   target=account.email)


# Tokens ---------------------------------------------------------------------------------


def token_digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def create_token(
    conn: psycopg.Connection,
    who: Who,
    *,
    email: str,
    member: str | None = None,
    rights: Sequence[str] | None = None,
    expires_at: datetime | None = None,
    label: str = "",
) -> IssuedToken:
    """Issue a token for an account's member; the secret is returned once, never stored."""
    account = get_account(conn, email)
    if account is None or not account.active:
        raise AccountError(f"no active account {email}")
    if member is not None and member != account.member_slug:
        raise AccountError(f"{account.email} belongs to member '{account.member_slug}',"
                           f" not '{member}': a token acts for its account's member only")
    wanted = normalise_rights(rights) if rights is not None else account.rights
    if not wanted:
        raise AccountError("a token needs at least one right")
    beyond = set(wanted) - set(account.rights)
    if beyond:
        raise AccountError(f"{account.email} does not hold {sorted(beyond)}")
    if expires_at is not None:
        if expires_at <= _now():
            raise AccountError("the expiry must be in the future")
        if expires_at > _now() + timedelta(days=MAX_TOKEN_DAYS):
            raise AccountError(f"a token lives at most {MAX_TOKEN_DAYS} days")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with conn.transaction():
        row = conn.execute(
            """
            INSERT INTO hv.api_tokens (account_id, member_slug, rights, label, token_hash,
                                       created_by, expires_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id
            """,
            (account.id, account.member_slug, list(wanted), label, token_digest(secret),
             who.actor, expires_at),
        ).fetchone()
        assert row is not None
        token_id = int(row[0])
        who.record(conn, member=account.member_slug, action="token.create",
                   target=f"token:{token_id}",
                   after={"account": account.email, "rights": list(wanted),
                          "expires_at": expires_at, "label": label})
    return IssuedToken(token_id, secret, account.member_slug, wanted, expires_at)


def authenticate(conn: psycopg.Connection, secret: str) -> Principal | None:
    """The principal behind a token, or None if it is unknown, expired or revoked, or
    its account was deactivated."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            """
            SELECT t.id AS token_id, t.rights AS token_rights, t.member_slug AS token_member,
                   t.expires_at, t.revoked_at, t.last_used_at, m.kind AS member_kind,
                   a.id, a.email, a.name, a.member_slug, a.rights, a.operator, a.active,
                   a.declared, a.password_hash IS NOT NULL AS has_password
            FROM hv.api_tokens t
            JOIN hv.accounts a ON a.id = t.account_id
            JOIN hv.members m ON m.slug = t.member_slug
            WHERE t.token_hash = %s
            """,
            (token_digest(secret),),
        ).fetchone()
    now = _now()
    if (
        row is None or row["revoked_at"] is not None or not row["active"]
        or (row["expires_at"] is not None and row["expires_at"] <= now)
        or row["token_member"] != row["member_slug"]
    ):
        return None
    if row["last_used_at"] is None or now - row["last_used_at"] > LAST_USED_RESOLUTION:
        with conn.transaction():
            conn.execute("UPDATE hv.api_tokens SET last_used_at = now() WHERE id = %s",
                         (row["token_id"],))
    account = _account(row)
    rights = frozenset(row["token_rights"]) & frozenset(account.rights)
    return Principal(account, row["token_id"], row["token_member"], row["member_kind"], rights)


def login(
    conn: psycopg.Connection, who_from: Who, email: str, password: str, hours: int,
) -> IssuedToken | None:
    """Check a password and issue a token valid `hours`; None when refused (audited)."""
    account = get_account(conn, email)
    stored = None
    if account is not None and account.active:
        row = conn.execute("SELECT password_hash FROM hv.accounts WHERE id = %s",
                           (account.id,)).fetchone()
        stored = row[0] if row else None
    ok = check_password(stored, password)
    actor = f"user:{email.strip().lower()[:254] or '?'}"
    who = Who(actor, who_from.source, who_from.request_id, who_from.remote_addr)
    if not ok or account is None:
        with conn.transaction():
            who.record(conn, member=account.member_slug if account else None,
                       action="auth.login-failed", target=actor.removeprefix("user:"))
        return None
    return create_token(conn, who, email=account.email, expires_at=_now() + timedelta(hours=hours),
                        label="login")


@dataclass(frozen=True)
class TokenInfo:
    id: int
    email: str
    member_slug: str
    rights: tuple[str, ...]
    label: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= _now():
            return "expired"
        return "active"


def list_tokens(
    conn: psycopg.Connection, *, member: str | None = None, account_id: int | None = None,
) -> list[TokenInfo]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """
            SELECT t.id, a.email, t.member_slug, t.rights, t.label, t.created_at, t.created_by,
                   t.expires_at, t.revoked_at, t.last_used_at
            FROM hv.api_tokens t JOIN hv.accounts a ON a.id = t.account_id
            WHERE (%(m)s::text IS NULL OR t.member_slug = %(m)s)
              AND (%(a)s::bigint IS NULL OR t.account_id = %(a)s)
            ORDER BY t.id
            """,
            {"m": member, "a": account_id},
        ).fetchall()
    return [TokenInfo(**{**r, "rights": tuple(r["rights"])}) for r in rows]


def revoke_token(
    conn: psycopg.Connection, who: Who, token_id: int, *, member: str | None = None,
    account_id: int | None = None,
) -> bool:
    """Revoke a token (limited to one member's or one account's when given). False when
    no such token is visible; revoking twice is not an error."""
    with conn.transaction():
        row = conn.execute(
            "SELECT member_slug, revoked_at FROM hv.api_tokens WHERE id = %s"
            " AND (%s::text IS NULL OR member_slug = %s)"
            " AND (%s::bigint IS NULL OR account_id = %s) FOR UPDATE",
            (token_id, member, member, account_id, account_id),
        ).fetchone()
        if row is None:
            return False
        if row[1] is None:
            conn.execute("UPDATE hv.api_tokens SET revoked_at = now(), revoked_by = %s"
                         " WHERE id = %s", (who.actor, token_id))
            who.record(conn, member=row[0], action="token.revoke", target=f"token:{token_id}")
    return True


# Grants ---------------------------------------------------------------------------------


def create_grant(
    conn: psycopg.Connection, who: Who, *, operator_email: str, member: str, hours: int,
    reason: str,
) -> Grant:
    """Let an operator read one member's personal data for `hours`."""
    account = get_account(conn, operator_email)
    if account is None or not account.active or not account.operator:
        raise AccountError(f"{operator_email} is not an active operator account")
    if _member_kind(conn, account.member_slug) != "syndicate":
        raise AccountError(f"{operator_email} is not an operator of the syndicate")
    _member_kind(conn, member)
    if member == account.member_slug:
        raise AccountError("operators read their own member's data without a grant")
    if not 1 <= hours <= MAX_GRANT_HOURS:
        raise AccountError(f"a grant lasts between 1 and {MAX_GRANT_HOURS} hours")
    if len(reason.strip()) < 3:
        raise AccountError("a grant needs a reason (it is shown to the member)")
    with conn.transaction():
        row = conn.execute(
            """
            INSERT INTO hv.access_grants (account_id, member_slug, reason, expires_at, created_by)
            VALUES (%s, %s, %s, now() + make_interval(hours => %s), %s)
            RETURNING id, starts_at, expires_at
            """,
            (account.id, member, reason.strip(), hours, who.actor),
        ).fetchone()
        assert row is not None
        who.record(conn, member=member, action="grant.create", target=f"grant:{row[0]}",
                   after={"operator": account.email, "hours": hours, "reason": reason.strip(),
                          "expires_at": row[2]})
    return Grant(row[0], account.email, member, reason.strip(), row[1], row[2], None)


def active_grant(conn: psycopg.Connection, account_id: int, member: str) -> int | None:
    row = conn.execute(
        "SELECT id FROM hv.access_grants WHERE account_id = %s AND member_slug = %s"
        " AND revoked_at IS NULL AND starts_at <= now() AND expires_at > now()"
        " ORDER BY expires_at DESC LIMIT 1",
        (account_id, member),
    ).fetchone()
    return None if row is None else int(row[0])


def list_grants(conn: psycopg.Connection, member: str | None = None) -> list[Grant]:
    rows = conn.execute(
        """
        SELECT g.id, a.email, g.member_slug, g.reason, g.starts_at, g.expires_at, g.revoked_at
        FROM hv.access_grants g JOIN hv.accounts a ON a.id = g.account_id
        WHERE %(m)s::text IS NULL OR g.member_slug = %(m)s ORDER BY g.id
        """,
        {"m": member},
    ).fetchall()
    return [Grant(*r) for r in rows]


def revoke_grant(
    conn: psycopg.Connection, who: Who, grant_id: int, *, member: str | None = None,
) -> bool:
    with conn.transaction():
        row = conn.execute(
            "SELECT member_slug, revoked_at FROM hv.access_grants WHERE id = %s"
            " AND (%s::text IS NULL OR member_slug = %s) FOR UPDATE",
            (grant_id, member, member),
        ).fetchone()
        if row is None:
            return False
        if row[1] is None:
            conn.execute("UPDATE hv.access_grants SET revoked_at = now(), revoked_by = %s"
                         " WHERE id = %s", (who.actor, grant_id))
            who.record(conn, member=row[0], action="grant.revoke", target=f"grant:{grant_id}")
    return True

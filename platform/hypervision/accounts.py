"""Named accounts, API tokens and operators' access grants (tables from
migrations/control/0011_accounts_and_tokens.sql; see platform/hypervision/api/README.md).

- An account is one named person of one member, with rights among read, export and
  admin. Syndicate staff flagged `operator` manage the network across members.
- A token is a random secret shown once; only its SHA-256 is stored. It acts for its
  account's member with at most its own rights, intersected at each use with the
  account's current rights, until it expires or is revoked. A token made from another
  (a personal token created in a console session, Superset's sign-in) never outlives it
  nor holds more rights, and is revoked with it. A password change, a suspension or a
  second-factor reset revokes every token of the person.
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
from psycopg import sql
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
    mfa_required: bool = False
    mfa_enrolled: bool = False
    sso_subject: str | None = None

    @property
    def needs_mfa(self) -> bool:
        """Admin rights and operators always need a second factor; others when their
        tenant file says `mfa: required`."""
        return "admin" in self.rights or self.operator or self.mfa_required


@dataclass(frozen=True)
class Principal:
    """Who is calling, resolved from a valid token."""

    account: Account
    token_id: int
    member_slug: str
    member_kind: str
    rights: frozenset[str]
    kind: str = "personal"
    expires_at: datetime | None = None
    mfa: bool = False
    method: str = "token"

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
    " password_hash IS NOT NULL AS has_password, mfa_required,"
    " totp_enrolled_at IS NOT NULL AS mfa_enrolled, sso_subject"
)


def _account(row: dict[str, Any]) -> Account:
    return Account(
        id=row["id"], email=row["email"], name=row["name"], member_slug=row["member_slug"],
        rights=tuple(row["rights"]), operator=row["operator"], active=row["active"],
        declared=row["declared"], has_password=row["has_password"],
        mfa_required=row["mfa_required"], mfa_enrolled=row["mfa_enrolled"],
        sso_subject=row["sso_subject"],
    )


def get_account(conn: psycopg.Connection, email: str) -> Account | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {_ACCOUNT_COLUMNS} FROM hv.accounts WHERE email = %s",
                          (email.strip().lower(),)).fetchone()
    return None if row is None else _account(row)


def get_account_by_subject(conn: psycopg.Connection, subject: str) -> Account | None:
    """The account whose tenant file declares this identity provider subject (`sso_subject`)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {_ACCOUNT_COLUMNS} FROM hv.accounts"
                          " WHERE sso_subject = %s", (subject,)).fetchone()
    return None if row is None else _account(row)


def list_accounts(conn: psycopg.Connection, member: str | None = None) -> list[Account]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {_ACCOUNT_COLUMNS} FROM hv.accounts"
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
            "active": account.active, "mfa_required": account.mfa_required,
            "sso_subject": account.sso_subject}


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
    mfa_required: bool = False,
    sso_subject: str | None = None,
) -> tuple[str, Account]:
    """Create or update an account; returns ('+' | '~' | '=', account). Deactivating an
    account (suspended, or no longer declared) revokes all its tokens."""
    email = email.strip().lower()
    wanted = normalise_rights(rights)
    if operator and _member_kind(conn, member) != "syndicate":
        raise AccountError(f"{email}: only members of kind 'syndicate' have operators")
    with conn.transaction():
        current = get_account(conn, email)
        if current is not None and current.member_slug != member:
            raise AccountError(f"{email} is already an account of member"
                               f" '{current.member_slug}'; one account belongs to one member")
        if current is not None and _unchanged(current, name, wanted, operator, active, declared,
                                              mfa_required, sso_subject):
            return "=", current
        conn.execute(
            """
            INSERT INTO hv.accounts (email, name, member_slug, rights, operator, declared, active,
                                     mfa_required, sso_subject)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (email) DO UPDATE SET name = EXCLUDED.name, rights = EXCLUDED.rights,
                operator = EXCLUDED.operator, declared = EXCLUDED.declared,
                active = EXCLUDED.active, mfa_required = EXCLUDED.mfa_required,
                sso_subject = EXCLUDED.sso_subject, updated_at = now()
            """,
            (email, name, member, list(wanted), operator, declared, active, mfa_required,
             sso_subject),
        )
        after = get_account(conn, email)
        symbol = "+" if current is None else "~"
        who.record(conn, member=member, action="account.create" if current is None
                   else "account.update", target=email, before=_public(current),
                   after=_public(after))
        if current is not None and current.active and not active:
            revoke_all(conn, who, current.id, reason="account deactivated")
    assert after is not None
    return symbol, after


def _unchanged(current: Account, name: str, rights: tuple[str, ...], operator: bool,
               active: bool, declared: bool, mfa_required: bool,
               sso_subject: str | None) -> bool:
    return (current.name, current.rights, current.operator, current.active, current.declared,
            current.mfa_required, current.sso_subject) == (
                name, rights, operator, active, declared, mfa_required, sso_subject)


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
        active = not getattr(user, "suspended", False)
        mfa_required = getattr(user, "mfa", None) == "required"
        subject = getattr(user, "sso_subject", None)
        current = existing.get(email)
        wanted = normalise_rights(user.rights)
        if current is not None and _unchanged(current, user.name, wanted, operator, active,
                                              True, mfa_required, subject):
            continue
        symbol = "+" if current is None else "~"
        changes.append(f"{symbol} {member}: account {email} ({', '.join(wanted)}"
                       f"{', operator' if operator else ''}"
                       f"{', second factor required' if mfa_required else ''}"
                       f"{', suspended' if not active else ''})")
        if not dry_run:
            upsert_account(conn, who, email=email, name=user.name, member=member,
                           rights=wanted, operator=operator, declared=True, active=active,
                           mfa_required=mfa_required, sso_subject=subject)
    for email, account in existing.items():
        if account.declared and account.active and email not in declared:
            changes.append(f"- {member}: account {email} deactivated (no longer declared)")
            if not dry_run:
                upsert_account(conn, who, email=email, name=account.name, member=member,
                               rights=account.rights, operator=account.operator,
                               declared=True, active=False,
                               mfa_required=account.mfa_required,
                               sso_subject=account.sso_subject)
    return changes


def set_password(conn: psycopg.Connection, who: Who, email: str, password: str) -> None:
    """Set an account's password; every token of the account is revoked (a stolen
    session does not survive the change)."""
    account = get_account(conn, email)
    if account is None:
        raise AccountError(f"no account {email}")
    hashed = hash_password(password)
    with conn.transaction():
        conn.execute("UPDATE hv.accounts SET password_hash = %s, updated_at = now()"
                     " WHERE id = %s", (hashed, account.id))
        who.record(conn, member=account.member_slug, action="account.password",
                   target=account.email)
        revoke_all(conn, who, account.id, reason="password changed")


def password_hash(conn: psycopg.Connection, account_id: int) -> str | None:
    row = conn.execute("SELECT password_hash FROM hv.accounts WHERE id = %s",
                       (account_id,)).fetchone()
    return row[0] if row else None


def change_password(conn: psycopg.Connection, who: Who, principal: Principal, current: str,
                    new: str) -> bool:
    """A person changes their own password, proving the current one; False when it is
    wrong (audited). Their sessions and tokens are revoked, this one included."""
    account = principal.account
    if not check_password(password_hash(conn, account.id), current):
        with conn.transaction():
            who.record(conn, member=account.member_slug, action="account.password-failed",
                       target=account.email)
        return False
    set_password(conn, who, account.email, new)
    return True


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
    kind: str = "personal",
    parent: Principal | None = None,
    mfa: bool = False,
    method: str = "token",
) -> IssuedToken:
    """Issue a token for an account's member; the secret is returned once, never stored.

    With `parent` (the token of the request that asks), the new token expires no later
    than the parent, holds no right the parent lacks, and is revoked with it."""
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
    if parent is not None:
        if parent.account.id != account.id:
            raise AccountError("a token is made from one of its own account's tokens only")
        beyond = set(wanted) - parent.rights
        if beyond:
            raise AccountError(f"this session cannot grant rights it lacks: {sorted(beyond)}")
        if parent.expires_at is not None and (expires_at is None
                                              or expires_at > parent.expires_at):
            expires_at = parent.expires_at
        mfa = mfa or parent.mfa
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
                                       created_by, expires_at, kind, parent_id, mfa, method)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id
            """,
            (account.id, account.member_slug, list(wanted), label, token_digest(secret),
             who.actor, expires_at, kind, parent.token_id if parent else None, mfa, method),
        ).fetchone()
        assert row is not None
        token_id = int(row[0])
        who.record(conn, member=account.member_slug, action="token.create",
                   target=f"token:{token_id}",
                   after={"account": account.email, "rights": list(wanted),
                          "expires_at": expires_at, "label": label, "kind": kind,
                          "parent": parent.token_id if parent else None, "mfa": mfa})
    return IssuedToken(token_id, secret, account.member_slug, wanted, expires_at)


def authenticate(conn: psycopg.Connection, secret: str) -> Principal | None:
    """The principal behind a token, or None if it is unknown, expired or revoked, or
    its account was deactivated, or a token it was made from is no longer valid."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    return _resolve(conn, "token_hash", token_digest(secret))


def authenticate_id(conn: psycopg.Connection, token_id: int) -> Principal | None:
    """`authenticate` for a token known by its id (a Superset sign-in names the console
    session it came from): None unless the token is still valid."""
    return _resolve(conn, "id", token_id)


def _resolve(conn: psycopg.Connection, column: str, value: Any) -> Principal | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            sql.SQL("""
            SELECT t.id AS token_id, t.rights AS token_rights, t.member_slug AS token_member,
                   t.expires_at, t.revoked_at, t.last_used_at, m.kind AS member_kind,
                   t.kind AS token_kind, t.mfa AS token_mfa, t.method AS token_method,
                   a.id, a.email, a.name, a.member_slug, a.rights, a.operator, a.active,
                   a.declared, a.password_hash IS NOT NULL AS has_password, a.mfa_required,
                   a.totp_enrolled_at IS NOT NULL AS mfa_enrolled, a.sso_subject,
                   (t.parent_id IS NULL OR (
                       WITH RECURSIVE chain AS (
                           SELECT p.id, p.parent_id, p.revoked_at, p.expires_at
                           FROM hv.api_tokens p WHERE p.id = t.parent_id
                           UNION ALL
                           SELECT p.id, p.parent_id, p.revoked_at, p.expires_at
                           FROM hv.api_tokens p JOIN chain c ON p.id = c.parent_id)
                       SELECT bool_and(revoked_at IS NULL
                                       AND (expires_at IS NULL OR expires_at > now()))
                       FROM chain)) AS parents_valid
            FROM hv.api_tokens t
            JOIN hv.accounts a ON a.id = t.account_id
            JOIN hv.members m ON m.slug = t.member_slug
            WHERE t.{} = %s
            """).format(sql.Identifier(column)),
            (value,),
        ).fetchone()
    now = _now()
    if (
        row is None or row["revoked_at"] is not None or not row["active"]
        or (row["expires_at"] is not None and row["expires_at"] <= now)
        or row["token_member"] != row["member_slug"] or not row["parents_valid"]
    ):
        return None
    if row["last_used_at"] is None or now - row["last_used_at"] > LAST_USED_RESOLUTION:
        with conn.transaction():
            conn.execute("UPDATE hv.api_tokens SET last_used_at = now() WHERE id = %s",
                         (row["token_id"],))
    account = _account(row)
    rights = frozenset(row["token_rights"]) & frozenset(account.rights)
    return Principal(account, row["token_id"], row["token_member"], row["member_kind"], rights,
                     kind=row["token_kind"], expires_at=row["expires_at"],
                     mfa=row["token_mfa"], method=row["token_method"])


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
    kind: str = "personal"
    parent_id: int | None = None

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
                   t.expires_at, t.revoked_at, t.last_used_at, t.kind, t.parent_id
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
    """Revoke a token (limited to one member's or one account's when given), and every
    token made from it. False when no such token is visible; revoking twice is not an
    error."""
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
            revoked = conn.execute(
                """
                WITH RECURSIVE tree AS (
                    SELECT id FROM hv.api_tokens WHERE id = %s
                    UNION ALL
                    SELECT c.id FROM hv.api_tokens c JOIN tree ON c.parent_id = tree.id)
                UPDATE hv.api_tokens SET revoked_at = now(), revoked_by = %s
                WHERE id IN (SELECT id FROM tree) AND revoked_at IS NULL
                RETURNING id
                """, (token_id, who.actor)).fetchall()
            children = sorted(r[0] for r in revoked if r[0] != token_id)
            who.record(conn, member=row[0], action="token.revoke", target=f"token:{token_id}",
                       after={"with": children} if children else None)
    return True


def revoke_all(conn: psycopg.Connection, who: Who, account_id: int, *, reason: str) -> int:
    """Revoke every live token of an account (sessions included); returns how many."""
    with conn.transaction():
        rows = conn.execute(
            "UPDATE hv.api_tokens SET revoked_at = now(), revoked_by = %s"
            " WHERE account_id = %s AND revoked_at IS NULL"
            " AND (expires_at IS NULL OR expires_at > now()) RETURNING id, member_slug",
            (who.actor, account_id)).fetchall()
        if rows:
            email = conn.execute("SELECT email FROM hv.accounts WHERE id = %s",
                                 (account_id,)).fetchone()
            who.record(conn, member=rows[0][1], action="token.revoke-all",
                       target=email[0] if email else f"account:{account_id}",
                       after={"tokens": sorted(r[0] for r in rows), "reason": reason})
    return len(rows)


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

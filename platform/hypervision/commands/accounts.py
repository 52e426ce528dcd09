"""`hypervision accounts|tokens|grants`: named accounts, API tokens and operators' grants.

Every change is written to the audit trail with the shell user as actor (`cli:<user>`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from hypervision import accounts, audit, mfa
from hypervision.commands.common import (
    MemberArg,
    MemberOption,
    Yes,
    confirm_or_exit,
    console,
    fail,
    settings_or_exit,
)
from hypervision.db import connect_admin

accounts_app = typer.Typer(help="Named personal accounts.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens: created, listed, revoked.", no_args_is_help=True)
grants_app = typer.Typer(help="Operators' time-limited access to a member's personal data.",
                         no_args_is_help=True)


def _who() -> accounts.Who:
    return accounts.Who(actor=audit.cli_actor(), source="cli")


def _rights(text: str) -> list[str]:
    try:
        return list(accounts.normalise_rights(text.split(",")))
    except accounts.AccountError as exc:
        raise fail(str(exc)) from None


def _print_table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Aligned plain columns, never cut to the terminal's width (e-mails and labels stay
    whole, and the output reads well in scripts and logs)."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    for line in (headers, *rows):
        typer.echo("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


def _when(value: datetime | None) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M}"


@accounts_app.command("list")
def list_accounts(member: MemberOption = None) -> None:
    settings = settings_or_exit()
    with connect_admin(settings) as conn:
        found = accounts.list_accounts(conn, member)
    _print_table(
        ("email", "name", "member", "rights", "operator", "active", "from", "password",
         "second factor"),
        [(a.email, a.name, a.member_slug, ",".join(a.rights), "yes" if a.operator else "",
          "yes" if a.active else "no", "file" if a.declared else "cli",
          "set" if a.has_password else "",
          "enrolled" if a.mfa_enrolled else ("missing" if a.needs_mfa else ""))
         for a in found])


@accounts_app.command("create")
def create_account(
    member: MemberArg,
    email: Annotated[str, typer.Argument(help="The person's e-mail.")],
    name: Annotated[str, typer.Option(help="The person's name.")],
    rights: Annotated[str, typer.Option(help="Comma-separated: read,export,admin.")] = "read",
    operator: Annotated[bool, typer.Option(help="A syndicate operator.")] = False,
) -> None:
    """Create or update an account (accounts of tenants/*.yaml come from `tenants apply`)."""
    settings = settings_or_exit()
    try:
        with connect_admin(settings) as conn:
            symbol, account = accounts.upsert_account(
                conn, _who(), email=email, name=name, member=member, rights=_rights(rights),
                operator=operator)
    except accounts.AccountError as exc:
        raise fail(str(exc)) from None
    console.print(f"{symbol} account {account.email} ({account.member_slug}:"
                  f" {','.join(account.rights)}{', operator' if account.operator else ''})")


@accounts_app.command("set-password")
def set_password(email: str, yes: Yes = False) -> None:
    """Set an account's password for the login endpoint (asked twice, never echoed); its
    sessions and tokens are revoked."""
    confirm_or_exit(yes, f"replace the password of {email.lower()} and revoke its sessions"
                         " and tokens")
    password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings = settings_or_exit()
    try:
        with connect_admin(settings) as conn:
            accounts.set_password(conn, _who(), email, password)
    except accounts.AccountError as exc:
        raise fail(str(exc)) from None
    console.print(f"~ password of {email.lower()} set (its sessions and tokens revoked)")


@accounts_app.command("mfa-reset")
def mfa_reset(email: str, yes: Yes = False) -> None:
    """Remove a person's second factor and recovery codes (a lost phone): their sessions
    and tokens are revoked, and they enrol a new factor at their next sign-in."""
    confirm_or_exit(yes, f"remove the second factor of {email.lower()} and revoke its"
                         " sessions and tokens")
    settings = settings_or_exit()
    try:
        with connect_admin(settings) as conn:
            account = mfa.reset(conn, _who(), email)
    except accounts.AccountError as exc:
        raise fail(str(exc)) from None
    console.print(f"~ second factor of {account.email} removed; they enrol again at their"
                  " next sign-in")


@tokens_app.command("create")
def create_token(
    member: MemberArg,
    user: Annotated[str, typer.Option(help="The account (e-mail) the token belongs to.")],
    rights: Annotated[str, typer.Option(help="Comma-separated: read,export,admin.")] = "read",
    expires_days: Annotated[int | None, typer.Option(
        min=1, max=accounts.MAX_TOKEN_DAYS, help="Days until it expires (default: never).")
    ] = None,
    label: Annotated[str, typer.Option(help="What the token is for.")] = "",
) -> None:
    """Create a token acting for the member and print it once: it is stored hashed and
    cannot be shown again."""
    settings = settings_or_exit()
    expires = datetime.now(UTC) + timedelta(days=expires_days) if expires_days else None
    try:
        with connect_admin(settings) as conn:
            issued = accounts.create_token(conn, _who(), email=user, member=member,
                                           rights=_rights(rights), expires_at=expires,
                                           label=label)
    except accounts.AccountError as exc:
        raise fail(str(exc)) from None
    console.print(f"+ token {issued.id} for {user.lower()} ({issued.member_slug}:"
                  f" {','.join(issued.rights)}), expires {_when(issued.expires_at) or 'never'}")
    console.print("  Copy it now, it will not be shown again:")
    typer.echo(issued.secret)


@tokens_app.command("list")
def list_tokens(member: MemberOption = None) -> None:
    settings = settings_or_exit()
    with connect_admin(settings) as conn:
        found = accounts.list_tokens(conn, member=member)
    _print_table(
        ("id", "account", "member", "rights", "state", "created", "expires", "last used",
         "label"),
        [(str(t.id), t.email, t.member_slug, ",".join(t.rights), t.state, _when(t.created_at),
          _when(t.expires_at), _when(t.last_used_at), t.label) for t in found])


@tokens_app.command("revoke")
def revoke_token(token_id: int, yes: Yes = False) -> None:
    """Revoke a token: requests carrying it are refused from now on."""
    confirm_or_exit(yes, f"revoke token {token_id}")
    settings = settings_or_exit()
    with connect_admin(settings) as conn:
        found = accounts.revoke_token(conn, _who(), token_id)
    if not found:
        raise fail(f"no token {token_id}")
    console.print(f"- token {token_id} revoked")


@grants_app.command("create")
def create_grant(
    member: MemberArg,
    operator: Annotated[str, typer.Option(help="The operator's e-mail.")],
    reason: Annotated[str, typer.Option(help="Why; shown in the member's audit trail.")],
    hours: Annotated[int, typer.Option(min=1, max=accounts.MAX_GRANT_HOURS)] = 24,
) -> None:
    """Let an operator read the member's personal data for a limited time (audited)."""
    settings = settings_or_exit()
    try:
        with connect_admin(settings) as conn:
            grant = accounts.create_grant(conn, _who(), operator_email=operator, member=member,
                                          hours=hours, reason=reason)
    except accounts.AccountError as exc:
        raise fail(str(exc)) from None
    console.print(f"+ grant {grant.id}: {grant.operator_email} may read {grant.member_slug}'s"
                  f" personal data until {_when(grant.expires_at)} UTC")


@grants_app.command("list")
def list_grants(member: MemberOption = None) -> None:
    settings = settings_or_exit()
    with connect_admin(settings) as conn:
        found = accounts.list_grants(conn, member)
    now = datetime.now(UTC)
    _print_table(
        ("id", "operator", "member", "from", "until", "state", "reason"),
        [(str(g.id), g.operator_email, g.member_slug, _when(g.starts_at), _when(g.expires_at),
          "revoked" if g.revoked_at else "expired" if g.expires_at <= now else "active",
          g.reason) for g in found])


@grants_app.command("revoke")
def revoke_grant(grant_id: int, yes: Yes = False) -> None:
    """End an operator's grant now."""
    confirm_or_exit(yes, f"revoke grant {grant_id}")
    settings = settings_or_exit()
    with connect_admin(settings) as conn:
        found = accounts.revoke_grant(conn, _who(), grant_id)
    if not found:
        raise fail(f"no grant {grant_id}")
    console.print(f"- grant {grant_id} revoked")


def register(app: typer.Typer) -> None:
    app.add_typer(accounts_app, name="accounts")
    app.add_typer(tokens_app, name="tokens")
    app.add_typer(grants_app, name="grants")

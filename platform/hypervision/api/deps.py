"""Who is calling and which member they may see, resolved once per request
(STYLE.md practice 8). Handlers receive a `MemberScope` and a reader connection and
never check ownership themselves.

Rules, in this order:
1. No token, or an unknown, expired or revoked one: 401.
2. A member the caller may not see gets 404, exactly like a member that does not exist:
   a stranger learns nothing. Callers see their own member; operators (flagged accounts
   of the syndicate member) see every member.
3. A missing right (read, export, admin) on a visible member: 403.
4. Personal data of another member (raw uplinks, personal data classes, exports) needs an
   operator's active grant: 403 without one.
"""

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import psycopg
from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hypervision import accounts, audit
from hypervision.accounts import Principal
from hypervision.api.db import Databases
from hypervision.settings import Settings
from hypervision.tenancy.spec import SLUG

bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer hv_...`")


@dataclass
class AppState:
    settings: Settings
    dbs: Databases
    limiter: Any


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.hv
    return state


State = Annotated[AppState, Depends(app_state)]


def _unauthorised(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail,
                         headers={"WWW-Authenticate": "Bearer"})


def current_principal(
    request: Request, state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None:
        raise _unauthorised("an API token is required (Authorization: Bearer ...)")
    with state.dbs.control() as conn:
        principal = accounts.authenticate(conn, credentials.credentials)
    if principal is None:
        raise _unauthorised("this token is unknown, expired or revoked")
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def forbidden(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, detail)


def not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found")


def require_right(principal: Principal, right: str) -> None:
    if right not in principal.rights:
        raise forbidden(f"this token lacks the '{right}' right")


def require_operator(principal: Principal) -> None:
    if not principal.operator:
        raise forbidden("only the syndicate's operators may do this")


@dataclass(frozen=True)
class MemberScope:
    """The member a request is about, and on what footing the caller sees it."""

    slug: str
    schema: str
    kind: str
    principal: Principal
    grant_id: int | None

    @property
    def own(self) -> bool:
        return self.principal.member_slug == self.slug

    @property
    def personal_data(self) -> bool:
        """May the caller read this member's personal data?"""
        return self.own or self.grant_id is not None


def _resolve_member(slug: str, principal: Principal, state: AppState) -> MemberScope:
    with state.dbs.control() as conn:
        row = conn.execute("SELECT slug, schema_name, kind FROM hv.members WHERE slug = %s",
                           (slug,)).fetchone()
        if row is None or (principal.member_slug != slug and not principal.operator):
            raise not_found(f"member '{slug}'")
        grant = None
        if principal.member_slug != slug:
            grant = accounts.active_grant(conn, principal.account.id, slug)
    return MemberScope(row[0], row[1], row[2], principal, grant)


SlugPath = Annotated[str, Path(pattern=SLUG, description="The member's slug.")]


def member_with(right: str, *, personal: bool = False) -> Callable[..., MemberScope]:
    """A dependency: the path's member, seen by the caller with `right`; with `personal`,
    also the right to read its personal data."""

    def dependency(slug: SlugPath, principal: CurrentPrincipal, state: State) -> MemberScope:
        scope = _resolve_member(slug, principal, state)
        require_right(principal, right)
        if personal and not scope.personal_data:
            raise forbidden(f"reading member '{slug}''s personal data needs an operator"
                            " grant from the member (see `hypervision grants create`)")
        return scope

    return dependency


_read = member_with("read")
_read_personal = member_with("read", personal=True)
ReadMember = Annotated[MemberScope, Depends(_read)]
PersonalReadMember = Annotated[MemberScope, Depends(_read_personal)]
ExportMember = Annotated[MemberScope, Depends(member_with("export"))]
AdminMember = Annotated[MemberScope, Depends(member_with("admin"))]


def reader_of(scope: Callable[..., MemberScope]) -> Callable[..., Iterator[psycopg.Connection]]:
    """A dependency: a connection as the scoped member's reader role (TenantSession)."""

    def dependency(member: Annotated[MemberScope, Depends(scope)],
                   state: State) -> Iterator[psycopg.Connection]:
        with state.dbs.reader(member.slug) as conn:
            yield conn

    return dependency


ReadSession = Annotated[psycopg.Connection, Depends(reader_of(_read))]
PersonalSession = Annotated[psycopg.Connection, Depends(reader_of(_read_personal))]


class Auditor:
    """Writes the audit entries of one request: actor, request id and address filled in."""

    def __init__(self, request: Request, state: AppState) -> None:
        self.request = request
        self.state = state

    @property
    def who(self) -> accounts.Who:
        principal: Principal | None = getattr(self.request.state, "principal", None)
        client = self.request.client
        return accounts.Who(
            actor=principal.actor if principal else "system:api",
            source="api",
            request_id=getattr(self.request.state, "request_id", None),
            remote_addr=client.host if client else None,
        )

    def record(self, action: str, member: str | None, *, target: str = "",
               params: Mapping[str, Any] | None = None, rows: int | None = None) -> int:
        principal: Principal | None = getattr(self.request.state, "principal", None)
        full = dict(params or {})
        if principal is not None:
            full["token"] = principal.token_id
        who = self.who
        with self.state.dbs.control() as conn:
            return audit.record(conn, actor=who.actor, member=member, action=action,
                                target=target, params=full, rows=rows, source="api",
                                request_id=who.request_id, remote_addr=who.remote_addr)


def auditor(request: Request, state: State) -> Auditor:
    return Auditor(request, state)


Audit = Annotated[Auditor, Depends(auditor)]

"""Who is using the console: the session cookie, resolved like an API token.

A session is an ordinary platform token (kind "session", issued by
`signin.password_login` or a single sign-on) carried in the HttpOnly, SameSite=Lax
cookie `hv_session`, and resolved by `accounts.authenticate` into the same `Principal`
as a bearer token. Member
pages then use the API's own rules (`api.deps`): a member the caller may not see is a
404, a missing right a 403, another member's personal data needs a grant.

Without a valid session, a page redirects to the login page (`LoginRequired`, turned
into a redirect by console.errors).
"""


from collections.abc import Callable
from typing import Annotated

import psycopg
from fastapi import Depends, Path, Request

from hypervision import accounts
from hypervision.accounts import Principal
from hypervision.api.deps import (
    MemberScope,
    State,
    _resolve_member,
    forbidden,
    reader_of,
    require_operator,
    require_right,
)
from hypervision.tenancy.spec import SLUG

SESSION_COOKIE = "hv_session"
SESSION_KIND = "session"


class LoginRequired(Exception):
    """No valid session: the page sends the browser to the login page."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def session_principal(request: Request, state: State) -> Principal:
    secret = request.cookies.get(SESSION_COOKIE)
    principal = None
    if secret:
        with state.dbs.control() as conn:
            principal = accounts.authenticate(conn, secret)
    if principal is None:
        query = f"?{request.url.query}" if request.url.query else ""
        raise LoginRequired(request.url.path + query)
    request.state.principal = principal
    return principal


ConsoleUser = Annotated[Principal, Depends(session_principal)]


def operator_user(principal: ConsoleUser) -> Principal:
    require_operator(principal)
    require_right(principal, "read")
    return principal


OperatorUser = Annotated[Principal, Depends(operator_user)]

SlugPath = Annotated[str, Path(pattern=SLUG)]


def member_page(right: str, *, personal: bool = False) -> Callable[..., MemberScope]:
    """A dependency: the path's member seen with `right` (the API's `member_with`)."""

    def dependency(slug: SlugPath, principal: ConsoleUser, state: State) -> MemberScope:
        scope = _resolve_member(slug, principal, state)
        require_right(principal, right)
        if personal and not scope.personal_data:
            raise forbidden("reading this member's personal data needs a grant")
        return scope

    return dependency


ReadPage = Annotated[MemberScope, Depends(member_page("read"))]
ExportPage = Annotated[MemberScope, Depends(member_page("export"))]
AdminPage = Annotated[MemberScope, Depends(member_page("admin"))]


ReadConn = Annotated[psycopg.Connection, Depends(reader_of(member_page("read")))]

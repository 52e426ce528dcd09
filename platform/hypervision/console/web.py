"""Rendering the console's pages: Jinja2 templates, the two languages, the security
headers every page carries, the CSRF token of its forms, and the static files.

Content-Security-Policy: scripts, styles and images from this origin only, no inline
script or style (templates use classes, never `style=`), forms post here only, nothing
frames the console. The one script (static/console.js) adds progress to downloads and
small conveniences; every page works without it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse

from hypervision.api.deps import app_state

STATIC_DIR = Path(__file__).parent / "static"
STATIC_FILES = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
       " connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-store",
                "Permissions-Policy": "interest-cohort=()"}
LANG_COOKIE = "hv_lang"
CSRF_COOKIE = "hv_csrf"
LANGS = ("fr", "en")

router = APIRouter()


def lang_of(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE)
    return lang if lang in LANGS else "fr"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("hypervision.console", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["urlquote"] = lambda v: quote(str(v), safe="")
    from hypervision.console.pages.common import local

    env.filters["local"] = local
    env.filters["num"] = lambda v: "—" if v is None else (
        f"{v:,.0f}".replace(",", "\u202f") if isinstance(v, int) or abs(v) >= 100
        else f"{v:.1f}")
    return env


# CSRF --------------------------------------------------------------------------------
# Every form carries a token: HMAC(secret, nonce cookie | session cookie). The nonce
# cookie is set on the first page; binding the session means a token shown before a
# login is worthless after it. A cross-site page can neither read the cookies nor
# compute the HMAC; the session cookie is SameSite=Lax besides.


def _csrf_nonce(request: Request) -> str:
    nonce: str | None = getattr(request.state, "csrf_nonce", None)
    if nonce is None:
        nonce = request.cookies.get(CSRF_COOKIE) or ""
        if len(nonce) != 43:
            nonce = secrets.token_urlsafe(32)
            request.state.csrf_new = True
        request.state.csrf_nonce = nonce
    return nonce


def csrf_token(request: Request) -> str:
    from hypervision.console.session import SESSION_COOKIE

    key = app_state(request).settings.key()
    message = f"csrf|{_csrf_nonce(request)}|{request.cookies.get(SESSION_COOKIE, '')}"
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def check_csrf(request: Request, given: str | None) -> None:
    """Refuse a form post without the right token, or sent from another origin."""
    # The host only: behind the TLS proxy the scheme and port seen here may differ from
    # the browser's; the signed token checked next is what proves the form is ours.
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).hostname != request.url.hostname:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-origin form refused")
    if not request.cookies.get(CSRF_COOKIE) or not given or not hmac.compare_digest(
            given, csrf_token(request)):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "this form has expired or did not come from this site; reload"
                            " the page and try again")


# Pages ------------------------------------------------------------------------------


def t_for(lang: str) -> Any:
    def t(fr: str, en: str) -> str:
        return en if lang == "en" else fr
    return t


def page_headers(request: Request) -> dict[str, str]:
    """The pages' headers. A sign-in form may end in Superset (its sign-in goes through
    the console, hypervision.superset.signin): browsers apply `form-action` to a form's
    redirects too, so Superset's origin is allowed there, and only there."""
    from hypervision.superset.server import public_url

    parts = urlsplit(public_url(app_state(request).settings))
    superset = f"{parts.scheme}://{parts.netloc}"
    return PAGE_HEADERS | {"Content-Security-Policy": CSP.replace(
        "form-action 'self'", f"form-action 'self' {superset}")}


def render(request: Request, template: str, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    """A page: the template with the language, the signed-in user, the CSRF token and
    the navigation, and the console's security headers."""
    lang = lang_of(request)
    principal = getattr(request.state, "principal", None)
    body = environment().get_template(template).render(
        lang=lang, t=t_for(lang), request=request, user=principal,
        csrf=csrf_token(request), path=request.url.path,
        here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        **context,
    )
    response = HTMLResponse(body, status_code=status_code, headers=page_headers(request))
    set_csrf_cookie(request, response)
    return response


def set_csrf_cookie(request: Request, response: Any) -> None:
    if getattr(request.state, "csrf_new", False):
        response.set_cookie(CSRF_COOKIE, request.state.csrf_nonce, httponly=True,
                            samesite="strict", path="/console",
                            secure=app_state(request).settings.console_secure_cookie)


@router.get("/static/{name}", name="console_static")
def static_file(name: str) -> FileResponse:
    """The console's own stylesheet and script; only the files listed are served."""
    if name not in STATIC_FILES:
        raise HTTPException(status.HTTP_404_NOT_FOUND)
    return FileResponse(STATIC_DIR / name, media_type=STATIC_FILES[name],
                        headers={"Cache-Control": "public, max-age=3600",
                                 "Content-Security-Policy": CSP})

"""The console's errors as pages: a missing session sends the browser to the login page;
a 403 or 404 under /console is an HTML page in the reader's language (the API keeps its
JSON answers)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from hypervision.console import PREFIX
from hypervision.console.session import LoginRequired


def install(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    def _login(request: Request, exc: LoginRequired) -> Response:
        from urllib.parse import quote

        return RedirectResponse(f"{PREFIX}/login?next={quote(exc.next_url, safe='/')}",
                                status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if not _console(request):
            return await http_exception_handler(request, exc)
        from hypervision.console.web import render

        return render(request, "error.html", status_code=exc.status_code,
                      code=exc.status_code, detail=str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if not _console(request):
            return await request_validation_exception_handler(request, exc)
        from hypervision.console.web import render

        where = ", ".join(".".join(str(p) for p in e.get("loc", ())[1:])
                          for e in exc.errors())
        return render(request, "error.html", status_code=400, code=400,
                      detail=f"invalid value: {where}")


def _console(request: Request) -> bool:
    return request.url.path.startswith(PREFIX + "/") or request.url.path == PREFIX

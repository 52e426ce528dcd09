"""The console: the web pages a member's staff and the syndicate's operators use every
day (alerts, devices, exports, the audit trail, operations), served by the API app under
/console. See platform/hypervision/console/README.md.

Server-rendered (Jinja2), French first with an English switch, no inline script, every
asset served from here. A console session is an ordinary platform token kept in an
HttpOnly cookie and resolved by `accounts.authenticate`, exactly like an API token: the
rights, the 404 for strangers and the audit entries are the API's.
"""

from __future__ import annotations

from fastapi import FastAPI

PREFIX = "/console"


def mount(app: FastAPI) -> None:
    """Add the console's routes and its HTML error pages to the API app."""
    from hypervision.console import errors, login, pages, second_factor, sso, superset

    errors.install(app)
    app.include_router(login.router, prefix=PREFIX, include_in_schema=False)
    app.include_router(second_factor.router, prefix=PREFIX, include_in_schema=False)
    app.include_router(sso.router, prefix=PREFIX, include_in_schema=False)
    app.include_router(superset.router, prefix=PREFIX, include_in_schema=False)
    app.include_router(pages.router, prefix=PREFIX, include_in_schema=False)

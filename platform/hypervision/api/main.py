"""The platform API (FastAPI, OpenAPI 3 at /api/v1/openapi.json): members, devices,
measurements, analytics and alerts, raw uplinks, usage, the audit trail and exports, for
named accounts holding API tokens. See platform/hypervision/api/README.md.

`create_app(settings)` builds the application; `hypervision api` serves it with uvicorn.
Authorisation lives in api/deps.py, once; routes only declare what they need.
No interactive documentation page is served: Swagger UI and ReDoc load their assets from
a CDN, and the platform calls no service outside the deployment. Point any OpenAPI viewer
at the JSON document instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout

from hypervision import accounts
from hypervision.api.db import Databases
from hypervision.api.deps import AppState, CurrentPrincipal, State
from hypervision.api.routes import (
    alerts,
    analytics,
    audit,
    auth,
    costs,
    coverage,
    dead_letters,
    exports,
    incidents,
    measurements,
    members,
    shares,
    superset,
    uplinks,
    usage,
)
from hypervision.api.security import LimiterUnavailable, LoginLimiter, SecurityHeaders
from hypervision.settings import Settings

PREFIX = "/api/v1"


def _check_database(state: AppState) -> None:
    """Fail at start-up, with the fix in the message, rather than on the first request."""
    try:
        with state.dbs.control() as conn:
            conn.execute("SELECT 1 FROM hv.api_tokens LIMIT 1")
    except (psycopg.Error, PoolTimeout) as exc:
        state.dbs.close()
        raise RuntimeError(
            f"the API cannot use the database as role {state.settings.api_role!r}"
            f" ({type(exc).__name__}); run `hypervision migrate` and `hypervision tenants"
            " apply`, which create the role and its grants") from None


def create_app(settings: Settings) -> FastAPI:
    state = AppState(settings=settings, dbs=Databases(settings),
                     limiter=LoginLimiter(settings.redis_url, settings.api_login_attempts))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        _check_database(state)
        yield
        state.dbs.close()
        state.limiter.close()

    app = FastAPI(
        title="Hypervision API",
        version="1",
        description="Members, devices, measurements, analytics, alerts, raw uplinks, usage,"
                    " audit trail and exports of the Hypervision LoRaWAN platform. Every read"
                    " of member data is recorded in the member's audit trail.",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.hv = state
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(PoolTimeout)
    def _busy(_: Request, exc: PoolTimeout) -> JSONResponse:
        return JSONResponse({"detail": "the service is busy; retry shortly"}, status_code=503,
                            headers={"Retry-After": "5"})

    @app.exception_handler(psycopg.errors.QueryCanceled)
    def _cancelled(_: Request, exc: psycopg.errors.QueryCanceled) -> JSONResponse:
        return JSONResponse({"detail": "the query took too long; narrow it down"},
                            status_code=503)

    @app.exception_handler(LimiterUnavailable)
    def _no_limiter(_: Request, exc: LimiterUnavailable) -> JSONResponse:
        return JSONResponse({"detail": "sign-in is unavailable for a moment; retry shortly"},
                            status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(accounts.AccountError)
    def _domain(_: Request, exc: accounts.AccountError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.get(f"{PREFIX}/health", tags=["operations"])
    def health() -> dict[str, str]:
        """Liveness: answers without touching the database or asking for a token."""
        return {"status": "ok"}

    for module in (auth, members, measurements, analytics, alerts, uplinks, usage, audit,
                   dead_letters, exports, shares, costs, coverage, incidents, superset):
        app.include_router(module.router, prefix=PREFIX)
    _mount_downlinks(app)
    # OGC SensorThings API 1.1 (read), per member: /sta/v1.1/<member>/...
    from hypervision.sensorthings.routes import router as sensorthings

    app.include_router(sensorthings)
    # Open data and its DCAT-AP catalogue, for anyone (hypervision.sharing.opendata_routes).
    from hypervision.sharing.opendata_routes import router as opendata_files

    app.include_router(opendata_files)
    # Public pages for citizens (QR codes on devices): no token, short URLs at the root.
    from hypervision.public.pages import router as public_pages

    app.include_router(public_pages, include_in_schema=False)
    # The console: the same accounts and rights, in the browser (session cookie).
    from hypervision import console

    console.mount(app)
    return app


def _mount_downlinks(app: FastAPI) -> None:
    """ChirpStack downlinks (hypervision.chirpstack.routes), with this API's callers: a
    member's account acts for its member; a syndicate operator for any member. They use
    this API's connections: its own role (which may insert downlink requests, per member)
    and the members' reader roles."""
    from hypervision.chirpstack import routes as downlink_routes

    def downlink_actor(principal: CurrentPrincipal, request: Request) -> downlink_routes.Actor:
        return downlink_routes.Actor(
            actor=principal.actor,
            member=None if principal.operator else principal.member_slug,
            may_command="admin" in principal.rights,
            request_id=getattr(request.state, "request_id", None),
            remote_addr=request.client.host if request.client else None,
        )

    def downlink_databases(state: State) -> downlink_routes.Databases:
        return state.dbs

    app.dependency_overrides[downlink_routes.get_actor] = downlink_actor
    app.dependency_overrides[downlink_routes.get_databases] = downlink_databases
    app.include_router(downlink_routes.router, prefix=PREFIX)


def app_from_settings() -> FastAPI:
    """The application configured from the environment: uvicorn's factory."""
    from hypervision.settings import get_settings

    return create_app(get_settings())

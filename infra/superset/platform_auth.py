"""Superset signs people in through the platform, asks it before every request whether they
may still be here, and reports every dashboard and chart it shows them (see
infra/superset/README.md, "Signing in through the platform").

Loaded by superset_config.py, inside Superset's own virtualenv: it cannot import the
platform and talks to it over HTTP (the platform's side: hypervision.superset.signin and
the API's /api/v1/superset/* routes).

1. `PlatformSecurityManager`: the login page sends the browser straight to the platform
   (AUTH_OAUTH, provider `hypervision`); the user is made or updated from the platform's
   answer, with the roles the tenant file gives them now (synced at every sign-in). No
   password is accepted but the provisioning `admin`'s (REST API login, provider `db`).
2. `still_signed_in` (before every request): a person signed in through the platform
   keeps their Superset session only while the platform says their token is valid. A
   suspension in the tenant file, a logout or a revoked session end it at the next
   request. Any other account but the provisioning `admin` is signed out.
3. `ViewLogger` (EVENT_LOGGER) notes the dashboard or chart a request shows, and
   `report_view` (after the request) sends it to the platform's audit trail once the
   answer is a success; a view the platform cannot record is not shown (503).
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from flask import Flask, Response, g, jsonify, redirect, request, session
from flask_appbuilder import expose
from flask_appbuilder.security.views import AuthOAuthView
from flask_login import current_user, logout_user
from superset.security import SupersetSecurityManager
from superset.utils.log import DBEventLogger

PROVIDER = "hypervision"
ADMIN = "admin"
TIMEOUT = 10
# Paths that need no platform check: assets, health, and the sign-in itself.
UNCHECKED = ("/static/", "/health", "/healthcheck", "/login", "/oauth-authorized/",
             "/logout", "/language_pack/", "/api/v1/security/login",
             "/api/v1/security/csrf_token/")
DASHBOARD_VIEW = "DashboardRestApi.get"
CHART_VIEWS = ("ChartDataRestApi.data", "ChartDataRestApi.get_data")

log = logging.getLogger("hypervision.platform_auth")


class Platform:
    """Where the platform's API answers (set by superset_config.py)."""

    url = ""

    @classmethod
    def call(cls, method: str, path: str, token: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{cls.url}/api/v1/superset/{path}",
                                headers={"Authorization": f"Bearer {token}"},
                                timeout=TIMEOUT, **kwargs)


def _token() -> str | None:
    value = session.get("oauth")
    if isinstance(value, list | tuple) and value and isinstance(value[0], str):
        return value[0]
    return None


# 1. Signing in ---------------------------------------------------------------------------


class PlatformLoginView(AuthOAuthView):
    """Superset's login page is the platform's: no form, no provider list."""

    @expose("/login/")
    @expose("/login/<provider>")
    def login(self, provider: str | None = None) -> Any:
        return super().login(PROVIDER)


class PlatformSecurityManager(SupersetSecurityManager):
    authoauthview = PlatformLoginView
    # Superset's own React login page (a password form) is not served.
    register_superset_auth_view = False

    def auth_user_db(self, username: str, password: str) -> Any:
        """Only the provisioning account has a password here (the REST API's login)."""
        if username != ADMIN:
            return None
        return super().auth_user_db(username, password)

    def get_oauth_user_info(self, provider: str, resp: dict[str, Any]) -> dict[str, Any]:
        answer = Platform.call("GET", "userinfo", resp["access_token"])
        answer.raise_for_status()
        info: dict[str, Any] = answer.json()
        return info

    def _oauth_calculate_user_roles(self, userinfo: dict[str, Any]) -> list[Any]:
        """The roles named by the platform (Gamma, the member's, the operator's view),
        those that exist; never one the platform did not name."""
        found = [self.find_role(name) for name in userinfo.get("roles", [])]
        return [role for role in found if role is not None]

    def auth_user_oauth(self, userinfo: dict[str, Any]) -> Any:
        """FAB's, after making sure a user the platform vouches for is active (an earlier
        provisioning may have deactivated them; the platform is the judge now)."""
        user = self.find_user(username=userinfo.get("username"))
        if user is not None and not user.active:
            user.active = True
            self.update_user(user)
        return super().auth_user_oauth(userinfo)


# 2. Before every request ------------------------------------------------------------------


def _signed_out(reason: str) -> Response:
    username = getattr(current_user, "username", "?")
    log.warning("signing %s out of Superset: %s", username, reason)
    logout_user()
    session.clear()
    if request.path.startswith("/api/"):
        response = jsonify({"message": f"signed out: {reason}"})
        response.status_code = 401
        return response
    return redirect("/login/")


def still_signed_in() -> Response | None:
    if request.path.startswith(UNCHECKED) or not current_user.is_authenticated:
        return None
    token = _token()
    if token is None:
        # Only the provisioning account signs in with a password (through the API).
        return None if current_user.username == ADMIN else _signed_out("no platform sign-in")
    try:
        answer = Platform.call("GET", "session", token)
    except requests.RequestException as exc:
        log.error("the platform does not answer: %s", exc)
        response = jsonify({"message": "the platform cannot confirm your session; retry"})
        response.status_code = 503
        return response
    if answer.status_code == 204:
        return None
    return _signed_out(f"the platform answered {answer.status_code}")


# 3. Views into the audit trail ------------------------------------------------------------


class ViewLogger(DBEventLogger):
    """Superset's own event log, plus a note of the dashboard or chart being shown."""

    def log(self, user_id: int | None, action: str, dashboard_id: int | None,
            duration_ms: int | None, slice_id: int | None, referrer: str | None,
            *args: Any, **kwargs: Any) -> None:
        super().log(user_id, action, dashboard_id, duration_ms, slice_id, referrer,
                    *args, **kwargs)
        try:
            _note(action, dashboard_id, slice_id)
        except Exception:  # outside a request, or an odd payload: never break the page
            log.exception("could not note a view (%s)", action)


def _note(action: str, dashboard_id: int | None, slice_id: int | None) -> None:
    if not request or _token() is None:
        return
    from superset import db
    from superset.models.dashboard import Dashboard
    from superset.models.slice import Slice

    if action == DASHBOARD_VIEW:
        found = Dashboard.get(str((request.view_args or {}).get("id_or_slug", "")))
        if found is not None:
            g.hv_view = {"kind": "dashboard", "id": found.id,
                         "title": found.dashboard_title or ""}
    elif action in CHART_VIEWS:
        # Superset 6.1 reads a JSON chart data request's form data from its first query,
        # where the chart's id is not: it is in the body's `form_data` (the front end's).
        body = request.get_json(cache=True, silent=True) if request.is_json else None
        form = body.get("form_data") if isinstance(body, dict) else None
        form = form if isinstance(form, dict) else {}
        slice_id = slice_id or form.get("slice_id") or (request.view_args or {}).get("pk")
        chart = db.session.get(Slice, int(slice_id)) if slice_id else None
        dashboard = dashboard_id or form.get("dashboardId")
        if chart is not None:
            g.hv_view = {"kind": "chart", "id": chart.id, "title": chart.slice_name or "",
                         "dashboard": int(dashboard) if dashboard else None}


def report_view(response: Response) -> Response:
    view = g.pop("hv_view", None)
    token = _token()
    if view is None or token is None or response.status_code != 200:
        return response
    try:
        answer = Platform.call("POST", "views", token, json=view)
    except requests.RequestException as exc:
        log.error("the platform does not answer: %s", exc)
        answer = None
    if answer is not None and answer.status_code == 201:
        return response
    # No entry in the audit trail, no view.
    refused = jsonify({"message": "this view could not be recorded in the audit trail"})
    refused.status_code = 503
    return refused


def install(app: Flask) -> None:
    """FLASK_APP_MUTATOR: the checks around every request."""
    app.before_request(still_signed_in)
    app.after_request(report_view)

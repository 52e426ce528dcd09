"""Apache Superset's configuration for Hypervision (see infra/superset/README.md).

Superset loads this file through SUPERSET_CONFIG_PATH. It runs inside Superset's own
virtualenv (.venv-superset) and cannot import the platform, so the platform passes every
value it needs as an environment variable when it starts the web server
(hypervision.superset.server):

    HV_SUPERSET_SECRET_KEY      signs sessions and encrypts stored database passwords
    HV_SUPERSET_DATABASE_URI    the metadata database, in the platform's PostgreSQL
    HV_SUPERSET_BEHIND_TLS      "1" when people reach Superset over https (behind the
                                proxy): the session cookie is then `Secure`, and the
                                proxy's X-Forwarded-* headers are trusted (one hop)
    HV_SUPERSET_PLATFORM_URL    where Superset reaches the platform's API (server to server)
    HV_SUPERSET_PLATFORM_PUBLIC_URL  where browsers reach the console, to sign in
    HV_SUPERSET_OAUTH_SECRET    Superset's secret as the platform's OAuth client

Choices made here, and why:
- Nothing leaves the machine (the platform calls no service outside the deployment,
  README.md): the Content-Security-Policy
  allows this origin only, which blocks the front end's tracking pixel, map tiles and web
  fonts; no documentation or bug-report links point outside.
- Members never write SQL: SQL Lab and templated SQL are off; a member's users get the
  `Gamma` role plus their member's role, which can use that member's database connection
  only. Isolation itself holds in PostgreSQL: that connection logs in with the member's
  read-only role.
- People sign in through the platform, never with a Superset password
  (platform_auth.py): the platform is the OAuth 2 provider, its console session (password
  and second factor, or single sign-on) is the authentication, the tenant file gives the
  roles at every sign-in, and the platform confirms the session before every request.
- Every dashboard and chart shown to a person enters the platform's audit trail.
- French first: the default language, number and date formats are French.
- No Redis, no Celery: caches are in process (or none); dashboards run queries
  synchronously.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from datetime import timedelta
from pathlib import Path

# Superset's own virtualenv loads this file; the platform's tests read its settings too,
# without Superset installed: the sign-in's classes are loaded in Superset only.
IN_SUPERSET = importlib.util.find_spec("superset") is not None
if IN_SUPERSET:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import platform_auth  # beside this file, found through the line above


def _required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise RuntimeError(
            f"{name} is not set: start Superset with `hypervision superset start`"
        )
    return value


SECRET_KEY = _required("HV_SUPERSET_SECRET_KEY")
BEHIND_TLS = os.environ.get("HV_SUPERSET_BEHIND_TLS", "") == "1"
SQLALCHEMY_DATABASE_URI = _required("HV_SUPERSET_DATABASE_URI")

# The metadata database must be PostgreSQL: with SQLite, two members' datasets on tables
# of the same name collide on a unique constraint.
SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 5}

APP_NAME = "Hypervision"
LOGO_TOOLTIP = "Hypervision"
FAB_API_SWAGGER_UI = False
SHOW_STACKTRACE = False
DOCUMENTATION_URL = None
BUG_REPORT_URL = None
TROUBLESHOOTING_LINK = ""

# --- Language ---------------------------------------------------------------------------
BABEL_DEFAULT_LOCALE = "fr"
LANGUAGES = {
    "fr": {"flag": "fr", "name": "Français"},
    "en": {"flag": "us", "name": "English"},
}
D3_FORMAT = {
    "decimal": ",",
    "thousands": "\u202f",
    "grouping": [3],
    "currency": ["", "\u00a0€"],
}
D3_TIME_FORMAT = {
    "dateTime": "%A %e %B %Y à %X",
    "date": "%d/%m/%Y",
    "time": "%H:%M:%S",
    "periods": ["", ""],
    "days": ["dimanche", "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi"],
    "shortDays": ["dim.", "lun.", "mar.", "mer.", "jeu.", "ven.", "sam."],
    "months": ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
               "septembre", "octobre", "novembre", "décembre"],
    "shortMonths": ["janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août",
                    "sept.", "oct.", "nov.", "déc."],
}
CURRENCIES = ["EUR"]

# --- No outbound calls ------------------------------------------------------------------
# Only this origin: the tracking pixel (an <img> to a third-party host), map tiles and
# web fonts are refused by the browser. Inline styles are needed by the chart library;
# scripts carry a nonce.
TALISMAN_ENABLED = True
CONTENT_SECURITY_POLICY_WARNING = False
TALISMAN_CONFIG = {
    "content_security_policy": {
        "default-src": ["'self'"],
        "base-uri": ["'self'"],
        "img-src": ["'self'", "blob:", "data:"],
        "worker-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "object-src": "'none'",
        "style-src": ["'self'", "'unsafe-inline'"],
        "font-src": ["'self'", "data:"],
        "script-src": ["'self'", "'strict-dynamic'"],
        "frame-ancestors": ["'self'"],
        "form-action": ["'self'"],
    },
    "content_security_policy_nonce_in": ["script-src"],
    # TLS ends at the proxy, which redirects plain HTTP itself.
    "force_https": False,
    "session_cookie_secure": BEHIND_TLS,
}
TALISMAN_DEV_CONFIG = TALISMAN_CONFIG
THEME_FONT_URL_ALLOWED_DOMAINS: list[str] = []
# Superset's default lets two map-tile hosts read its answers (CORS): no other origin may.
ENABLE_CORS = False
# Map charts are not used; their tile servers would be outside, and the CSP refuses them.
# (DECKGL_BASE_MAP must keep Superset's default list: the front end fails on an empty one.)
MAPBOX_API_KEY = ""

# --- Features ---------------------------------------------------------------------------
FEATURE_FLAGS = {
    # A dashboard lists the roles that may open it: a member's dashboards name its role.
    "DASHBOARD_RBAC": True,
    # Members do not write SQL, not even through Jinja templates in datasets.
    "ENABLE_TEMPLATE_PROCESSING": False,
    # Subqueries in ad-hoc expressions would let a chart read beyond its dataset.
    "ALLOW_ADHOC_SUBQUERY": False,
    # Guest tokens let a guest query any column of a dashboard's datasets: not used.
    "EMBEDDED_SUPERSET": False,
    "ALERT_REPORTS": False,
    "THUMBNAILS": False,
    "TAGGING_SYSTEM": False,
    "SQLLAB_BACKEND_PERSISTENCE": False,
    "ENABLE_FACTORY_RESET_COMMAND": False,
    # Draw every chart of a dashboard at once: ours hold a handful of charts, and a chart
    # drawn only once scrolled into view leaves blanks in printed or captured pages.
    "DASHBOARD_VIRTUALIZATION": False,
}
SQLLAB_TIMEOUT = 30
SUPERSET_WEBSERVER_TIMEOUT = 60
ROW_LIMIT = 50000

# --- Caches: none that need Redis -------------------------------------------------------
CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 300}
DATA_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
# Filter state and explore form data stay in the metadata database (Superset's default).
RATELIMIT_STORAGE_URI = "memory://"

# --- Sessions ---------------------------------------------------------------------------
# Over https (behind the proxy), the session cookie never travels in clear, and the
# client's address and scheme come from the proxy's headers (it is the only hop).
SESSION_COOKIE_SECURE = BEHIND_TLS
ENABLE_PROXY_FIX = BEHIND_TLS
PROXY_FIX_CONFIG = {"x_for": 1, "x_proto": 1, "x_host": 1, "x_port": 0, "x_prefix": 0}
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
PERMANENT_SESSION_LIFETIME = timedelta(hours=12)
PUBLIC_ROLE_LIKE = None

# --- Signing in through the platform (platform_auth.py) -----------------------------------
PLATFORM_URL = _required("HV_SUPERSET_PLATFORM_URL").rstrip("/")
PLATFORM_PUBLIC_URL = (os.environ.get("HV_SUPERSET_PLATFORM_PUBLIC_URL")
                       or PLATFORM_URL).rstrip("/")
AUTH_TYPE = 4  # flask_appbuilder.const.AUTH_OAUTH
OAUTH_PROVIDERS = [{
    "name": "hypervision",
    "icon": "fa-key",
    "token_key": "access_token",
    "remote_app": {
        "client_id": "superset",
        "client_secret": _required("HV_SUPERSET_OAUTH_SECRET"),
        "api_base_url": f"{PLATFORM_URL}/api/v1/superset/",
        "access_token_url": f"{PLATFORM_URL}/api/v1/superset/token",
        "authorize_url": f"{PLATFORM_PUBLIC_URL}/console/superset/authorize",
    },
}]
# A person the platform vouches for gets a Superset user at their first sign-in, with the
# roles the platform names; at each later sign-in their roles are set again.
AUTH_USER_REGISTRATION = True
AUTH_USER_REGISTRATION_ROLE = "Gamma"
AUTH_ROLES_SYNC_AT_LOGIN = True
# The REST API's password login stays open for the provisioning `admin` alone
# (PlatformSecurityManager.auth_user_db refuses every other account).
AUTH_API_LOGIN_ALLOW_MULTIPLE_PROVIDERS = True
if IN_SUPERSET:
    platform_auth.Platform.url = PLATFORM_URL
    CUSTOM_SECURITY_MANAGER = platform_auth.PlatformSecurityManager
    FLASK_APP_MUTATOR = platform_auth.install
    EVENT_LOGGER = platform_auth.ViewLogger()
# Members' users are Gamma (dashboards and charts, no data of their own) plus their member
# role; nobody but the admin gets the sql_lab role.

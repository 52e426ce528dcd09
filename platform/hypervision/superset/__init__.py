"""Apache Superset, the dashboard layer: each member sees its own data, and nothing of the
others (see platform/hypervision/superset/README.md).

- `server`: Superset's web server as a local daemon (start, stop, status);
- `client`: the REST client;
- `templates` and `bundle`: dashboards/*.yaml rendered as Superset import bundles;
- `provision`: per member, a connection through its read-only role, a role, its users
  and its dashboards; and the operator's view across members;
- `demo`: what `hypervision demo` shows at the end: an address and a login.
"""

from __future__ import annotations

from hypervision.superset.client import Client, SupersetError
from hypervision.superset.demo import demo_login
from hypervision.superset.provision import apply, apply_if_running
from hypervision.superset.server import public_url, start, status, stop

__all__ = ["Client", "SupersetError", "apply", "apply_if_running", "demo_login", "public_url",
           "start", "status", "stop"]

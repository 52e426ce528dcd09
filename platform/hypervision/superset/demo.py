"""The end of `hypervision demo`: Superset started, members provisioned, and a platform
account that shows one member's dashboards with the demo's data.

People sign in to Superset through the platform (hypervision.superset.signin): the demo's
account is a platform account of that member, read only, whose password signs in at the
console; Superset then lets it in without a password of its own.
"""

from __future__ import annotations

from collections.abc import Callable

from hypervision import accounts
from hypervision.db import connect_admin
from hypervision.settings import Settings
from hypervision.superset import provision, server
from hypervision.tenancy.spec import TenantSpec, load_dir

DEMO_USER = "demo@hypervision.invalid"
DEMO_WHO = accounts.Who("system:demo")


def demo_password(settings: Settings) -> str:
    """Derived from HV_SECRET_KEY: the same at every run of one installation."""
    return server.derive(settings, "demo-password")[:16]


def _demo_member(specs: list[TenantSpec]) -> TenantSpec:
    """The member whose devices cover the most kinds of data (ties: the first slug)."""
    return min(specs, key=lambda s: (-len({d.data_class for d in s.devices}), s.name))


def demo_login(settings: Settings, member: str | None = None,
               log: Callable[[str], None] = lambda _: None) -> tuple[str, str, str]:
    """Start Superset, provision every member, and create (or reset) the demo's platform
    account in one member, reading only. Returns (Superset's address, e-mail, password).
    The members must be applied."""
    specs = load_dir(settings.tenants_dir)
    if not specs:
        raise ValueError(f"no members in {settings.tenants_dir}")
    chosen = next((s for s in specs if s.name == member), None) if member else _demo_member(specs)
    if chosen is None:
        raise ValueError(f"no member {member!r} in {settings.tenants_dir}")
    server.start(settings, log=log)
    provision.apply(settings, specs, log=log)
    password = demo_password(settings)
    with connect_admin(settings) as conn:
        accounts.upsert_account(conn, DEMO_WHO, email=DEMO_USER,
                                name=f"Démo {chosen.identity.name}", member=chosen.name,
                                rights=["read"])
        accounts.set_password(conn, DEMO_WHO, DEMO_USER, password)
    return server.public_url(settings), DEMO_USER, password

"""The end of `hypervision demo`: Superset started, members provisioned, and a login that
shows one member's dashboards with the demo's data."""

from __future__ import annotations

from collections.abc import Callable

from hypervision.settings import Settings
from hypervision.superset import process, provision
from hypervision.tenancy.spec import TenantSpec, load_dir

DEMO_USER = "demo"


def demo_password(settings: Settings) -> str:
    """Derived from HV_SECRET_KEY: the same at every run of one installation."""
    return process.derive(settings, "demo-password")[:16]


def _demo_member(specs: list[TenantSpec]) -> TenantSpec:
    """The member whose devices cover the most kinds of data (ties: the first slug)."""
    return min(specs, key=lambda s: (-len({d.data_class for d in s.devices}), s.name))


def demo_login(settings: Settings, member: str | None = None,
               log: Callable[[str], None] = lambda _: None) -> tuple[str, str, str]:
    """Start Superset, provision every member, and create (or reset) the `demo` account of
    one member. Returns (address, username, password). The members must be applied."""
    specs = load_dir(settings.tenants_dir)
    if not specs:
        raise ValueError(f"no members in {settings.tenants_dir}")
    chosen = next((s for s in specs if s.name == member), None) if member else _demo_member(specs)
    if chosen is None:
        raise ValueError(f"no member {member!r} in {settings.tenants_dir}")
    process.start(settings, log=log)
    provision.apply(settings, specs, log=log)
    password = demo_password(settings)
    with provision.admin_client(settings) as client:
        roles = [provision.role_id(client, provision.GAMMA),
                 provision.role_id(client, provision.member_role_name(chosen.name))]
        provision.ensure_user(client, DEMO_USER, "demo@hypervision.invalid",
                              f"Démo {chosen.identity.name}", roles, password=password)
    return process.public_url(settings), DEMO_USER, password

"""Database connections: the superuser for migrations and tenancy, the ingest role for the
pipeline, a member's reader role for dashboards and exports. Conninfo strings carry
passwords: never log them."""

from __future__ import annotations

from typing import Any

import psycopg

from hypervision import placement
from hypervision.roles import RoleKind, member_role
from hypervision.settings import Settings


def connect_admin(settings: Settings, **kwargs: Any) -> psycopg.Connection:
    return psycopg.connect(settings.admin_conninfo(), autocommit=True, **kwargs)


def connect_as(settings: Settings, role: str, **kwargs: Any) -> psycopg.Connection:
    """A password connection as one of the platform's login roles (over TCP)."""
    return psycopg.connect(settings.role_conninfo(role), **kwargs)


def connect_member(settings: Settings, slug: str, kind: RoleKind = "reader",
                   **kwargs: Any) -> psycopg.Connection:
    """A connection as one of the member's login roles (its reader), on the database
    server the member is placed on (hypervision.placement)."""
    with connect_admin(settings) as admin:
        server = placement.member_server(admin, slug)
    return placement.connect_as(settings, server, member_role(slug, kind), **kwargs)

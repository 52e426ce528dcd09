"""Database connections: the superuser for migrations and tenancy, the ingest role for the
pipeline, a member's reader role for dashboards and exports. Conninfo strings carry
passwords: never log them."""

from __future__ import annotations

import psycopg

from hypervision.settings import Settings


def connect_admin(settings: Settings, **kwargs: object) -> psycopg.Connection:
    return psycopg.connect(settings.admin_conninfo(), autocommit=True, **kwargs)  # type: ignore[arg-type]


def connect_as(settings: Settings, role: str, **kwargs: object) -> psycopg.Connection:
    """A password connection as one of the platform's login roles (over TCP)."""
    return psycopg.connect(settings.role_conninfo(role), **kwargs)  # type: ignore[arg-type]

"""ChirpStack's database init script (infra/docker/chirpstack-postgres/initdb), run with
psql against the session's PostgreSQL as the postgres image runs it at first start."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from hypervision.settings import Settings

pytestmark = pytest.mark.services

SCRIPT = (Path(__file__).resolve().parents[2] / "infra" / "docker" / "chirpstack-postgres"
          / "initdb" / "001-chirpstack-role.sh")


def test_chirpstack_gets_its_own_database_and_a_role_that_is_not_a_superuser(
    platform_db: Settings, admin: psycopg.Connection[Any],
) -> None:
    password = "it's \"quoted\" $and; long"
    env = {**os.environ, "PATH": f"{platform_db.pg_bin_dir}:{os.environ['PATH']}",
           "PGHOST": str(platform_db.pg_socket_dir), "PGPORT": str(platform_db.pg_port),
           "POSTGRES_USER": platform_db.pg_superuser,
           "CHIRPSTACK_POSTGRES_PASSWORD": password}
    admin.execute("DROP DATABASE IF EXISTS chirpstack")
    admin.execute("DROP ROLE IF EXISTS chirpstack")
    try:
        result = subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True,
                                check=False)
        assert result.returncode == 0, result.stderr
        role = admin.execute("SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles"
                             " WHERE rolname = 'chirpstack'").fetchone()
        assert role == (False, False, False)
        assert admin.execute("SELECT has_database_privilege('public', 'chirpstack', 'CONNECT')"
                             ).fetchone() == (False,)
        with psycopg.connect(make_conninfo(
                "", host=platform_db.pg_host, port=platform_db.pg_port, dbname="chirpstack",
                user="chirpstack", password=password)) as conn:
            assert conn.execute("SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'"
                                ).fetchone() == ("pg_trgm",)
            assert conn.execute("SELECT current_user = (SELECT pg_get_userbyid(datdba)"
                                " FROM pg_database WHERE datname = 'chirpstack')"
                                ).fetchone() == (True,)
    finally:
        admin.execute("DROP DATABASE IF EXISTS chirpstack WITH (FORCE)")
        admin.execute("DROP ROLE IF EXISTS chirpstack")

"""Prepare Superset's metadata database, in one process (see infra/superset/README.md).

Run with Superset's own interpreter by `hypervision superset start`, before the web server:

    .venv-superset/bin/python infra/superset/bootstrap.py

It does what `superset db upgrade`, `superset init` and `superset fab create-admin` /
`reset-password` do, in one process instead of three (each start of Superset's app takes
seconds), and takes the admin password from the environment rather than from a command
line, where any local user could read it. Environment, besides superset_config.py's:

    HV_SUPERSET_ADMIN_PASSWORD   the `admin` account's password (set or reset)

Prints the metadata schema's Alembic revision on its last line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ADMIN = "admin"


def main() -> int:
    password = os.environ.get("HV_SUPERSET_ADMIN_PASSWORD", "")
    if not password:
        print("HV_SUPERSET_ADMIN_PASSWORD is not set", file=sys.stderr)
        return 2

    import superset
    from flask_migrate import upgrade
    from superset.app import create_app

    app = create_app()
    with app.app_context():
        # 1. The metadata schema (Superset's Alembic migrations).
        upgrade(directory=str(Path(superset.__file__).parent / "migrations"))

        # 2. Permissions and the built-in roles (Admin, Alpha, Gamma, sql_lab...).
        from superset import appbuilder, security_manager

        appbuilder.add_permissions(update_perms=True)
        security_manager.sync_role_definitions()

        # 3. The admin account, whose password derives from the platform's secret key.
        user = security_manager.find_user(username=ADMIN)
        if user is None:
            created = security_manager.add_user(
                ADMIN, "Admin", "Hypervision", "admin@hypervision.invalid",
                security_manager.find_role(security_manager.auth_role_admin),
                password=password,
            )
            if not created:
                print("could not create the admin account", file=sys.stderr)
                return 1
        else:
            security_manager.reset_password(user.id, password)

        from sqlalchemy import text
        from superset.extensions import db

        revision = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    print(revision)
    return 0


if __name__ == "__main__":
    sys.exit(main())

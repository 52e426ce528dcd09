"""Database roles' passwords, each given only to the processes that connect with it.

Every platform role has its own random password (Settings.role_password), kept in
HV_ROLE_SECRETS_DIR (default HV_DATA_DIR/secrets), one file per role, written by the
superuser's side (`migrate`, `tenants apply`, `superset start`). `publish` then copies
each into a folder per process kind, `<dir>/<consumer>/<role>`, holding what that process
needs and nothing else:

    worker     the ingest role (writes members' data through their writer roles)
    api        the API's role, the public pages' role, every member's reader role
    superset   Superset's metadata database role

In docker-compose.yml each container mounts its own folder as its HV_ROLE_SECRETS_DIR
(docs/runbook.md, "Secrets"); on one machine (`services start`, `demo`, tests) every
process reads the main folder and nothing has to be set up.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypervision.roles import OPERATOR_READER
from hypervision.settings import Settings

CONSUMERS = ("worker", "api", "superset")


def consumer_of(settings: Settings, role: str) -> str | None:
    """Which kind of process connects with `role` (None: only the superuser's side)."""
    if role == settings.ingest_role:
        return "worker"
    if role in (settings.api_role, settings.public_role) or (
            role.endswith("_reader") and role != OPERATOR_READER):
        return "api"
    if role == settings.superset_db_role:
        return "superset"
    return None


def publish(settings: Settings) -> dict[str, list[str]]:
    """Copy each role's password into its consumer's folder and remove what no longer
    belongs there; returns the roles per consumer."""
    folder = settings.role_secrets
    if not folder.is_dir():
        return {}
    wanted: dict[str, dict[str, str]] = {c: {} for c in CONSUMERS}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            consumer = consumer_of(settings, path.name)
            if consumer is not None:
                wanted[consumer][path.name] = path.read_text(encoding="utf-8")
    for consumer, roles in wanted.items():
        target = folder / consumer
        target.mkdir(mode=0o700, exist_ok=True)
        for stale in target.iterdir():
            if stale.name not in roles:
                stale.unlink()
        for role, text in roles.items():
            _write(target / role, text)
    return {c: sorted(r) for c, r in wanted.items()}


def _write(path: Path, text: str) -> None:
    """Write a secret file atomically, readable by its owner only."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    tmp.replace(path)

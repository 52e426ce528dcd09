"""Every command group says the same thing, and exits 1 without a traceback, when the
database does not answer (hypervision.commands.common.exit_on_errors and admin_db)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

# One command of each module that opens the database, as an operator would type it.
COMMANDS = [
    ["migrate"],                                    # commands/database.py
    ["tenants", "plan"],                            # commands/tenants.py
    ["alerts", "list", "alpha"],                    # commands/alerts.py
    ["water", "leaks", "alpha"],                    # commands/analytics.py
    ["shares", "list"],                             # commands/sharing.py
    ["audit", "verify"],                            # commands/audit.py
    ["tenant", "export", "alpha"],                  # commands/export.py
    ["retention", "plan"],                          # commands/retention.py
    ["gateways", "list"],                           # commands/chirpstack.py
    ["billing", "alpha", "--date", "2026-11-30"],   # commands/billing.py
    ["backup", "run", "--unencrypted"],             # commands/backup.py
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_database_that_does_not_answer_is_one_line_and_exit_code_1(
    command: list[str], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HV_")}
    # Nothing listens on this port's socket in an empty folder.
    env.update(HV_SECRET_KEY="k" * 64, HV_DATA_DIR=str(tmp_path), HV_PG_PORT="1",
               HV_TENANTS_DIR=str(REPO / "tests" / "payloads" / "tenants"),
               HV_BACKUP_DIR=str(tmp_path / "backups"))
    done = subprocess.run([sys.executable, "-m", "hypervision", *command], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "error: database unreachable:" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stdout + done.stderr

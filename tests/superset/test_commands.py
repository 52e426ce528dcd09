"""`hypervision superset start|stop|status|apply` on the session's real Superset."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from hypervision.commands import superset as superset_commands
from hypervision.superset import server
from tests.superset.conftest import ALPHA_USER, Deployment

pytestmark = pytest.mark.services


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    superset_commands.register(app)
    return app


def test_start_is_idempotent_and_status_says_running(superset: Deployment,
                                                     cli: typer.Typer) -> None:
    runner = CliRunner()
    started = runner.invoke(cli, ["superset", "start"])
    assert started.exit_code == 0, started.output
    assert "already running" in started.output
    status = runner.invoke(cli, ["superset", "status"])
    assert status.exit_code == 0
    assert "running" in status.output


def test_a_restart_skips_the_bootstrap_and_answers_again(superset: Deployment) -> None:
    settings = superset.settings
    first = server.pid(settings)
    server.stop(settings)
    assert server.pid(settings) is None
    assert not server.status(settings)
    messages: list[str] = []
    server.start(settings, log=messages.append)
    assert server.status(settings)
    assert server.pid(settings) != first
    assert not any("metadata database" in m for m in messages), messages


def test_apply_provisions_the_members_of_a_folder(superset: Deployment, cli: typer.Typer,
                                                  tmp_path: Path) -> None:
    from tests.conftest import TENANTS

    for path in TENANTS.glob("*.yaml"):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        if spec["name"] == "alpha":  # keep the session's alpha user declared
            spec["users"] = [{"name": "Agent Alpha", "email": ALPHA_USER}]
        (tmp_path / path.name).write_text(yaml.safe_dump(spec, allow_unicode=True),
                                          encoding="utf-8")
    result = CliRunner().invoke(cli, ["superset", "apply", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "= alpha: 4 dashboards (air, health, waste, water), 1 users" in result.output
    assert "= operator: 1 dashboards" in result.output

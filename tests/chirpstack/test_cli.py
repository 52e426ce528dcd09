"""The commands: chirpstack plan|apply, gateways sync|list, downlink, downlinks ...."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from hypervision.commands import chirpstack as commands
from tests.chirpstack.conftest import APP_KEYS
from tests.chirpstack.fake_chirpstack import FakeChirpStack

pytestmark = pytest.mark.services
LAMP = "1c1c1c1c1c1c0001"


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    commands.register(app)
    return app


def _run(cli: typer.Typer, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_plan_then_apply_then_plan_again_shows_nothing_to_do(
    cli: typer.Typer, catalogue_db: psycopg.Connection, chirpstack: FakeChirpStack,
    chirpstack_env: Path, lumiere: object,
) -> None:
    code, out = _run(cli, "chirpstack", "plan", "--dir", str(chirpstack_env))
    assert code == 0, out
    assert "+ lumiere: tenant 'Syndicat Lumière (test)'" in out
    assert "+ lumiere: gateway 0016c001f1500001" in out
    assert chirpstack.store.writes() == {}

    code, out = _run(cli, "chirpstack", "apply", "--dir", str(chirpstack_env))
    assert code == 0, out
    assert "change(s) applied in ChirpStack" in out
    assert len(chirpstack.store.devices) == 9
    assert not any(key in out for key in APP_KEYS.values())

    code, out = _run(cli, "chirpstack", "apply", "--dir", str(chirpstack_env))
    assert (code, out.splitlines()[-1]) == (0, "= nothing to change in ChirpStack")


def test_prune_needs_yes(cli: typer.Typer, chirpstack_env: Path) -> None:
    code, out = _run(cli, "chirpstack", "apply", "--dir", str(chirpstack_env), "--prune")
    assert code == 1 and "add --yes" in out


def test_a_wrong_token_is_exit_code_1_with_the_reason(
    cli: typer.Typer, chirpstack_env: Path, catalogue_db: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, lumiere: object,
) -> None:
    from hypervision.settings import get_settings

    wrong = tmp_path / "wrong"
    wrong.write_text("a-wrong-token")
    monkeypatch.setenv("HV_CHIRPSTACK_API_TOKEN_FILE", str(wrong))
    get_settings.cache_clear()
    code, out = _run(cli, "chirpstack", "plan", "--dir", str(chirpstack_env))
    assert code == 1
    assert "refused the API token" in out and "a-wrong-token" not in out


def test_gateways_sync_and_list(
    cli: typer.Typer, catalogue_db: psycopg.Connection, chirpstack_env: Path,
    lumiere: object,
) -> None:
    assert _run(cli, "chirpstack", "apply", "--dir", str(chirpstack_env))[0] == 0
    code, out = _run(cli, "gateways", "sync")
    assert code == 0, out
    assert "~ gateway 0016c001f1500001: new -> NEVER_SEEN" in out
    code, out = _run(cli, "gateways", "list")
    assert code == 0 and "0016c001f1500002" in out and "Clocher" in out
    assert "NEVER_SEEN" in out


def test_downlink_sends_a_command_and_downlinks_list_shows_it(
    cli: typer.Typer, catalogue_db: psycopg.Connection, chirpstack: FakeChirpStack,
    chirpstack_env: Path, lumiere: object,
) -> None:
    assert _run(cli, "chirpstack", "apply", "--dir", str(chirpstack_env))[0] == 0
    code, out = _run(cli, "downlink", LAMP, "--command", "switch", "-p", "circuits=1,3",
                     "-p", "state=on")
    assert code == 0, out
    assert "fPort 85, 080505 (confirmed)" in out
    (item,) = chirpstack.store.queue[LAMP]
    assert item.data.hex() == "080505"
    actor = catalogue_db.execute(
        "SELECT actor, source FROM hv.audit_log WHERE action = 'downlink.enqueue'"
        " AND after->>'queue_item_id' = %s", (item.id,)).fetchone()
    assert actor is not None and actor[0].startswith("cli:") and actor[1] == "cli"

    code, out = _run(cli, "downlinks", "list", LAMP)
    assert code == 0 and "080505" in out and "queued" in out
    assert _run(cli, "downlinks", "track")[0] == 0

    code, out = _run(cli, "downlink", LAMP, "--command", "dim")
    assert code == 1 and "has no command 'dim'" in out
    code, out = _run(cli, "downlink", LAMP, "--command", "switch", "-p", "circuits")
    assert code == 1 and "expected key=value" in out

    code, out = _run(cli, "downlinks", "commands", "milesight-ws558")
    assert code == 0 and "switch(circuits, state)" in out

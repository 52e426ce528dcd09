"""`hypervision shares`: what an operator or a DPO reads and runs by hand."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from hypervision.cli import app as cli
from tests.sharing.conftest import Story

pytestmark = pytest.mark.services

runner = CliRunner()


def test_the_agreements_their_key_and_expiry_from_the_command_line(story: Story) -> None:
    story.apply()
    listed = runner.invoke(cli, ["shares", "list", "--member", "epci_b"])
    assert listed.exit_code == 0, listed.output
    assert "commune_a/waste-to-epci → epci_b: active" in listed.output
    assert "meters-to-beta" not in listed.output  # not epci_b's business
    key = runner.invoke(cli, ["shares", "key"])
    assert key.exit_code == 0 and key.output.startswith("ssh-ed25519 AAAA")
    signing = runner.invoke(cli, ["shares", "signing-key", "commune_a", "waste-to-epci"])
    assert signing.exit_code == 0 and len(signing.output.strip()) == 64
    nothing = runner.invoke(cli, ["shares", "expire"])
    assert nothing.exit_code == 0 and "no agreement past its end" in nothing.output

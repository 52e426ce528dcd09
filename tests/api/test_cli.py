"""The command line: accounts, tokens, grants, audit verify and usage."""

from __future__ import annotations

import csv
import io
from typing import Any

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from hypervision.commands import accounts as accounts_commands
from hypervision.commands import audit as audit_commands
from hypervision.commands import usage as usage_commands
from tests.api.conftest import World

pytestmark = pytest.mark.services

cli = typer.Typer()
for group in (accounts_commands, audit_commands, usage_commands):
    group.register(cli)
runner = CliRunner()


def run(*args: str, input: str | None = None) -> Any:
    return runner.invoke(cli, list(args), input=input)


def test_a_token_is_created_printed_once_listed_and_revoked(
    world: World, client: Any, admin_conn: psycopg.Connection,
) -> None:
    created = run("tokens", "create", "alpha", "--user", "ana@alpha.example.org",
                  "--rights", "read", "--expires-days", "3", "--label", "nightly job")
    assert created.exit_code == 0, created.output
    secret = created.output.strip().splitlines()[-1]
    assert secret.startswith("hv_")
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/members/alpha", headers=headers).status_code == 200
    token_id = created.output.split()[2]
    listed = run("tokens", "list", "--member", "alpha")
    assert "nightly" in listed.output and secret[:12] not in listed.output
    assert run("tokens", "revoke", token_id).exit_code == 1  # not confirmed
    assert run("tokens", "revoke", token_id, "--yes").exit_code == 0
    assert client.get("/api/v1/members/alpha", headers=headers).status_code == 401
    actions = [r[0] for r in admin_conn.execute(
        "SELECT action FROM hv.audit_log WHERE target = %s ORDER BY id",
        (f"token:{token_id}",)).fetchall()]
    assert actions == ["token.create", "token.revoke"]
    actor = admin_conn.execute("SELECT actor, source FROM hv.audit_log WHERE target = %s"
                               " ORDER BY id LIMIT 1", (f"token:{token_id}",)).fetchone()
    assert actor is not None and actor[0].startswith("cli:") and actor[1] == "cli"


@pytest.mark.parametrize(("args", "message"), [
    (("beta", "--user", "ana@alpha.example.org"), "belongs to member 'alpha'"),
    (("alpha", "--user", "ana@alpha.example.org", "--rights", "export"),
     "does not hold"),
    (("alpha", "--user", "nobody@alpha.example.org"), "no active account"),
    (("alpha", "--user", "ana@alpha.example.org", "--rights", "root"),
     "unknown right"),
])
def test_a_token_beyond_the_accounts_member_or_rights_is_refused(
    world: World, args: tuple[str, ...], message: str,
) -> None:
    result = run("tokens", "create", *args)
    assert result.exit_code == 1
    assert message in result.output


def test_accounts_and_grants_from_the_command_line(world: World) -> None:
    created = run("accounts", "create", "alpha", "carla@alpha.example.org", "--name", "Carla",
                  "--rights", "read,export")
    assert created.exit_code == 0 and created.output.startswith("+")
    again = run("accounts", "create", "alpha", "carla@alpha.example.org", "--name", "Carla",
                "--rights", "read,export")
    assert again.output.startswith("=")
    not_syndic = run("accounts", "create", "alpha", "eve@alpha.example.org", "--name", "Eve",
                     "--operator")
    assert not_syndic.exit_code == 1 and "syndicate" in not_syndic.output
    password = run("accounts", "set-password", "carla@alpha.example.org", "--yes",
                   input="a long enough password\na long enough password\n")
    assert password.exit_code == 0, password.output
    grant = run("grants", "create", "beta", "--operator", "olga@syndic.example.org",
                "--hours", "2", "--reason", "checking a meter")
    assert grant.exit_code == 0, grant.output
    grant_id = grant.output.split()[2].rstrip(":")
    assert "active" in run("grants", "list", "--member", "beta").output
    assert run("grants", "revoke", grant_id, "-y").exit_code == 0
    refused = run("grants", "create", "alpha", "--operator", "bob@beta.example.org",
                  "--reason", "not an operator")
    assert refused.exit_code == 1


def test_audit_verify_passes_on_an_intact_trail_and_shows_entries(world: World) -> None:
    verified = run("audit", "verify")
    assert verified.exit_code == 0, verified.output
    assert "head hash" in verified.output
    shown = run("audit", "show", "--member", "alpha", "--limit", "5")
    assert shown.exit_code == 0 and "alpha" in shown.output


def test_audit_verify_exits_1_on_a_tampered_trail(world: World,
                                                  admin_conn: psycopg.Connection) -> None:
    """The tampering is committed, checked, then repaired by restoring the value, so the
    shared test database ends intact."""
    row = admin_conn.execute("SELECT id, target FROM hv.audit_log ORDER BY id LIMIT 1").fetchone()
    assert row is not None
    with admin_conn.transaction():
        admin_conn.execute("SET LOCAL session_replication_role = replica")
        admin_conn.execute("UPDATE hv.audit_log SET target = 'forged' WHERE id = %s", (row[0],))
    try:
        result = run("audit", "verify")
        assert result.exit_code == 1
        assert f"entry {row[0]}" in result.output
    finally:
        with admin_conn.transaction():
            admin_conn.execute("SET LOCAL session_replication_role = replica")
            admin_conn.execute("UPDATE hv.audit_log SET target = %s WHERE id = %s",
                               (row[1], row[0]))
    assert run("audit", "verify").exit_code == 0


def test_usage_as_csv_has_one_row_per_member_and_day(world: World,
                                                     admin_conn: psycopg.Connection) -> None:
    admin_conn.execute(
        "INSERT INTO hv.ingest_outcomes (day, member_slug, event_type, outcome, events, bytes)"
        " VALUES ('2025-01-01', 'alpha', 'up', 'stored', 180, 90000)"
        " ON CONFLICT DO NOTHING")
    result = run("usage", "--from", "2025-01-01", "--to", "2025-01-02", "--csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    alpha = {r["day"]: r for r in rows if r["member"] == "alpha"}
    assert alpha["2025-01-01"]["uplinks"] == "180"
    assert alpha["2025-01-01"]["bytes"] == "90000"
    assert alpha["2025-01-01"]["active_devices"] == "3"
    assert alpha["2025-01-02"]["uplinks"] == "0"
    assert {r["member"] for r in rows} >= {"alpha", "beta", "syndic"}
    bad = run("usage", "--from", "2025-02-01", "--to", "2025-01-01")
    assert bad.exit_code == 1

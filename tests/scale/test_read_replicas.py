"""Read replicas: a physical streaming replica of the second server (pg_basebackup from it,
started on port base + 434), declared in a servers file. The dashboards of a member on
that server read the replica; what is written on the server is read there as the member's
reader role once replayed; the replica refuses writes; `hypervision servers` reports it
with its lag and fails when it is stopped."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from typer.testing import CliRunner

from hypervision import daemons, placement, replicas
from hypervision.settings import Settings
from hypervision.superset import provision
from hypervision.superset.bundle import render
from hypervision.superset.templates import load
from hypervision.tenancy.spec import load_dir
from tests.conftest import TENANTS, TEST_DATA, wait_for
from tests.scale.conftest import (
    KAPPA_AIR,
    SCALE_TENANTS,
    SECOND_PORT,
    TwoServers,
    kappa_uplink,
    write_servers_file,
)

pytestmark = pytest.mark.services

REPLICA_PORT = SECOND_PORT + 1
AIR = KAPPA_AIR


@dataclass
class WithReplica:
    settings: Settings   # the platform's, with a servers file declaring the replica
    second: Settings     # the second cluster's own
    replica: Settings    # the replica cluster's own (its data folder, port, socket)


@pytest.fixture(scope="module")
def with_replica(two_servers: TwoServers) -> Iterator[WithReplica]:
    """The replica of the second server taken and started, and a servers file declaring
    it; at the end, the replica stopped and its data removed."""
    replica = two_servers.second.model_copy(update={
        "data_dir": TEST_DATA / "second-replica", "pg_port": REPLICA_PORT})
    path = TEST_DATA / "servers-replica.yaml"
    daemons.postgres.stop(replica)  # one left running by an interrupted run
    shutil.rmtree(replica.data_dir, ignore_errors=True)
    try:
        daemons.postgres.replicate(replica, two_servers.second)
        write_servers_file(path, two_servers.second,
                           replica={"host": "127.0.0.1", "port": REPLICA_PORT})
        yield WithReplica(two_servers.settings.model_copy(
            update={"database_servers_file": path}), two_servers.second, replica)
    finally:
        daemons.postgres.stop(replica)
        shutil.rmtree(replica.data_dir, ignore_errors=True)
        path.unlink(missing_ok=True)


def _spec(name: str, folder: Path = SCALE_TENANTS) -> Any:
    return next(s for s in load_dir(folder) if s.name == name)


def _servers_file(tmp_path: Path, servers: list[dict[str, object]]) -> Path:
    path = tmp_path / "servers.yaml"
    path.write_text(yaml.safe_dump({"version": "v1", "kind": "database_servers",
                                    "servers": servers}), encoding="utf-8")
    return path


SECOND = {"name": "second", "role": "members", "host": "127.0.0.1", "port": SECOND_PORT,
          "database": "hv", "admin_url": "host=/nowhere"}


@pytest.mark.parametrize(("servers", "message"), [
    ([{"name": "a", "role": "primary"}, {**SECOND, "replica": {"host": "127.0.0.1",
                                                               "port": SECOND_PORT}}],
     f"the replica of server second has the address of server second .127.0.0.1:{SECOND_PORT}"),
    ([{"name": "a", "role": "primary"}, SECOND,
      {**SECOND, "name": "third", "port": SECOND_PORT + 5,
       "replica": {"host": "127.0.0.1", "port": SECOND_PORT}}],
     "the replica of server third has the address of server second"),
    ([{"name": "a", "role": "primary", "replica": {"host": "r", "port": 5432}},
      {**SECOND, "replica": {"host": "r", "port": 5432}}],
     "the replica of server second has the address of the replica of server a"),
    ([{"name": "a", "role": "primary"}, {**SECOND, "replica": {"host": "r"}}],
     r"servers.1.replica.port\n  Field required"),
    ([{"name": "a", "role": "primary"}, {**SECOND, "replica": {"host": "r", "port": 1,
                                                               "admin_url": "x"}}],
     r"replica.admin_url\n  Extra inputs are not permitted"),
    ([{"name": "a", "role": "primary"},
      {"name": "b", "role": "members", "replica": {"host": "r", "port": 5432}}],
     "server b: missing host, port, database, admin_url or admin_url_file"),
])
def test_it_refuses_a_wrong_replica_saying_why(two_servers: TwoServers, tmp_path: Path,
                                               servers: list[dict[str, object]],
                                               message: str) -> None:
    settings = two_servers.settings.model_copy(
        update={"database_servers_file": _servers_file(tmp_path, servers)})
    with pytest.raises(placement.PlacementError, match=message):
        placement.load_servers(settings)


def test_a_replica_has_its_servers_database_and_tls_unless_given(
    two_servers: TwoServers, tmp_path: Path
) -> None:
    settings = two_servers.settings.model_copy(update={"database_servers_file": _servers_file(
        tmp_path, [{"name": "a", "role": "primary", "replica": {"host": "r0", "port": 6000}},
                   {**SECOND, "sslmode": "verify-full",
                    "replica": {"host": "r1", "port": 6001}},
                   {**SECOND, "name": "third", "port": 7000, "sslmode": "verify-full",
                    "replica": {"host": "r2", "port": 6002, "database": "copy",
                                "sslmode": "require"}}])})
    servers = placement.load_servers(settings)
    assert servers["a"].replica == placement.Replica("r0", 6000, settings.pg_database, None)
    assert servers["second"].replica == placement.Replica("r1", 6001, "hv", "verify-full")
    assert servers["third"].replica == placement.Replica("r2", 6002, "copy", "require")
    # A replica on the primary serves the dashboards of the members there, and the
    # operator's.
    alpha = _spec("alpha", TENANTS)
    assert provision.member_target(settings, alpha).sqlalchemy_uri.endswith(
        f"@r0:6000/{settings.pg_database}")
    assert provision.operator_target(settings).sqlalchemy_uri.endswith(
        f"@r0:6000/{settings.pg_database}")
    assert provision.member_target(settings, _spec("kappa"), "third").sqlalchemy_uri.endswith(
        "@r2:6002/copy?sslmode=require")


def test_superset_reads_a_member_on_the_second_server_through_its_replica(
    with_replica: WithReplica, tmp_path: Path
) -> None:
    settings = with_replica.settings
    kappa = _spec("kappa")
    target = provision.member_target(settings, kappa, "second")
    assert target.sqlalchemy_uri.startswith("postgresql+psycopg2://kappa_reader:")
    assert target.sqlalchemy_uri.endswith(
        f"@127.0.0.1:{REPLICA_PORT}/{with_replica.second.pg_database}")
    # A member on the primary, which declares no replica, is read on the primary.
    assert provision.member_target(settings, _spec("alpha", TENANTS)).sqlalchemy_uri.endswith(
        f"@{settings.pg_host}:{settings.pg_port}/{settings.pg_database}")
    # Everything else stays on the server: the API's reads, the pipeline, the jobs.
    assert f"port={SECOND_PORT}" in placement.role_conninfo(settings, "second", "kappa_reader")

    # Every dataset of its dashboards has its columns on the replica too.
    with psycopg.connect(with_replica.replica.admin_conninfo()) as copy:
        columns = provision._columns(copy, "tenant_kappa")
    templates = load()
    bundle = render(target, templates.for_scope("member"), templates, columns)
    assert bundle.files[bundle.database_file]["sqlalchemy_uri"] == target.sqlalchemy_uri
    assert len([o for o in bundle.objects if o.kind == "dataset"]) > 10

    # Another replica in the file: another connection, hence another digest, so the next
    # `superset apply` imports the connection again (overwriting it) instead of skipping.
    moved = tmp_path / "servers.yaml"
    write_servers_file(moved, with_replica.second,
                       replica={"host": "198.18.0.13", "port": 5432, "sslmode": "require"})
    elsewhere = provision.member_target(
        settings.model_copy(update={"database_servers_file": moved}), kappa, "second")
    assert elsewhere.sqlalchemy_uri.endswith(
        f"@198.18.0.13:5432/{with_replica.second.pg_database}?sslmode=require")
    again = render(elsewhere, templates.for_scope("member"), templates, columns)
    assert again.digest("pw") != bundle.digest("pw")
    # Without the replica, the connection names the server again.
    write_servers_file(moved, with_replica.second)
    assert provision.member_target(
        settings.model_copy(update={"database_servers_file": moved}), kappa, "second"
    ).sqlalchemy_uri.endswith(f"@127.0.0.1:{SECOND_PORT}/{with_replica.second.pg_database}")


def _write_uplink(settings: Settings, dedup: uuid.UUID) -> None:
    """One uplink of kappa's air sensor, written on the second server (the primary of its
    replica)."""
    now = dt.datetime.now(dt.UTC)
    with placement.connect_admin(settings, "second") as second:
        kappa_uplink(second, now, dedup)


def _delete_uplink(settings: Settings, dedup: uuid.UUID) -> None:
    with placement.connect_admin(settings, "second") as second:
        second.execute("DELETE FROM tenant_kappa.uplinks WHERE deduplication_id = %s",
                       (dedup,))


def test_a_row_written_on_the_server_is_read_on_the_replica_as_the_members_reader(
    with_replica: WithReplica,
) -> None:
    settings = with_replica.settings
    reader = provision.member_target(settings, _spec("kappa"), "second").login_role
    dedup = uuid.uuid4()
    count = "SELECT count(*) FROM tenant_kappa.uplinks WHERE deduplication_id = %s"
    with psycopg.connect(placement.replica_conninfo(settings, "second", reader),
                         autocommit=True) as copy:
        assert copy.execute("SELECT pg_is_in_recovery(), current_user").fetchone() == (
            True, reader)
        assert copy.execute(count, (dedup,)).fetchone() == (0,)
        _write_uplink(settings, dedup)
        try:
            wait_for(lambda: copy.execute(count, (dedup,)).fetchone() == (1,), timeout=30,
                     what="the uplink replayed on the replica")
            # The views the dashboards read answer there as the reader.
            assert copy.execute(
                "SELECT dev_eui FROM tenant_kappa.dash_devices ORDER BY 1").fetchall() == [
                ("9a9a9a9a9a9a0001",), ("9a9a9a9a9a9a0002",), ("9a9a9a9a9a9a0003",)]
            # The reader is the member's reader there too: no other member, no catalogue.
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                copy.execute("SELECT count(*) FROM hv.ingest_receipts")
        finally:
            _delete_uplink(settings, dedup)
        wait_for(lambda: copy.execute(count, (dedup,)).fetchone() == (0,), timeout=30,
                 what="the deletion replayed on the replica")


def test_the_replica_refuses_writes_even_from_its_superuser(
    with_replica: WithReplica,
) -> None:
    with psycopg.connect(with_replica.replica.admin_conninfo(), autocommit=True) as copy:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            copy.execute("DELETE FROM tenant_kappa.uplinks")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            copy.execute("CREATE TABLE tenant_kappa.scratch (x int)")


def _servers(settings: Settings, monkeypatch: pytest.MonkeyPatch,
             *args: str) -> tuple[int, str]:
    """`hypervision servers` run with these settings: its exit code and its output on one
    line (the console wraps long lines)."""
    from hypervision.cli import app
    from hypervision.commands import servers

    monkeypatch.setattr(servers, "settings_or_exit", lambda: settings)
    result = CliRunner().invoke(app, ["servers", *args])
    return result.exit_code, " ".join(result.output.split())


def _behind(settings: Settings) -> int | None:
    """The WAL bytes the second server's replica has yet to replay (replicas.check)."""
    second = replicas.check(settings)[1]
    assert second.server.name == "second" and second.replica is not None
    return second.replica.behind_bytes


def test_servers_reports_the_replica_and_its_lag_and_fails_when_it_is_stopped(
    with_replica: WithReplica, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = with_replica.settings
    replica = f"replica 127.0.0.1:{REPLICA_PORT}/{with_replica.second.pg_database}"
    wait_for(lambda: _behind(settings) == 0, timeout=30, what="the replica caught up")
    code, output = _servers(settings, monkeypatch)
    assert code == 0, output
    assert f"= main (primary, {settings.pg_host}:{settings.pg_port}/" in output
    assert f"= second (members, 127.0.0.1:{SECOND_PORT}/" in output
    # The second server streams to the replica through its socket (pg_basebackup -R).
    assert "1 replication connection(s): local streaming" in output
    assert re.search(re.escape(f"= {replica}: ") + r"(caught up \(0 bytes behind|"
                     r"[\d,]+ bytes of WAL behind)", output), output

    # Replay paused on the replica, a write on the server: the lag shows, and --max-lag
    # makes it an error.
    with psycopg.connect(with_replica.replica.admin_conninfo(), autocommit=True) as copy:
        copy.execute("SELECT pg_wal_replay_pause()")
        dedup = uuid.uuid4()
        try:
            _write_uplink(settings, dedup)
            assert _behind(settings)
            code, output = _servers(settings, monkeypatch, "--max-lag", "0")
            assert code == 1, output
            assert re.search(re.escape(f"! {replica}: ") + r"[\d,]+ bytes of WAL behind, lag",
                             output), output
            assert "error: second's replica is more than 0 s behind" in output
        finally:
            copy.execute("SELECT pg_wal_replay_resume()")
            _delete_uplink(settings, dedup)
    wait_for(lambda: _behind(settings) == 0, timeout=30, what="the replica caught up again")

    daemons.postgres.stop(with_replica.replica)
    code, output = _servers(settings, monkeypatch)
    assert code == 1, output
    assert re.search(re.escape(f"! {replica}: unreachable: ") + r".*Connection refused",
                     output), output
    assert f"error: second's {replica} unreachable" in output
    # The servers themselves are still reported.
    assert f"= second (members, 127.0.0.1:{SECOND_PORT}/" in output


def test_servers_fails_when_a_declared_replica_is_a_copy_of_another_server(
    with_replica: WithReplica, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The second server's replica declared as the primary's: it answers, in recovery, but
    it is a copy of another cluster, which dashboards must not read as the primary."""
    daemons.postgres.start(with_replica.replica)  # stopped by the test before
    path = _servers_file(tmp_path, [
        {"name": "main", "role": "primary",
         "replica": {"host": "127.0.0.1", "port": REPLICA_PORT}},
        {"name": "second", "role": "members", "host": "127.0.0.1", "port": SECOND_PORT,
         "database": with_replica.second.pg_database,
         "admin_url": with_replica.second.admin_conninfo()}])
    settings = with_replica.settings.model_copy(update={"database_servers_file": path})
    code, output = _servers(settings, monkeypatch)
    assert code == 1, output
    assert f"! replica 127.0.0.1:{REPLICA_PORT}/{settings.pg_database}: not a copy of its" \
        " server" in output, output
    assert "error: main's replica" in output and "is a copy of another cluster" in output

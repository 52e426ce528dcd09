"""The platform's own PostgreSQL + TimescaleDB cluster (development and tests).

    data_dir/postgres/       the cluster (PGDATA), with hypervision.conf and pg_hba.conf
    data_dir/run/            its Unix socket; private (0700), hence `trust` locally
    data_dir/log/postgres.log

A cluster may also be a streaming replica of another one of ours (`replicate`): a copy
taken with pg_basebackup, started as a hot standby that replays the other's WAL and
answers reads only (docs/scale.md, "Read replicas").

When run as root, PostgreSQL runs as the `postgres` OS user (it refuses root); the files
it must write are handed to that user first.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
from psycopg import sql

from hypervision.daemons.lifecycle import (
    START_TIMEOUT,
    STOP_TIMEOUT,
    DaemonError,
    Log,
    data_dir,
    failure,
    give_to,
    log_dir,
    prepare_data_dir,
    quiet,
    require_free_port,
    require_reachable,
    run,
    running_pid,
    touch,
    wait_for,
    wait_gone,
)
from hypervision.settings import Settings


def pg_data(settings: Settings) -> Path:
    return data_dir(settings) / "postgres"


def _socket_dir(settings: Settings) -> Path:
    return settings.pg_socket_dir.resolve()


def log_file(settings: Settings) -> Path:
    return log_dir(settings) / "postgres.log"


def pid(settings: Settings) -> int | None:
    """The postmaster's pid if our cluster is running (first line of postmaster.pid)."""
    return running_pid(pg_data(settings) / "postmaster.pid", "postgres")


def _bin(settings: Settings, program: str) -> str:
    return str(settings.pg_bin_dir / program)


def _quote(value: str) -> str:
    """A PostgreSQL configuration string literal."""
    return "'" + value.replace("'", "''") + "'"


def _shared_buffers(settings: Settings) -> str:
    """HV_PG_SHARED_BUFFERS, else a quarter of the machine's memory within [128MB, 8GB]:
    PostgreSQL's 128MB default makes ingestion cost grow as soon as the indexes of the
    current chunks outgrow it (bench/README.md)."""
    if settings.pg_shared_buffers:
        return settings.pg_shared_buffers
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return f"{min(max(memory_mb // 4, 128), 8192)}MB"


def conf(settings: Settings) -> str:
    """hypervision.conf, included at the end of postgresql.conf."""
    return f"""\
# Written by hypervision.daemons.postgres on every start: edit the settings, not this file.
port = {settings.pg_port}
listen_addresses = {_quote(settings.pg_host)}
unix_socket_directories = {_quote(str(_socket_dir(settings)))}
max_connections = 200
password_encryption = 'scram-sha-256'

shared_preload_libraries = 'timescaledb'
# No outbound call, ever: TimescaleDB's telemetry would phone home.
timescaledb.telemetry_level = off
# Only Apache-2 TimescaleDB features are used (see the brief's non-negotiables).
timescaledb.license = 'apache'

# Memory and WAL for a steady stream of batched writes (HV_PG_SHARED_BUFFERS,
# HV_PG_MAX_WAL_SIZE): checkpoints far apart, full-page images compressed.
shared_buffers = {_shared_buffers(settings)}
max_wal_size = {settings.pg_max_wal_size}
checkpoint_timeout = '15min'
checkpoint_completion_target = 0.9
wal_compression = lz4
default_toast_compression = lz4

# Streaming replication (docs/scale.md, "Read replicas"): enough WAL for a physical
# replica, a few senders. On a replica, hot_standby answers reads during recovery, and
# the feedback keeps the server's vacuum from removing rows a dashboard query still
# reads there (the query would otherwise be cancelled after max_standby_streaming_delay).
# Both are ignored by a server that is not in recovery.
wal_level = replica
max_wal_senders = 10
hot_standby = on
hot_standby_feedback = on

# pg_ctl sends the server's stderr to data_dir/log/postgres.log (its -l option).
logging_collector = off
log_destination = 'stderr'
log_line_prefix = '%m [%p] %q%u@%d '
"""


def _hba() -> str:
    return """\
# Written by hypervision.daemons.postgres on every start.
# The socket directory is private (0700), so whoever reaches the socket is trusted: that is
# how the superuser connects, and how a local replica streams (`replication` is not
# matched by `all`). Over TCP every role needs its password, from any address, a
# replication role too: listen_addresses (HV_PG_HOST) decides who can reach the server at
# all. A cluster that listens on a network address serves the workers of other hosts,
# whose connections come from their own addresses, not from loopback (as
# infra/docker/timescaledb does).
# TYPE  DATABASE     USER  ADDRESS  METHOD
local   all          all            trust
local   replication  all            trust
host    all          all   all      scram-sha-256
host    replication  all   all      scram-sha-256
"""


def _init(settings: Settings, log: Log) -> None:
    """Create the cluster with initdb if data_dir/postgres holds none yet."""
    pgdata = pg_data(settings)
    if (pgdata / "PG_VERSION").exists():
        return
    log(f"+ initialising a PostgreSQL cluster in {pgdata}")
    pgdata.mkdir(mode=0o700, exist_ok=True)
    give_to("postgres", pgdata)
    # initdb refuses scram for hosts without a superuser password, so the cluster starts
    # with trust and pg_hba.conf is replaced before the first start. The superuser keeps
    # no password: it only ever logs in through the private socket.
    result = run(
        [
            _bin(settings, "initdb"), "--pgdata", str(pgdata),
            f"--username={settings.pg_superuser}", "--auth=trust",
            "--encoding=UTF8", "--locale=C.UTF-8",
        ],
        as_user="postgres", cwd=pgdata,
    )
    if result.returncode != 0:
        raise DaemonError(
            f"initdb failed for {pgdata}:\n{(result.stdout + result.stderr).strip()}"
        )


def _configure(settings: Settings) -> None:
    """Write hypervision.conf and pg_hba.conf, and include the former from postgresql.conf."""
    pgdata = pg_data(settings)
    own_conf = pgdata / "hypervision.conf"
    own_conf.write_text(conf(settings), encoding="utf-8")
    hba = pgdata / "pg_hba.conf"
    hba.write_text(_hba(), encoding="utf-8")
    main_conf = pgdata / "postgresql.conf"
    include = "include = 'hypervision.conf'"
    if include not in main_conf.read_text(encoding="utf-8"):
        with main_conf.open("a", encoding="utf-8") as handle:
            handle.write(f"\n# Hypervision's own settings (hypervision.daemons).\n{include}\n")
    give_to("postgres", own_conf, hba)


def _prepare(settings: Settings, log: Log) -> None:
    prepare_data_dir(settings)
    require_reachable(data_dir(settings), "postgres")
    socket_dir = _socket_dir(settings)
    socket_dir.mkdir(parents=True, exist_ok=True)
    socket_dir.chmod(0o700)
    log_path = touch(log_file(settings))
    give_to("postgres", socket_dir, log_path)
    _init(settings, log)
    _configure(settings)


def _connect(settings: Settings, dbname: str) -> psycopg.Connection:
    """A superuser connection to our cluster through its private socket."""
    return psycopg.connect(
        host=str(_socket_dir(settings)), port=settings.pg_port, dbname=dbname,
        user=settings.pg_superuser, autocommit=True, connect_timeout=2,
    )


def answers(settings: Settings) -> bool:
    try:
        with _connect(settings, "postgres") as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def _ensure_database(settings: Settings, log: Log) -> None:
    """Create the platform's database if it is missing (the extension is the migrations' job)."""
    name = settings.pg_database
    try:
        with _connect(settings, "postgres") as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if found.fetchone() is None:
                log(f"+ creating database {name}")
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise failure(f"could not create database {name}: {exc}", log_file(settings)) from exc


def start(settings: Settings, *, log: Log = quiet) -> None:
    """Start our PostgreSQL cluster (initdb on first use) and create the platform database."""
    address = f"{settings.pg_host}:{settings.pg_port}"
    if pid(settings) is not None:
        log(f"= PostgreSQL already running on {address}")
        _ensure_database(settings, log)
        return
    require_free_port("PostgreSQL", settings.pg_host, settings.pg_port, "HV_PG_PORT")
    _prepare(settings, log)
    log(f"+ starting PostgreSQL on {address} (data in {pg_data(settings)})")
    log_path = log_file(settings)
    result = run(
        [
            _bin(settings, "pg_ctl"), "start", "--pgdata", str(pg_data(settings)),
            "--log", str(log_path), "--wait", "--timeout", str(int(START_TIMEOUT)), "--silent",
        ],
        as_user="postgres", cwd=pg_data(settings),
    )
    if result.returncode != 0:
        raise failure("PostgreSQL did not start", log_path, result.stdout + result.stderr)
    if not wait_for(lambda: answers(settings), START_TIMEOUT):
        raise failure(f"PostgreSQL does not accept connections on {address}", log_path)
    _ensure_database(settings, log)


def replicate(settings: Settings, source: Settings, *, log: Log = quiet) -> None:
    """Make our cluster (settings.data_dir) a streaming replica of `source`'s, then start
    it: a base backup through `source`'s private socket as the superuser, `-R` writing
    standby.signal and the connection it streams from (postgresql.auto.conf). Once the
    copy is taken, `start` and `stop` run it like any of our clusters; hypervision.conf is
    rewritten with its own port and socket at each start. Refused if a cluster is already
    there."""
    pgdata = pg_data(settings)
    if pgdata.exists() and any(pgdata.iterdir()):
        raise DaemonError(f"{pgdata} is not empty: remove it to take a new copy")
    if pid(source) is None:
        raise DaemonError(f"the cluster to copy ({pg_data(source)}) is not running")
    require_free_port("PostgreSQL", settings.pg_host, settings.pg_port, "HV_PG_PORT")
    prepare_data_dir(settings)
    require_reachable(data_dir(settings), "postgres")
    # pg_basebackup fills an empty directory; the postgres user could not create it here.
    pgdata.mkdir(mode=0o700, exist_ok=True)
    give_to("postgres", pgdata)
    log(f"+ copying {pg_data(source)} into {pgdata} (pg_basebackup)")
    result = run(
        [
            _bin(settings, "pg_basebackup"), "--pgdata", str(pgdata),
            "--host", str(_socket_dir(source)), "--port", str(source.pg_port),
            "--username", source.pg_superuser, "--wal-method=stream",
            "--checkpoint=fast", "--write-recovery-conf", "--no-password",
        ],
        as_user="postgres", cwd=data_dir(settings), timeout=600,
    )
    if result.returncode != 0:
        raise DaemonError(f"pg_basebackup from {pg_data(source)} failed:\n"
                          f"{(result.stdout + result.stderr).strip()}")
    start(settings, log=log)


def stop(settings: Settings, *, log: Log = quiet) -> None:
    """Stop our cluster with a fast shutdown: sessions are cut, transactions roll back."""
    running = pid(settings)
    if running is None:
        log("= PostgreSQL is not running")
        return
    log(f"- stopping PostgreSQL (pid {running})")
    log_path = log_file(settings)
    result = run(
        [
            _bin(settings, "pg_ctl"), "stop", "--pgdata", str(pg_data(settings)),
            "--mode", "fast", "--wait", "--timeout", str(int(STOP_TIMEOUT)), "--silent",
        ],
        as_user="postgres", cwd=pg_data(settings), timeout=STOP_TIMEOUT + 30,
    )
    if result.returncode != 0 and pid(settings) is not None:
        raise failure("PostgreSQL did not stop", log_path, result.stdout + result.stderr)
    wait_gone(running, "postgres", "PostgreSQL", log_path)


def restart(settings: Settings, *, log: Log = quiet) -> None:
    """Fast shutdown, then start: clients see their connections drop and must reconnect."""
    stop(settings, log=log)
    start(settings, log=log)

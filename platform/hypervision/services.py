"""The platform's own local services: PostgreSQL + TimescaleDB, Redis and Mosquitto.

These are the development and test instances (see platform/README.md, "Local services").
Each runs on its own port with its data under `settings.data_dir`, so the system instances
on the default ports (5432, 6379, 1883) are never touched:

    data_dir/postgres/    the PostgreSQL cluster (PGDATA)
    data_dir/run/         PostgreSQL's Unix socket; private (0700), hence `trust` locally
    data_dir/redis/       redis.conf, redis.pid and the append-only file
    data_dir/mosquitto/   mosquitto.conf, mosquitto.pid and the persistence database
    data_dir/log/         postgres.log, redis.log, mosquitto.log

Every start is idempotent and waits until the service answers; every stop is graceful,
idempotent and waits until the process is gone. Failures raise `ServiceError`, which names
the log file to read. Configuration files are rewritten on every start, so a changed
setting (a port, say) applies at the next start.

When run as root, PostgreSQL runs as the `postgres` OS user (it refuses root) and
Mosquitto drops to the `mosquitto` user by itself; the files each must write are handed
to that user first. Linux only: process checks read /proc.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import redis
from psycopg import sql

from hypervision.settings import Settings

Log = Callable[[str], None]

# How long a service may take to answer after start, or to exit after a stop request.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 60.0
POLL_INTERVAL = 0.1

# Mosquitto limits; see _mosquitto_conf for how mosquitto 2.0 counts them.
MQTT_MAX_INFLIGHT = 20_000
MQTT_MAX_QUEUED = 1_100_000


class ServiceError(RuntimeError):
    """A local service could not be started, stopped or reached."""


def _quiet(message: str) -> None:
    """The default `log`: say nothing."""


# Public API -----------------------------------------------------------------------------


def start_all(settings: Settings, *, log: Log = _quiet) -> None:
    """Start PostgreSQL, Redis and Mosquitto, in the order the data path needs them."""
    start_postgres(settings, log=log)
    start_redis(settings, log=log)
    start_mosquitto(settings, log=log)


def stop_all(settings: Settings, *, log: Log = _quiet) -> None:
    """Stop every service, the broker first so that nothing new comes in.

    Every stop is attempted even if an earlier one fails; the failures are then raised
    together.
    """
    errors: list[str] = []
    for stop in (stop_mosquitto, stop_redis, stop_postgres):
        try:
            stop(settings, log=log)
        except ServiceError as exc:
            errors.append(str(exc))
    if errors:
        raise ServiceError("; ".join(errors))


def status(settings: Settings) -> dict[str, bool]:
    """Whether each of our instances is running and answers (not just whether a port is open)."""
    return {
        "postgres": _postgres_pid(settings) is not None and _postgres_answers(settings),
        "redis": _redis_pid(settings) is not None and _redis_answers(settings),
        "mosquitto": _mosquitto_pid(settings) is not None and _mosquitto_answers(settings),
    }


# Paths ----------------------------------------------------------------------------------


def _data_dir(settings: Settings) -> Path:
    return settings.data_dir.resolve()


def _log_dir(settings: Settings) -> Path:
    return _data_dir(settings) / "log"


def _pg_data(settings: Settings) -> Path:
    return _data_dir(settings) / "postgres"


def _pg_socket_dir(settings: Settings) -> Path:
    return settings.pg_socket_dir.resolve()


def _pg_log(settings: Settings) -> Path:
    return _log_dir(settings) / "postgres.log"


def _redis_dir(settings: Settings) -> Path:
    return _data_dir(settings) / "redis"


def _redis_log(settings: Settings) -> Path:
    return _log_dir(settings) / "redis.log"


def _mosquitto_dir(settings: Settings) -> Path:
    return _data_dir(settings) / "mosquitto"


def _mosquitto_log(settings: Settings) -> Path:
    return _log_dir(settings) / "mosquitto.log"


def _prepare_data_dir(settings: Settings) -> None:
    """Create data_dir and data_dir/log, world-traversable (0755).

    The service users (postgres, mosquitto) must be able to walk through them to reach
    their own private directories when we run as root.
    """
    for path in (_data_dir(settings), _log_dir(settings)):
        path.mkdir(parents=True, exist_ok=True)
        if _is_root():
            path.chmod(0o755)


# Users and processes --------------------------------------------------------------------


def _is_root() -> bool:
    return os.geteuid() == 0


def _give_to(user: str, *paths: Path) -> None:
    """When root, hand `paths` to the OS user `user` (and its primary group)."""
    if not _is_root():
        return
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ServiceError(f"the OS user {user!r} does not exist; is its package installed?") \
            from None
    for path in paths:
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _require_reachable(path: Path, user: str) -> None:
    """When root, fail clearly if `user` cannot walk down to `path`.

    Otherwise initdb or mosquitto would stop with a bare "permission denied". A common
    cause: a data_dir under a 0700 directory, such as /root or pytest's tmp_path root.
    """
    if not _is_root():
        return
    entry = pwd.getpwnam(user)
    for directory in (path, *path.parents):
        mode = directory.stat()
        if mode.st_uid == entry.pw_uid:
            allowed = mode.st_mode & 0o100
        elif mode.st_gid == entry.pw_gid:
            allowed = mode.st_mode & 0o010
        else:
            allowed = mode.st_mode & 0o001
        if not allowed:
            raise ServiceError(
                f"the {user!r} OS user cannot reach {path}: {directory} is not traversable "
                f"(chmod o+x {directory}, or choose another HV_DATA_DIR)"
            )


def _touch(path: Path, mode: int = 0o640) -> Path:
    """Create `path` if missing (log files are created by us, then handed over)."""
    if not path.exists():
        path.touch(mode=mode)
    return path


def _run(argv: list[str], *, as_user: str | None = None, cwd: Path,
         timeout: float = START_TIMEOUT + 30) -> subprocess.CompletedProcess[str]:
    """Run a command, as `as_user` through runuser when we are root, and capture its output.

    `cwd` matters: a service user often cannot read the caller's working directory (root's
    home, say), and initdb and pg_ctl complain about it.
    """
    if as_user is not None and _is_root():
        argv = ["runuser", "-u", as_user, "--", *argv]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False)


def _process_running(pid: int, name: str) -> bool:
    """True if `pid` is a live process whose command name is `name`.

    The name check guards against a stale pid file whose pid was reused by another program.
    A zombie counts as gone: a daemon is reparented to PID 1, which may never reap it.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    command = stat[stat.index("(") + 1 : stat.rindex(")")]
    state = stat[stat.rindex(")") + 2 :][:1]
    return command == name and state not in ("Z", "X")


def _read_pid(pidfile: Path) -> int | None:
    """The pid in the first line of `pidfile`, or None if it is missing or unreadable."""
    try:
        first = pidfile.read_text(encoding="utf-8").splitlines()[0]
        return int(first.strip())
    except (OSError, IndexError, ValueError):
        return None


def _running_pid(pidfile: Path, name: str) -> int | None:
    pid = _read_pid(pidfile)
    if pid is not None and _process_running(pid, name):
        return pid
    return None


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)


def _wait_gone(pid: int, name: str, what: str, log_file: Path) -> None:
    if not _wait_for(lambda: not _process_running(pid, name), STOP_TIMEOUT):
        raise _failure(f"{what} (pid {pid}) did not exit within {STOP_TIMEOUT:.0f} s", log_file)


def _port_is_free(host: str, port: int) -> bool:
    """True if nothing listens on host:port.

    We bind rather than connect: a bind also fails when another program listens on the
    wildcard address, and SO_REUSEADDR (which the services use too) ignores connections
    lingering in TIME_WAIT after our own restart.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _require_free_port(what: str, host: str, port: int, setting: str) -> None:
    """Refuse to start when another program holds our port, instead of hanging or, worse,
    mistaking that program for our service."""
    if not _port_is_free(host, port):
        raise ServiceError(
            f"{what}: {host}:{port} is already in use by another process; "
            f"stop it or choose another port ({setting})"
        )


def _tail(path: Path, lines: int = 10) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _failure(message: str, log_file: Path, output: str = "") -> ServiceError:
    """A ServiceError naming the log file, with its last lines and any command output."""
    details = "\n".join(part for part in (output.strip(), _tail(log_file)) if part)
    text = f"{message}; see {log_file}"
    return ServiceError(f"{text}\n{details}" if details else text)


# PostgreSQL + TimescaleDB ---------------------------------------------------------------


def _postgres_pid(settings: Settings) -> int | None:
    """The postmaster's pid if our cluster is running (first line of postmaster.pid)."""
    return _running_pid(_pg_data(settings) / "postmaster.pid", "postgres")


def _pg_bin(settings: Settings, program: str) -> str:
    return str(settings.pg_bin_dir / program)


def _pg_quote(value: str) -> str:
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


def _postgres_conf(settings: Settings) -> str:
    """hypervision.conf, included at the end of postgresql.conf."""
    return f"""\
# Written by hypervision.services on every start: edit the settings, not this file.
port = {settings.pg_port}
listen_addresses = {_pg_quote(settings.pg_host)}
unix_socket_directories = {_pg_quote(str(_pg_socket_dir(settings)))}
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

# pg_ctl sends the server's stderr to data_dir/log/postgres.log (its -l option).
logging_collector = off
log_destination = 'stderr'
log_line_prefix = '%m [%p] %q%u@%d '
"""


def _pg_hba() -> str:
    return """\
# Written by hypervision.services on every start.
# The socket directory is private (0700), so whoever reaches the socket is trusted: that is
# how the superuser connects. Over TCP every role needs its password.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
"""


def _init_postgres(settings: Settings, log: Log) -> None:
    """Create the cluster with initdb if data_dir/postgres holds none yet."""
    pgdata = _pg_data(settings)
    if (pgdata / "PG_VERSION").exists():
        return
    log(f"+ initialising a PostgreSQL cluster in {pgdata}")
    pgdata.mkdir(mode=0o700, exist_ok=True)
    _give_to("postgres", pgdata)
    # initdb refuses scram for hosts without a superuser password, so the cluster starts
    # with trust and pg_hba.conf is replaced before the first start. The superuser keeps
    # no password: it only ever logs in through the private socket.
    result = _run(
        [
            _pg_bin(settings, "initdb"), "--pgdata", str(pgdata),
            f"--username={settings.pg_superuser}", "--auth=trust",
            "--encoding=UTF8", "--locale=C.UTF-8",
        ],
        as_user="postgres", cwd=pgdata,
    )
    if result.returncode != 0:
        raise ServiceError(
            f"initdb failed for {pgdata}:\n{(result.stdout + result.stderr).strip()}"
        )


def _configure_postgres(settings: Settings) -> None:
    """Write hypervision.conf and pg_hba.conf, and include the former from postgresql.conf."""
    pgdata = _pg_data(settings)
    conf = pgdata / "hypervision.conf"
    conf.write_text(_postgres_conf(settings), encoding="utf-8")
    hba = pgdata / "pg_hba.conf"
    hba.write_text(_pg_hba(), encoding="utf-8")
    main_conf = pgdata / "postgresql.conf"
    include = "include = 'hypervision.conf'"
    if include not in main_conf.read_text(encoding="utf-8"):
        with main_conf.open("a", encoding="utf-8") as handle:
            handle.write(f"\n# Hypervision's own settings (hypervision.services).\n{include}\n")
    _give_to("postgres", conf, hba)


def _prepare_postgres(settings: Settings, log: Log) -> None:
    _prepare_data_dir(settings)
    _require_reachable(_data_dir(settings), "postgres")
    socket_dir = _pg_socket_dir(settings)
    socket_dir.mkdir(parents=True, exist_ok=True)
    socket_dir.chmod(0o700)
    log_file = _touch(_pg_log(settings))
    _give_to("postgres", socket_dir, log_file)
    _init_postgres(settings, log)
    _configure_postgres(settings)


def _postgres_connect(settings: Settings, dbname: str) -> psycopg.Connection:
    """A superuser connection to our cluster through its private socket."""
    return psycopg.connect(
        host=str(_pg_socket_dir(settings)), port=settings.pg_port, dbname=dbname,
        user=settings.pg_superuser, autocommit=True, connect_timeout=2,
    )


def _postgres_answers(settings: Settings) -> bool:
    try:
        with _postgres_connect(settings, "postgres") as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def _ensure_database(settings: Settings, log: Log) -> None:
    """Create the platform's database if it is missing (the extension is the migrations' job)."""
    name = settings.pg_database
    try:
        with _postgres_connect(settings, "postgres") as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if found.fetchone() is None:
                log(f"+ creating database {name}")
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise _failure(f"could not create database {name}: {exc}", _pg_log(settings)) from exc


def start_postgres(settings: Settings, *, log: Log = _quiet) -> None:
    """Start our PostgreSQL cluster (initdb on first use) and create the platform database."""
    address = f"{settings.pg_host}:{settings.pg_port}"
    if _postgres_pid(settings) is not None:
        log(f"= PostgreSQL already running on {address}")
        _ensure_database(settings, log)
        return
    _require_free_port("PostgreSQL", settings.pg_host, settings.pg_port, "HV_PG_PORT")
    _prepare_postgres(settings, log)
    log(f"+ starting PostgreSQL on {address} (data in {_pg_data(settings)})")
    log_file = _pg_log(settings)
    result = _run(
        [
            _pg_bin(settings, "pg_ctl"), "start", "--pgdata", str(_pg_data(settings)),
            "--log", str(log_file), "--wait", "--timeout", str(int(START_TIMEOUT)), "--silent",
        ],
        as_user="postgres", cwd=_pg_data(settings),
    )
    if result.returncode != 0:
        raise _failure("PostgreSQL did not start", log_file, result.stdout + result.stderr)
    if not _wait_for(lambda: _postgres_answers(settings), START_TIMEOUT):
        raise _failure(f"PostgreSQL does not accept connections on {address}", log_file)
    _ensure_database(settings, log)


def stop_postgres(settings: Settings, *, log: Log = _quiet) -> None:
    """Stop our cluster with a fast shutdown: sessions are cut, transactions roll back."""
    pid = _postgres_pid(settings)
    if pid is None:
        log("= PostgreSQL is not running")
        return
    log(f"- stopping PostgreSQL (pid {pid})")
    log_file = _pg_log(settings)
    result = _run(
        [
            _pg_bin(settings, "pg_ctl"), "stop", "--pgdata", str(_pg_data(settings)),
            "--mode", "fast", "--wait", "--timeout", str(int(STOP_TIMEOUT)), "--silent",
        ],
        as_user="postgres", cwd=_pg_data(settings), timeout=STOP_TIMEOUT + 30,
    )
    if result.returncode != 0 and _postgres_pid(settings) is not None:
        raise _failure("PostgreSQL did not stop", log_file, result.stdout + result.stderr)
    _wait_gone(pid, "postgres", "PostgreSQL", log_file)


def restart_postgres(settings: Settings, *, log: Log = _quiet) -> None:
    """Fast shutdown, then start: clients see their connections drop and must reconnect."""
    stop_postgres(settings, log=log)
    start_postgres(settings, log=log)


# Daemons started from a config file (Redis, Mosquitto) ----------------------------------


def _launch_daemon(argv: list[str], cwd: Path, log_file: Path) -> int:
    """Run a self-daemonising server and return the launcher's exit code.

    The launcher's output goes to the service's log file, not to a pipe: a daemon that
    kept an inherited pipe open would make us wait for it forever, and errors printed
    before the daemon opens its own log (a bad config line) end up in the same file.
    """
    with log_file.open("ab") as output:
        return subprocess.run(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
            start_new_session=True, timeout=START_TIMEOUT, check=False,
        ).returncode


def _wait_until_answers(what: str, answers: Callable[[], bool], pidfile: Path, name: str,
                        log_file: Path) -> None:
    """Wait until the daemon answers; fail early if it wrote its pid file and then died."""

    def done() -> bool:
        if answers():
            return True
        pid = _read_pid(pidfile)
        if pid is not None and not _process_running(pid, name):
            raise _failure(f"{what} exited during start-up", log_file)
        return False

    if not _wait_for(done, START_TIMEOUT):
        raise _failure(f"{what} did not answer within {START_TIMEOUT:.0f} s", log_file)


def _stop_daemon(what: str, pidfile: Path, name: str, log_file: Path, log: Log) -> None:
    """SIGTERM is each daemon's graceful shutdown: Redis flushes its append-only file,
    Mosquitto saves its persistence database."""
    pid = _running_pid(pidfile, name)
    if pid is None:
        log(f"= {what} is not running")
        return
    log(f"- stopping {what} (pid {pid})")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    _wait_gone(pid, name, what, log_file)


# Redis ----------------------------------------------------------------------------------


def _redis_pidfile(settings: Settings) -> Path:
    return _redis_dir(settings) / "redis.pid"


def _redis_pid(settings: Settings) -> int | None:
    return _running_pid(_redis_pidfile(settings), "redis-server")


def _redis_conf(settings: Settings) -> str:
    return f"""\
# Written by hypervision.services on every start: edit the settings, not this file.
bind {settings.redis_host}
port {settings.redis_port}
protected-mode yes
daemonize yes
pidfile {_redis_pidfile(settings)}
dir {_redis_dir(settings)}
logfile {_redis_log(settings)}
# The Celery queue must survive a restart: log every write, fsync once a second.
appendonly yes
appendfsync everysec
"""


def _redis_answers(settings: Settings) -> bool:
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port,
                         socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:  # refused, or still loading the append-only file
        return False
    finally:
        client.close()


def start_redis(settings: Settings, *, log: Log = _quiet) -> None:
    """Start our Redis (the Celery broker) with an append-only file."""
    address = f"{settings.redis_host}:{settings.redis_port}"
    if _redis_pid(settings) is not None:
        log(f"= Redis already running on {address}")
        return
    _require_free_port("Redis", settings.redis_host, settings.redis_port, "HV_REDIS_PORT")
    _prepare_data_dir(settings)
    directory = _redis_dir(settings)
    directory.mkdir(mode=0o700, exist_ok=True)
    conf = directory / "redis.conf"
    conf.write_text(_redis_conf(settings), encoding="utf-8")
    log_file = _touch(_redis_log(settings))
    log(f"+ starting Redis on {address} (data in {directory})")
    if _launch_daemon(["redis-server", str(conf)], directory, log_file) != 0:
        raise _failure("redis-server did not start", log_file)
    _wait_until_answers("Redis", lambda: _redis_answers(settings), _redis_pidfile(settings),
                        "redis-server", log_file)


def stop_redis(settings: Settings, *, log: Log = _quiet) -> None:
    """Stop our Redis; it writes the append-only file out before exiting."""
    _stop_daemon("Redis", _redis_pidfile(settings), "redis-server", _redis_log(settings), log)


# Mosquitto ------------------------------------------------------------------------------


def _mosquitto_pidfile(settings: Settings) -> Path:
    return _mosquitto_dir(settings) / "mosquitto.pid"


def _mosquitto_pid(settings: Settings) -> int | None:
    return _running_pid(_mosquitto_pidfile(settings), "mosquitto")


def _mosquitto_conf(settings: Settings) -> str:
    """The development broker's configuration (production's has credentials and ACLs).

    How mosquitto 2.0.11 counts its limits (read in src/database.c, not only the man page):
    - max_inflight_messages bounds the unacknowledged QoS 1/2 messages sent to one MQTT
      3.1.1 client; an MQTT 5 client's own Receive Maximum replaces it. 0 would mean
      "unlimited", but then nothing is ever queued for a connected client (a slow one
      takes everything into its socket) and more than 65535 messages in flight would reuse
      packet ids; 65535 itself silently means 0. 20000 holds two of the receiver's
      largest batches (HV_BATCH_SIZE <= 10000) unacknowledged.
    - max_queued_messages counts, per client, the QoS 1/2 messages held beyond those in
      flight; for an offline client, every held message, including those that were in
      flight when it dropped. 1,100,000 leaves room for a full in-flight window on top of
      the 1,000,000 messages a disconnected persistent session must be able to queue.
      Messages beyond it are dropped (and logged), so this is a cap on broker memory.
    - max_queued_bytes 0 means no byte limit: the message count is the only cap.
    """
    return f"""\
# Written by hypervision.services on every start: edit the settings, not this file.
# Local development broker: anonymous clients, loopback only.
listener {settings.mqtt_port} {settings.mqtt_host}
allow_anonymous true

# Queued messages and persistent sessions survive a broker restart; the database is
# saved every 10 s and at shutdown. Persistent sessions never expire.
persistence true
persistence_location {_mosquitto_dir(settings)}/
autosave_interval 10

max_inflight_messages {MQTT_MAX_INFLIGHT}
max_queued_messages {MQTT_MAX_QUEUED}
max_queued_bytes 0

pid_file {_mosquitto_pidfile(settings)}
log_dest file {_mosquitto_log(settings)}
log_type error
log_type warning
log_type notice
log_type information
# No `daemon true` here: mosquitto 2.0.11 has no such config option (it rejects the file);
# daemon mode is its -d command-line flag, which start_mosquitto passes.

# Started as root, mosquitto drops to this user right after reading this file, before it
# writes its pid file, log or database; those paths are handed to it beforehand. We keep
# the drop rather than `user root`: a network-facing broker should not run as root.
# Started as another user, this line has no effect.
user mosquitto
"""


def _mosquitto_answers(settings: Settings) -> bool:
    """True if the broker answers an MQTT CONNECT with a CONNACK (any reason code).

    The probe uses a unique client id and a clean session, so it never takes over a real
    client's session; a refusal (bad credentials) still proves the broker is up.
    """
    connacks: list[object] = []
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"hypervision-probe-{uuid.uuid4().hex[:12]}",
        clean_session=True,
        reconnect_on_failure=False,
    )
    if settings.mqtt_username:
        password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        client.username_pw_set(settings.mqtt_username, password)
    client.on_connect = lambda _client, _userdata, _flags, reason, _props: connacks.append(reason)
    try:
        client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=10)
        deadline = time.monotonic() + 2
        while not connacks and time.monotonic() < deadline:
            if client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
                break
    except OSError:
        return False
    finally:
        if connacks:
            client.disconnect()  # sends DISCONNECT, so the broker logs a clean close
        leftover = client.socket()
        if leftover is not None:
            leftover.close()
    return bool(connacks)


def start_mosquitto(settings: Settings, *, log: Log = _quiet) -> None:
    """Start our Mosquitto broker with persistence."""
    address = f"{settings.mqtt_host}:{settings.mqtt_port}"
    if _mosquitto_pid(settings) is not None:
        log(f"= Mosquitto already running on {address}")
        return
    _require_free_port("Mosquitto", settings.mqtt_host, settings.mqtt_port, "HV_MQTT_PORT")
    _prepare_data_dir(settings)
    _require_reachable(_data_dir(settings), "mosquitto")
    directory = _mosquitto_dir(settings)
    directory.mkdir(mode=0o700, exist_ok=True)
    conf = directory / "mosquitto.conf"
    conf.write_text(_mosquitto_conf(settings), encoding="utf-8")
    log_file = _touch(_mosquitto_log(settings))
    database = directory / "mosquitto.db"
    _give_to("mosquitto", directory, log_file, *([database] if database.exists() else []))
    log(f"+ starting Mosquitto on {address} (data in {directory})")
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if _launch_daemon([mosquitto, "-c", str(conf), "-d"], directory, log_file) != 0:
        raise _failure("mosquitto did not start", log_file)
    _wait_until_answers("Mosquitto", lambda: _mosquitto_answers(settings),
                        _mosquitto_pidfile(settings), "mosquitto", log_file)


def stop_mosquitto(settings: Settings, *, log: Log = _quiet) -> None:
    """Stop our broker; it saves its persistence database before exiting."""
    _stop_daemon("Mosquitto", _mosquitto_pidfile(settings), "mosquitto",
                 _mosquitto_log(settings), log)

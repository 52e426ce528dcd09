"""Superset's web server as one of the platform's local daemons: start, stop, status.

Superset lives in its own virtualenv (.venv-superset, infra/superset/install.sh) and is
configured by infra/superset/superset_config.py from environment variables set here; the
platform talks to it over HTTP only. A start:

1. creates Superset's metadata database and its login role in the platform's PostgreSQL
   (the role has its own random password, hypervision.role_secrets);
2. prepares that database (infra/superset/bootstrap.py: schema migrations, built-in roles,
   the admin account) when Superset's version, the admin password or the database changed
   since the last start: a stamp under data_dir/superset says what was done;
3. starts gunicorn as a daemon on superset_host:superset_port, then waits until
   /health answers.

Pid files, waits, stops and failures are hypervision.daemons.lifecycle's, as for the other
local daemons.

Files: data_dir/superset/ (pid file, stamp, Superset's own home), data_dir/log/superset.log
(gunicorn and Superset) and superset-access.log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
from pathlib import Path

import httpx
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from hypervision import role_secrets, roles
from hypervision.daemons import lifecycle
from hypervision.daemons.lifecycle import DaemonError, Log, quiet
from hypervision.db import connect_admin
from hypervision.settings import REPO_ROOT, Settings

INFRA = REPO_ROOT / "infra" / "superset"
CONFIG_FILE = INFRA / "superset_config.py"
BOOTSTRAP = INFRA / "bootstrap.py"
LOCK_FILE = INFRA / "requirements.lock"

# Superset's app takes seconds to load in each worker; the first start also compiles.
START_TIMEOUT = 180.0
BOOTSTRAP_TIMEOUT = 600.0
# Polling /health is an HTTP request; twice a second is often enough.
ANSWER_INTERVAL = 0.5
# Superset's failures end in a Python traceback: quote more of its log than the others'.
TAIL_LINES = 15


# Secrets and addresses ------------------------------------------------------------------


def derive(settings: Settings, label: str) -> str:
    """A secret derived from HV_SECRET_KEY for one Superset purpose (never stored)."""
    return hmac.new(settings.key(), f"superset:{label}".encode(), hashlib.sha256).hexdigest()


def secret_key(settings: Settings) -> str:
    if settings.superset_secret_key is not None:
        return settings.superset_secret_key.get_secret_value()
    return derive(settings, "secret-key")


def admin_password(settings: Settings) -> str:
    if settings.superset_admin_password is not None:
        return settings.superset_admin_password.get_secret_value()
    return derive(settings, "admin-password")


def url(settings: Settings) -> str:
    """Where the platform reaches Superset (loopback)."""
    return f"http://{settings.superset_host}:{settings.superset_port}"


def public_url(settings: Settings) -> str:
    """Where people open Superset."""
    return (settings.superset_public_url or url(settings)).rstrip("/")


def metadata_uri(settings: Settings) -> str:
    """SQLAlchemy URI of Superset's metadata database (carries a password: never log it)."""
    role = settings.superset_db_role
    password = settings.role_password(role)  # hex digits: nothing to escape
    return (f"postgresql+psycopg2://{role}:{password}@{settings.pg_host}:{settings.pg_port}"
            f"/{settings.superset_database}")


def _home(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "superset"


def _pidfile(settings: Settings) -> Path:
    return _home(settings) / "gunicorn.pid"


def _stampfile(settings: Settings) -> Path:
    return _home(settings) / "bootstrap.json"


def log_file(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "log" / "superset.log"


def _venv_bin(settings: Settings, program: str) -> Path:
    return settings.superset_venv / "bin" / program


def environment(settings: Settings) -> dict[str, str]:
    """The Superset process's environment: the caller's, without the platform's own
    variables (Superset needs none of them, least of all HV_SECRET_KEY), plus its config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HV_")}
    env.update({
        "SUPERSET_CONFIG_PATH": str(CONFIG_FILE),
        "SUPERSET_HOME": str(_home(settings)),
        "HV_SUPERSET_SECRET_KEY": secret_key(settings),
        "HV_SUPERSET_DATABASE_URI": metadata_uri(settings),
        # Reached over https: Secure session cookie, the proxy's headers trusted.
        "HV_SUPERSET_BEHIND_TLS": "1" if public_url(settings).startswith("https://") else "0",
        "PYTHONUNBUFFERED": "1",
    })
    # People sign in through the platform (hypervision.superset.signin).
    from hypervision.superset import signin

    env.update({
        "HV_SUPERSET_PLATFORM_URL": signin.platform_url(settings),
        "HV_SUPERSET_PLATFORM_PUBLIC_URL": signin.platform_public_url(settings),
        "HV_SUPERSET_OAUTH_SECRET": signin.client_secret(settings),
    })
    return env


# Metadata database ----------------------------------------------------------------------


def ensure_metadata_database(settings: Settings, log: Log = quiet) -> None:
    """Create (or update the password of) Superset's role, and its database owned by it."""
    role = settings.superset_db_role
    name = settings.superset_database
    with connect_admin(settings) as conn:
        if not roles.role_exists(conn, role):
            log(f"+ creating role {role}")
        roles.ensure_superset_role(conn, settings)
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if found is None:
            log(f"+ creating database {name}")
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(role)))
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
    role_secrets.publish(settings)


def _metadata_revision(settings: Settings) -> str | None:
    """The metadata schema's Alembic revision, or None before the first bootstrap."""
    conninfo = make_conninfo(settings.admin_conninfo(), dbname=settings.superset_database)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except psycopg.errors.UndefinedTable:
            return None
    return row[0] if row else None


def _wanted_stamp(settings: Settings) -> dict[str, str]:
    """What the bootstrap depends on: Superset's exact versions and the admin password."""
    lock = LOCK_FILE.read_bytes() if LOCK_FILE.exists() else b""
    return {
        "versions": hashlib.sha256(lock).hexdigest()[:16],
        "admin": derive(settings, "admin-stamp:" + admin_password(settings))[:16],
    }


def bootstrap(settings: Settings, log: Log = quiet, force: bool = False) -> bool:
    """Prepare the metadata database unless the stamp says it is ready; True if it ran."""
    stampfile = _stampfile(settings)
    wanted = _wanted_stamp(settings)
    revision = _metadata_revision(settings)
    try:
        stamp = json.loads(stampfile.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stamp = {}
    if not force and revision is not None and stamp == {**wanted, "revision": revision}:
        return False
    log("+ preparing Superset's metadata database (migrations, roles, admin account)")
    env = environment(settings) | {"HV_SUPERSET_ADMIN_PASSWORD": admin_password(settings)}
    logfile = log_file(settings)
    with logfile.open("ab") as output:
        result = subprocess.run(
            [str(_venv_bin(settings, "python")), str(BOOTSTRAP)], env=env, cwd=_home(settings),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=output,
            timeout=BOOTSTRAP_TIMEOUT, check=False,
        )
    if result.returncode != 0:
        raise _failure("Superset's bootstrap failed", logfile)
    revision = result.stdout.decode().strip().splitlines()[-1]
    stampfile.write_text(json.dumps({**wanted, "revision": revision}), encoding="utf-8")
    return True


# The web server -------------------------------------------------------------------------


def pid(settings: Settings) -> int | None:
    """The gunicorn master's pid if our Superset runs."""
    return lifecycle.running_pid(_pidfile(settings), "gunicorn")


def answers(settings: Settings) -> bool:
    try:
        response = httpx.get(f"{url(settings)}/health", timeout=5)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def status(settings: Settings) -> bool:
    """Whether our Superset runs and answers its health check."""
    return pid(settings) is not None and answers(settings)


def _failure(message: str, logfile: Path) -> DaemonError:
    return lifecycle.failure(message, logfile, tail_lines=TAIL_LINES)


def _require_installed(settings: Settings) -> None:
    if not _venv_bin(settings, "gunicorn").exists():
        raise DaemonError(
            f"Superset is not installed in {settings.superset_venv}: run infra/superset/install.sh"
        )


def prepare(settings: Settings, log: Log = quiet) -> None:
    """Steps 1 and 2 (the superuser's side): the metadata database, its role and the
    bootstrap. docker-compose.yml runs them in the one-shot `superset-init` container,
    so that the web server's container needs neither the superuser nor HV_SECRET_KEY."""
    _require_installed(settings)
    home = _home(settings)
    home.mkdir(parents=True, exist_ok=True)
    log_file(settings).parent.mkdir(parents=True, exist_ok=True)
    try:
        ensure_metadata_database(settings, log)
    except psycopg.OperationalError as exc:
        raise DaemonError(f"Superset needs PostgreSQL, which does not answer: {exc}") from exc
    bootstrap(settings, log)


def start(settings: Settings, log: Log = quiet, foreground: bool = False,
          prepared: bool = False) -> None:
    """Start Superset (idempotent) and wait until it answers. PostgreSQL must be running.

    With `foreground`, gunicorn replaces this process instead (a container's main
    process), logging to standard output. With `prepared`, `prepare` already ran
    elsewhere: nothing here connects as the superuser."""
    address = f"{settings.superset_host}:{settings.superset_port}"
    running = pid(settings)
    if running is not None:
        log(f"= Superset already running on {address}")
        if not lifecycle.wait_for(lambda: answers(settings), START_TIMEOUT, ANSWER_INTERVAL):
            raise _failure(f"Superset (pid {running}) does not answer on {address}",
                           log_file(settings))
        return
    _require_installed(settings)
    lifecycle.require_free_port("Superset", settings.superset_host, settings.superset_port,
                                "HV_SUPERSET_PORT")
    home = _home(settings)
    home.mkdir(parents=True, exist_ok=True)
    logfile = log_file(settings)
    logfile.parent.mkdir(parents=True, exist_ok=True)
    if not prepared:
        prepare(settings, log)
    log(f"+ starting Superset on {address} (log: {logfile})")
    pidfile = _pidfile(settings)
    pidfile.unlink(missing_ok=True)
    command = [
        str(_venv_bin(settings, "gunicorn")),
        "--bind", address,
        "--workers", str(settings.superset_workers),
        # Threads, not processes, for the parallel chart queries of one dashboard.
        "--worker-class", "gthread", "--threads", "8",
        "--timeout", "120", "--graceful-timeout", "30",
        # Superset's documentation: its URLs (rison-encoded filters) can be long.
        "--limit-request-line", "0", "--limit-request-field_size", "0",
        "--pid", str(pidfile),
        *(["--error-logfile", "-", "--access-logfile", "-"] if foreground else [
            "--daemon", "--error-logfile", str(logfile),
            "--access-logfile", str(logfile.with_name("superset-access.log")),
            "--capture-output"]),
        "superset.app:create_app()",
    ]
    if foreground:
        os.chdir(home)
        os.execve(command[0], command, environment(settings))
    with logfile.open("ab") as output:
        result = subprocess.run(command, env=environment(settings), cwd=home,
                                stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                timeout=60, check=False)
    if result.returncode != 0:
        raise _failure("gunicorn did not start", logfile)
    lifecycle.wait_until_answers("Superset", lambda: answers(settings), pidfile, "gunicorn",
                                 logfile, timeout=START_TIMEOUT, interval=ANSWER_INTERVAL,
                                 tail_lines=TAIL_LINES)


def stop(settings: Settings, log: Log = quiet) -> None:
    """Stop Superset gracefully (SIGTERM to the gunicorn master) and wait until it exits."""
    lifecycle.stop("Superset", _pidfile(settings), "gunicorn", log_file(settings), log,
                   tail_lines=TAIL_LINES)

"""The platform's own Redis, the Celery broker (development and tests).

    data_dir/redis/        redis.conf, redis.pid and the append-only file
    data_dir/log/redis.log

On a loopback address (the default) it needs no password: Redis's protected mode keeps
other hosts out. On any other address (workers and receivers on other hosts) every client
authenticates: the clients' HV_REDIS_USERNAME and HV_REDIS_PASSWORD are the broker's
account, and a start without a password is refused. Redis's protected mode would refuse
those clients anyway, since their connections do not come from loopback.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import redis

from hypervision.daemons.lifecycle import (
    DaemonError,
    Log,
    data_dir,
    failure,
    is_loopback,
    launch,
    log_dir,
    prepare_data_dir,
    quiet,
    require_free_port,
    running_pid,
    touch,
    wait_until_answers,
)
from hypervision.daemons.lifecycle import stop as stop_daemon
from hypervision.settings import Settings


def _dir(settings: Settings) -> Path:
    return data_dir(settings) / "redis"


def log_file(settings: Settings) -> Path:
    return log_dir(settings) / "redis.log"


def _pidfile(settings: Settings) -> Path:
    return _dir(settings) / "redis.pid"


def pid(settings: Settings) -> int | None:
    return running_pid(_pidfile(settings), "redis-server")


def _access(settings: Settings) -> str:
    """The ACL lines: none on loopback without a password, else the one account of the
    clients (HV_REDIS_USERNAME, `default` when unset) with the SHA-256 of its password,
    so the file holds no password."""
    if settings.redis_password is None:
        if not is_loopback(settings.redis_host):
            raise DaemonError(
                f"Redis on {settings.redis_host}, not a loopback address, would be open to"
                " other hosts: set HV_REDIS_PASSWORD (and HV_REDIS_USERNAME if wanted)")
        return "# Loopback only, no password: protected mode keeps other hosts out.\n"
    name = settings.redis_username or "default"
    if not name.isprintable() or any(c.isspace() for c in name):
        raise DaemonError(f"HV_REDIS_USERNAME {name!r} is not a Redis user name")
    digest = hashlib.sha256(settings.redis_password.get_secret_value().encode()).hexdigest()
    lines = ["# Every client authenticates (HV_REDIS_USERNAME, HV_REDIS_PASSWORD)."]
    if name != "default":
        # `resetpass` also drops the default user's `nopass`.
        lines.append("user default off resetpass")
    lines.append(f"user {name} on resetpass #{digest} ~* &* +@all")
    return "\n".join(lines) + "\n"


def conf(settings: Settings) -> str:
    return f"""\
# Written by hypervision.daemons.redis on every start: edit the settings, not this file.
bind {settings.redis_host}
port {settings.redis_port}
protected-mode yes
{_access(settings)}daemonize yes
pidfile {_pidfile(settings)}
dir {_dir(settings)}
logfile {log_file(settings)}
# The Celery queue must survive a restart: log every write, fsync once a second.
appendonly yes
appendfsync everysec
"""


def answers(settings: Settings) -> bool:
    password = settings.redis_password
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port,
                         username=settings.redis_username if password else None,
                         password=password.get_secret_value() if password else None,
                         socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:  # refused, or still loading the append-only file
        return False
    finally:
        client.close()


def start(settings: Settings, *, log: Log = quiet) -> None:
    """Start our Redis (the Celery broker) with an append-only file."""
    address = f"{settings.redis_host}:{settings.redis_port}"
    if pid(settings) is not None:
        log(f"= Redis already running on {address}")
        return
    require_free_port("Redis", settings.redis_host, settings.redis_port, "HV_REDIS_PORT")
    prepare_data_dir(settings)
    directory = _dir(settings)
    directory.mkdir(mode=0o700, exist_ok=True)
    conf_file = directory / "redis.conf"
    text = conf(settings)  # refuses an open broker before anything is written
    conf_file.touch(mode=0o600)
    conf_file.write_text(text, encoding="utf-8")
    log_path = touch(log_file(settings))
    log(f"+ starting Redis on {address} (data in {directory})")
    if launch(["redis-server", str(conf_file)], directory, log_path) != 0:
        raise failure("redis-server did not start", log_path)
    wait_until_answers("Redis", lambda: answers(settings), _pidfile(settings),
                       "redis-server", log_path)


def stop(settings: Settings, *, log: Log = quiet) -> None:
    """Stop our Redis; it writes the append-only file out before exiting."""
    stop_daemon("Redis", _pidfile(settings), "redis-server", log_file(settings), log)

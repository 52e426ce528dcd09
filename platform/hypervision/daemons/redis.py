"""The platform's own Redis, the Celery broker (development and tests).

    data_dir/redis/        redis.conf, redis.pid and the append-only file
    data_dir/log/redis.log
"""

from __future__ import annotations

from pathlib import Path

import redis

from hypervision.daemons.lifecycle import (
    Log,
    data_dir,
    failure,
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


def conf(settings: Settings) -> str:
    return f"""\
# Written by hypervision.daemons.redis on every start: edit the settings, not this file.
bind {settings.redis_host}
port {settings.redis_port}
protected-mode yes
daemonize yes
pidfile {_pidfile(settings)}
dir {_dir(settings)}
logfile {log_file(settings)}
# The Celery queue must survive a restart: log every write, fsync once a second.
appendonly yes
appendfsync everysec
"""


def answers(settings: Settings) -> bool:
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port,
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
    conf_file.write_text(conf(settings), encoding="utf-8")
    log_path = touch(log_file(settings))
    log(f"+ starting Redis on {address} (data in {directory})")
    if launch(["redis-server", str(conf_file)], directory, log_path) != 0:
        raise failure("redis-server did not start", log_path)
    wait_until_answers("Redis", lambda: answers(settings), _pidfile(settings),
                       "redis-server", log_path)


def stop(settings: Settings, *, log: Log = quiet) -> None:
    """Stop our Redis; it writes the append-only file out before exiting."""
    stop_daemon("Redis", _pidfile(settings), "redis-server", log_file(settings), log)

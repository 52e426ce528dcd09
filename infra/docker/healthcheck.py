"""Health checks of the platform's containers (docker-compose.yml `healthcheck:`).

    python infra/docker/healthcheck.py http URL   the URL answers 2xx (API, receiver, Superset)
    python infra/docker/healthcheck.py worker     this container's Celery worker answers a ping
    python infra/docker/healthcheck.py beat       Celery beat's broker answers

Exit code 0 when healthy, 1 otherwise, with one line saying why. Reads the platform's
settings from the environment like every process of the platform.
"""

from __future__ import annotations

import socket
import sys
import urllib.error
import urllib.request

TIMEOUT = 5.0


def check_http(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            if 200 <= response.status < 300:
                return None
            return f"{url} answered {response.status}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url}: {exc}"


def check_worker() -> str | None:
    """A reply to a broadcast ping from a worker of this container (node name `*@host`).

    Any other container's worker answering proves nothing about this one.
    """
    from hypervision.celery_app import app

    host = socket.gethostname()
    replies = app.control.ping(timeout=TIMEOUT) or []
    names = [name for reply in replies for name in reply]
    if any(name.endswith(f"@{host}") for name in names):
        return None
    return f"no worker of {host} answered a ping (answers: {names or 'none'})"


def check_beat() -> str | None:
    import redis

    from hypervision.settings import get_settings

    try:
        redis.Redis.from_url(get_settings().redis_url, socket_timeout=TIMEOUT).ping()
    except redis.RedisError as exc:
        return f"broker unreachable: {exc}"
    return None


def main(argv: list[str]) -> int:
    if argv[:1] == ["http"] and len(argv) == 2:
        problem = check_http(argv[1])
    elif argv == ["worker"]:
        problem = check_worker()
    elif argv == ["beat"]:
        problem = check_beat()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

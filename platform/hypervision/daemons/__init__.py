"""The platform's own local daemons: PostgreSQL + TimescaleDB, Redis and Mosquitto.

These are the development and test instances (see platform/README.md, "Local daemons"),
one module each (postgres, redis, mosquitto), plus `lifecycle`, what they share with each
other and with Superset's web server (hypervision.superset.server). Each runs on its own
port with its data under `settings.data_dir`, so the system instances on the default ports
(5432, 6379, 1883) are never touched:

    data_dir/postgres/    the PostgreSQL cluster (PGDATA)
    data_dir/run/         PostgreSQL's Unix socket; private (0700), hence `trust` locally
    data_dir/redis/       redis.conf, redis.pid and the append-only file
    data_dir/mosquitto/   mosquitto.conf, mosquitto.pid and the persistence database
    data_dir/log/         postgres.log, redis.log, mosquitto.log

Every start is idempotent and waits until the daemon answers; every stop is graceful,
idempotent and waits until the process is gone. Failures raise `DaemonError`, which names
the log file to read. Configuration files are rewritten on every start, so a changed
setting (a port, say) applies at the next start.

When run as root, PostgreSQL runs as the `postgres` OS user (it refuses root) and
Mosquitto drops to the `mosquitto` user by itself; the files each must write are handed
to that user first. Linux only: process checks read /proc.
"""

from __future__ import annotations

from hypervision.daemons import mosquitto, postgres, redis
from hypervision.daemons.lifecycle import DaemonError, Log, quiet
from hypervision.settings import Settings

__all__ = ["DaemonError", "Log", "mosquitto", "postgres", "redis", "start_all", "status",
           "stop_all"]


def start_all(settings: Settings, *, log: Log = quiet) -> None:
    """Start PostgreSQL, Redis and Mosquitto, in the order the data path needs them."""
    postgres.start(settings, log=log)
    redis.start(settings, log=log)
    mosquitto.start(settings, log=log)


def stop_all(settings: Settings, *, log: Log = quiet) -> None:
    """Stop every daemon, the broker first so that nothing new comes in.

    Every stop is attempted even if an earlier one fails; the failures are then raised
    together.
    """
    errors: list[str] = []
    for stop in (mosquitto.stop, redis.stop, postgres.stop):
        try:
            stop(settings, log=log)
        except DaemonError as exc:
            errors.append(str(exc))
    if errors:
        raise DaemonError("; ".join(errors))


def status(settings: Settings) -> dict[str, bool]:
    """Whether each of our instances is running and answers (not just whether a port is open)."""
    return {
        "postgres": postgres.pid(settings) is not None and postgres.answers(settings),
        "redis": redis.pid(settings) is not None and redis.answers(settings),
        "mosquitto": mosquitto.pid(settings) is not None and mosquitto.answers(settings),
    }

"""What every local daemon shares: pid files, /proc checks, ports, waits, stops, errors.

PostgreSQL, Redis, Mosquitto (this package) and Superset's gunicorn
(hypervision.superset.server) are started, waited for and stopped the same way; these are
the helpers they use, so that a fix to, say, the stale-pid-file check applies to all.
Linux only: process checks read /proc.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from hypervision.settings import Settings

Log = Callable[[str], None]

# How long a daemon may take to answer after start, or to exit after a stop request.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 60.0
POLL_INTERVAL = 0.1
# How many lines of a daemon's log a failure quotes.
TAIL_LINES = 10


class DaemonError(RuntimeError):
    """A local daemon could not be started, stopped or reached."""


def quiet(message: str) -> None:
    """The default `log`: say nothing."""


# Paths ----------------------------------------------------------------------------------


def data_dir(settings: Settings) -> Path:
    return settings.data_dir.resolve()


def log_dir(settings: Settings) -> Path:
    return data_dir(settings) / "log"


def prepare_data_dir(settings: Settings) -> None:
    """Create data_dir and data_dir/log, world-traversable (0755).

    The daemons' users (postgres, mosquitto) must be able to walk through them to reach
    their own private directories when we run as root.
    """
    for path in (data_dir(settings), log_dir(settings)):
        path.mkdir(parents=True, exist_ok=True)
        if is_root():
            path.chmod(0o755)


# Users ----------------------------------------------------------------------------------


def is_root() -> bool:
    return os.geteuid() == 0


def give_to(user: str, *paths: Path) -> None:
    """When root, hand `paths` to the OS user `user` (and its primary group)."""
    if not is_root():
        return
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise DaemonError(f"the OS user {user!r} does not exist; is its package installed?") \
            from None
    for path in paths:
        os.chown(path, entry.pw_uid, entry.pw_gid)


def require_reachable(path: Path, user: str) -> None:
    """When root, fail clearly if `user` cannot walk down to `path`.

    Otherwise initdb or mosquitto would stop with a bare "permission denied". A common
    cause: a data_dir under a 0700 directory, such as /root or pytest's tmp_path root.
    """
    if not is_root():
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
            raise DaemonError(
                f"the {user!r} OS user cannot reach {path}: {directory} is not traversable "
                f"(chmod o+x {directory}, or choose another HV_DATA_DIR)"
            )


def touch(path: Path, mode: int = 0o640) -> Path:
    """Create `path` if missing (log files are created by us, then handed over)."""
    if not path.exists():
        path.touch(mode=mode)
    return path


# Commands and pids ----------------------------------------------------------------------


def run(argv: list[str], *, as_user: str | None = None, cwd: Path,
        timeout: float = START_TIMEOUT + 30) -> subprocess.CompletedProcess[str]:
    """Run a command, as `as_user` through runuser when we are root, and capture its output.

    `cwd` matters: a daemon's user often cannot read the caller's working directory (root's
    home, say), and initdb and pg_ctl complain about it.
    """
    if as_user is not None and is_root():
        argv = ["runuser", "-u", as_user, "--", *argv]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False)


def pid_alive(pid: int, name: str) -> bool:
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


def read_pid(pidfile: Path) -> int | None:
    """The pid in the first line of `pidfile`, or None if it is missing or unreadable."""
    try:
        first = pidfile.read_text(encoding="utf-8").splitlines()[0]
        return int(first.strip())
    except (OSError, IndexError, ValueError):
        return None


def running_pid(pidfile: Path, name: str) -> int | None:
    """The pid in `pidfile` if that process is alive and called `name`, else None."""
    pid = read_pid(pidfile)
    if pid is not None and pid_alive(pid, name):
        return pid
    return None


# Waiting --------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float,
             interval: float = POLL_INTERVAL) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def wait_gone(pid: int, name: str, what: str, log_file: Path, *,
              tail_lines: int = TAIL_LINES) -> None:
    """Wait until `pid` has exited; a DaemonError if it is still there after STOP_TIMEOUT."""
    if not wait_for(lambda: not pid_alive(pid, name), STOP_TIMEOUT):
        raise failure(f"{what} (pid {pid}) did not exit within {STOP_TIMEOUT:.0f} s", log_file,
                      tail_lines=tail_lines)


def wait_until_answers(what: str, answers: Callable[[], bool], pidfile: Path, name: str,
                       log_file: Path, *, timeout: float = START_TIMEOUT,
                       interval: float = POLL_INTERVAL, tail_lines: int = TAIL_LINES) -> None:
    """Wait until the daemon answers; fail early if it wrote its pid file and then died."""

    def done() -> bool:
        if answers():
            return True
        pid = read_pid(pidfile)
        if pid is not None and not pid_alive(pid, name):
            raise failure(f"{what} exited during start-up", log_file, tail_lines=tail_lines)
        return False

    if not wait_for(done, timeout, interval):
        raise failure(f"{what} did not answer within {timeout:.0f} s", log_file,
                      tail_lines=tail_lines)


# Ports ----------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """True if `host` is a loopback address (127.0.0.0/8, ::1) or `localhost`: a daemon
    listening there is reachable from this host only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any address
        return False


def port_is_free(host: str, port: int) -> bool:
    """True if nothing listens on host:port.

    We bind rather than connect: a bind also fails when another program listens on the
    wildcard address, and SO_REUSEADDR (which the daemons use too) ignores connections
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


def require_free_port(what: str, host: str, port: int, setting: str) -> None:
    """Refuse to start when another program holds our port, instead of hanging or, worse,
    mistaking that program for our daemon."""
    if not port_is_free(host, port):
        raise DaemonError(
            f"{what}: {host}:{port} is already in use by another process; "
            f"stop it or choose another port ({setting})"
        )


# Starting and stopping ------------------------------------------------------------------


def launch(argv: list[str], cwd: Path, log_file: Path) -> int:
    """Run a self-daemonising server and return the launcher's exit code.

    The launcher's output goes to the daemon's log file, not to a pipe: a daemon that
    kept an inherited pipe open would make us wait for it forever, and errors printed
    before the daemon opens its own log (a bad config line) end up in the same file.
    """
    with log_file.open("ab") as output:
        return subprocess.run(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
            start_new_session=True, timeout=START_TIMEOUT, check=False,
        ).returncode


def stop(what: str, pidfile: Path, name: str, log_file: Path, log: Log, *,
         tail_lines: int = TAIL_LINES) -> None:
    """Send SIGTERM and wait until the process has exited (idempotent).

    SIGTERM is each daemon's graceful shutdown: Redis flushes its append-only file,
    Mosquitto saves its persistence database, gunicorn lets its workers finish.
    """
    pid = running_pid(pidfile, name)
    if pid is None:
        log(f"= {what} is not running")
        return
    log(f"- stopping {what} (pid {pid})")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    wait_gone(pid, name, what, log_file, tail_lines=tail_lines)


# Failures -------------------------------------------------------------------------------


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last `lines` lines of a log file, or "" if it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def failure(message: str, log_file: Path, output: str = "", *,
            tail_lines: int = TAIL_LINES) -> DaemonError:
    """A DaemonError naming the log file, with its last lines and any command output."""
    details = "\n".join(part for part in (output.strip(), tail(log_file, tail_lines)) if part)
    text = f"{message}; see {log_file}"
    return DaemonError(f"{text}\n{details}" if details else text)

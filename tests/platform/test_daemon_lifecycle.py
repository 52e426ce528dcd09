"""What every local daemon shares (hypervision.daemons.lifecycle), without any daemon:
pid files, the port check, the waits and their errors, the SIGTERM stop."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from hypervision.daemons import lifecycle
from hypervision.daemons.lifecycle import DaemonError


def a_log(tmp_path: Path, lines: int) -> Path:
    log_file = tmp_path / "daemon.log"
    log_file.write_text("".join(f"line {n}\n" for n in range(1, lines + 1)), encoding="utf-8")
    return log_file


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_daemon_that_never_answers_is_a_clear_error_naming_its_log(tmp_path: Path) -> None:
    log_file = a_log(tmp_path, 30)

    began = time.monotonic()
    with pytest.raises(DaemonError) as raised:
        lifecycle.wait_until_answers("Thing", lambda: False, tmp_path / "missing.pid", "thing",
                                     log_file, timeout=0.3)

    assert time.monotonic() - began < 2
    message = str(raised.value)
    assert message.startswith(f"Thing did not answer within 0 s; see {log_file}\n")
    # The last lines of the log, not the whole of it.
    assert message.splitlines()[1:] == [f"line {n}" for n in range(21, 31)]


def test_a_daemon_that_died_after_writing_its_pid_file_fails_at_once(tmp_path: Path) -> None:
    pidfile = tmp_path / "thing.pid"
    pidfile.write_text(f"{dead_pid()}\n", encoding="utf-8")

    began = time.monotonic()
    with pytest.raises(DaemonError, match="Thing exited during start-up"):
        lifecycle.wait_until_answers("Thing", lambda: False, pidfile, "thing",
                                     a_log(tmp_path, 1), timeout=10)

    assert time.monotonic() - began < 2


def test_the_log_tail_length_is_the_callers(tmp_path: Path) -> None:
    error = lifecycle.failure("Superset did not start", a_log(tmp_path, 30), tail_lines=15)

    assert len(str(error).splitlines()) == 1 + 15


def test_a_pid_file_names_a_running_daemon_only_if_the_command_name_matches(
        tmp_path: Path) -> None:
    pidfile = tmp_path / "thing.pid"
    own = Path(f"/proc/{os.getpid()}/stat").read_text(encoding="utf-8")
    own_name = own[own.index("(") + 1 : own.rindex(")")]
    pidfile.write_text(f"{os.getpid()}\n", encoding="utf-8")

    assert lifecycle.running_pid(pidfile, own_name) == os.getpid()
    # A stale pid file whose pid another program has taken.
    assert lifecycle.running_pid(pidfile, "redis-server") is None
    pidfile.write_text(f"{dead_pid()}\n", encoding="utf-8")
    assert lifecycle.running_pid(pidfile, own_name) is None
    pidfile.write_text("", encoding="utf-8")
    assert lifecycle.running_pid(pidfile, own_name) is None
    assert lifecycle.running_pid(tmp_path / "missing.pid", own_name) is None


def test_a_port_held_by_another_program_is_refused_with_the_setting_to_change() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]

        assert not lifecycle.port_is_free("127.0.0.1", taken)
        with pytest.raises(DaemonError, match=rf"Thing: 127\.0\.0\.1:{taken} is already in use"
                                              r" .*\(HV_THING_PORT\)"):
            lifecycle.require_free_port("Thing", "127.0.0.1", taken, "HV_THING_PORT")
    assert lifecycle.port_is_free("127.0.0.1", taken)


def test_stop_terminates_the_process_and_waits_until_it_is_gone(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "60"])
    pidfile = tmp_path / "sleep.pid"
    pidfile.write_text(f"{child.pid}\n", encoding="utf-8")
    lines: list[str] = []
    try:
        lifecycle.stop("Sleeper", pidfile, "sleep", a_log(tmp_path, 1), lines.append)

        # Our child is a zombie until reaped, which counts as gone.
        assert not lifecycle.pid_alive(child.pid, "sleep")
        assert child.wait(5) == -15
        assert lines == [f"- stopping Sleeper (pid {child.pid})"]
        lifecycle.stop("Sleeper", pidfile, "sleep", a_log(tmp_path, 1), lines.append)
        assert lines[-1] == "= Sleeper is not running"
    finally:
        child.kill()
        child.wait()

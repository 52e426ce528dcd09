"""The pipeline's processes under supervisord, for runs outside Docker.

`hypervision supervise` (and `hypervision demo`, for its worker) run the worker, the
receiver and beat as supervisord programs: a process that exits or is killed is started
again within seconds, with no one at the keyboard. In the Docker stack, compose's restart
policies do the same. See docs/runbook.md, "Processes under a supervisor".

Everything supervisord needs lives under `HV_DATA_DIR`:

    data_dir/supervisor/supervisord.conf   written on every start (edit the settings)
    data_dir/supervisor/supervisor.sock    its control socket (0700): supervisorctl -c ...
    data_dir/log/supervisord.log           what supervisord did (starts, exits, restarts)
    data_dir/log/<program>.log             each program's output
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hypervision.settings import Settings

# name -> the `hypervision` command line of the program.
PROGRAMS: dict[str, list[str]] = {
    "worker": ["worker", "--loglevel", "info"],
    "receiver": ["receive"],
    "beat": ["beat"],
    "api": ["api"],
}
# A warm shutdown finishes the batch in hand; past this, supervisord kills the group.
STOP_WAIT_SECONDS = 20


def folder(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "supervisor"


def config_path(settings: Settings) -> Path:
    return folder(settings) / "supervisord.conf"


def _quote(value: str) -> str:
    """A value for supervisord's command= line (shlex-split by supervisord)."""
    return "'" + value.replace("'", "'\"'\"'") + "'" if any(c in value for c in " '\"%") \
        else value


def config(settings: Settings, programs: list[str]) -> str:
    unknown = sorted(set(programs) - set(PROGRAMS))
    if unknown:
        raise ValueError(f"unknown program(s) {', '.join(unknown)};"
                         f" choose among {', '.join(PROGRAMS)}")
    base = folder(settings)
    logs = settings.data_dir.resolve() / "log"
    python = _quote(sys.executable)
    sections = [f"""\
; Written by hypervision.supervise on every start: edit the settings, not this file.
[supervisord]
nodaemon=true
logfile={logs / "supervisord.log"}
pidfile={base / "supervisord.pid"}
childlogdir={logs}
; Programs inherit supervisord's environment, hence the HV_* settings.

[unix_http_server]
file={base / "supervisor.sock"}
chmod=0700

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{base / "supervisor.sock"}
"""]
    for name in programs:
        command = " ".join([python, "-m", "hypervision", *PROGRAMS[name]])
        sections.append(f"""\
[program:{name}]
command={command}
directory={settings.data_dir.resolve()}
autostart=true
; Started again whatever the exit (a crash, a kill, or a clean exit nobody asked for).
autorestart=true
startsecs=3
startretries=1000000
stopsignal=TERM
stopwaitsecs={STOP_WAIT_SECONDS}
; The worker's pool processes and the receiver's threads go with their parent.
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={logs / f"{name}.log"}
stdout_logfile_maxbytes=50MB
stdout_logfile_backups=3
""")
    return "\n".join(sections)


def write_config(settings: Settings, programs: list[str]) -> Path:
    base = folder(settings)
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    (settings.data_dir.resolve() / "log").mkdir(parents=True, exist_ok=True)
    path = config_path(settings)
    path.write_text(config(settings, programs), encoding="utf-8")
    return path


def command(settings: Settings, programs: list[str]) -> list[str]:
    """The supervisord command line (in the foreground) for these programs."""
    return [sys.executable, "-m", "supervisor.supervisord", "-c",
            str(write_config(settings, programs))]


def start(settings: Settings, programs: list[str]) -> subprocess.Popen[bytes]:
    """supervisord as a child process in its own process group; SIGTERM to it stops the
    programs gracefully, then supervisord itself."""
    log_file = open(settings.data_dir / "log" / "supervisord-console.log", "ab")  # noqa: SIM115
    return subprocess.Popen(command(settings, programs), stdout=log_file,
                            stderr=subprocess.STDOUT, start_new_session=True)


def ctl(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """Run supervisorctl against our supervisord (status, pid NAME, restart NAME...)."""
    return subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c",
                           str(config_path(settings)), *args],
                          capture_output=True, text=True, check=False, timeout=30)

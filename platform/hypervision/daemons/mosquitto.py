"""The platform's own Mosquitto MQTT broker (development and tests).

    data_dir/mosquitto/        mosquitto.conf, mosquitto.pid and the persistence database
    data_dir/log/mosquitto.log

Started as root, Mosquitto drops to the `mosquitto` user by itself; the files it must
write are handed to that user first.

On a loopback address (the default) clients are anonymous: nothing else reaches it. On any
other address (receivers on other hosts) every client authenticates with the account of
HV_MQTT_USERNAME and HV_MQTT_PASSWORD, kept in a password file as a salted PBKDF2 hash
(mosquitto's own `$7$` form, what `mosquitto_passwd` writes); a start without them is
refused. The production broker has one account per client and ACLs (infra/mosquitto).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt

from hypervision.daemons.lifecycle import (
    DaemonError,
    Log,
    data_dir,
    failure,
    give_to,
    is_loopback,
    launch,
    log_dir,
    prepare_data_dir,
    quiet,
    require_free_port,
    require_reachable,
    running_pid,
    touch,
    wait_until_answers,
)
from hypervision.daemons.lifecycle import stop as stop_daemon
from hypervision.settings import Settings

# Mosquitto limits; see `conf` for how mosquitto 2.0 counts them.
MQTT_MAX_INFLIGHT = 20_000
MQTT_MAX_QUEUED = 1_100_000


def _dir(settings: Settings) -> Path:
    return data_dir(settings) / "mosquitto"


def log_file(settings: Settings) -> Path:
    return log_dir(settings) / "mosquitto.log"


def _pidfile(settings: Settings) -> Path:
    return _dir(settings) / "mosquitto.pid"


def pid(settings: Settings) -> int | None:
    return running_pid(_pidfile(settings), "mosquitto")


def _password_file(settings: Settings) -> Path:
    return _dir(settings) / "passwd"


def password_line(username: str, password: str, *, iterations: int = 101) -> str:
    """One line of a mosquitto password file: `user:$7$<iterations>$<salt>$<hash>`,
    PBKDF2-HMAC-SHA512 over a random 12-byte salt, base64 (mosquitto 2.0's format)."""
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return (f"{username}:$7${iterations}${base64.b64encode(salt).decode()}"
            f"${base64.b64encode(digest).decode()}\n")


def _access(settings: Settings) -> str:
    """Who may connect: anyone on loopback, else the clients' one account."""
    if is_loopback(settings.mqtt_host):
        return ("# Loopback only: anonymous clients, nothing else reaches it.\n"
                "allow_anonymous true\n")
    if not settings.mqtt_username or settings.mqtt_password is None:
        raise DaemonError(
            f"Mosquitto on {settings.mqtt_host}, not a loopback address, would be open to"
            " other hosts: set HV_MQTT_USERNAME and HV_MQTT_PASSWORD")
    if ":" in settings.mqtt_username or not settings.mqtt_username.isprintable():
        raise DaemonError(f"HV_MQTT_USERNAME {settings.mqtt_username!r} is not a user name"
                          " mosquitto accepts")
    return ("# Every client authenticates (HV_MQTT_USERNAME, HV_MQTT_PASSWORD).\n"
            "allow_anonymous false\n"
            f"password_file {_password_file(settings)}\n")


def conf(settings: Settings) -> str:
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
# Written by hypervision.daemons.mosquitto on every start: edit the settings, not this file.
listener {settings.mqtt_port} {settings.mqtt_host}
{_access(settings)}
# Queued messages and persistent sessions survive a broker restart; the database is
# saved every 10 s and at shutdown. Persistent sessions never expire.
persistence true
persistence_location {_dir(settings)}/
autosave_interval 10

max_inflight_messages {MQTT_MAX_INFLIGHT}
max_queued_messages {MQTT_MAX_QUEUED}
max_queued_bytes 0

pid_file {_pidfile(settings)}
log_dest file {log_file(settings)}
log_type error
log_type warning
log_type notice
log_type information
# No `daemon true` here: mosquitto 2.0.11 has no such config option (it rejects the file);
# daemon mode is its -d command-line flag, which `start` passes.

# Started as root, mosquitto drops to this user right after reading this file, before it
# writes its pid file, log or database; those paths are handed to it beforehand. We keep
# the drop rather than `user root`: a network-facing broker should not run as root.
# Started as another user, this line has no effect.
user mosquitto
"""


def answers(settings: Settings) -> bool:
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


def start(settings: Settings, *, log: Log = quiet) -> None:
    """Start our Mosquitto broker with persistence."""
    address = f"{settings.mqtt_host}:{settings.mqtt_port}"
    if pid(settings) is not None:
        log(f"= Mosquitto already running on {address}")
        return
    require_free_port("Mosquitto", settings.mqtt_host, settings.mqtt_port, "HV_MQTT_PORT")
    prepare_data_dir(settings)
    require_reachable(data_dir(settings), "mosquitto")
    directory = _dir(settings)
    directory.mkdir(mode=0o700, exist_ok=True)
    conf_file = directory / "mosquitto.conf"
    conf_file.write_text(conf(settings), encoding="utf-8")
    passwords = _password_file(settings)
    passwords.unlink(missing_ok=True)
    if settings.mqtt_username and settings.mqtt_password and not is_loopback(settings.mqtt_host):
        passwords.touch(mode=0o600)
        passwords.write_text(password_line(settings.mqtt_username,
                                           settings.mqtt_password.get_secret_value()))
    log_path = touch(log_file(settings))
    database = directory / "mosquitto.db"
    give_to("mosquitto", directory, log_path, *([database] if database.exists() else []),
            *([passwords] if passwords.exists() else []))
    log(f"+ starting Mosquitto on {address} (data in {directory})")
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if launch([mosquitto, "-c", str(conf_file), "-d"], directory, log_path) != 0:
        raise failure("mosquitto did not start", log_path)
    wait_until_answers("Mosquitto", lambda: answers(settings), _pidfile(settings), "mosquitto",
                       log_path)


def stop(settings: Settings, *, log: Log = quiet) -> None:
    """Stop our broker; it saves its persistence database before exiting."""
    stop_daemon("Mosquitto", _pidfile(settings), "mosquitto", log_file(settings), log)

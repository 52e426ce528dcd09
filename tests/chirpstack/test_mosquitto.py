"""The production broker's accounts and ACLs (infra/mosquitto/), with a real Mosquitto:
the password file from make-passwd.sh, the ACL file as shipped."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.conftest import PORT_BASE, TEST_DATA

INFRA = Path(__file__).resolve().parents[2] / "infra" / "mosquitto"
PORT = PORT_BASE + 884
PASSWORDS = {"chirpstack": "cs-" + uuid.uuid4().hex, "hypervision": "hv-" + uuid.uuid4().hex,
             "gateway-bridge": "gw-" + uuid.uuid4().hex}
EVENTS = "application/+/device/+/event/+"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTT_")}
    return {**env, **extra}


def test_make_passwd_hashes_every_account_and_never_writes_a_password(tmp_path: Path) -> None:
    out = tmp_path / "passwd"
    secrets = tmp_path / "secrets"
    result = subprocess.run(
        [str(INFRA / "make-passwd.sh"), str(out)], capture_output=True, text=True,
        env=_env(MQTT_CHIRPSTACK_PASSWORD=PASSWORDS["chirpstack"],
                 MQTT_SECRETS_DIR=str(secrets)), check=False)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert [line.split(":")[0] for line in text.splitlines()] == [
        "chirpstack", "hypervision", "gateway-bridge"]
    assert all(line.split(":", 1)[1].startswith("$7$") for line in text.splitlines())
    assert PASSWORDS["chirpstack"] not in text
    # The missing ones were generated, privately, for the clients' configuration.
    generated = (secrets / "hypervision").read_text()
    assert len(generated) == 48 and generated not in text
    assert (secrets / "hypervision").stat().st_mode & 0o077 == 0
    assert out.stat().st_mode & 0o077 == 0

    missing = subprocess.run([str(INFRA / "make-passwd.sh"), str(tmp_path / "p2"), "x"],
                             capture_output=True, text=True, env=_env(), check=False)
    assert missing.returncode == 1 and "set MQTT_X_PASSWORD" in missing.stderr


@pytest.fixture
def broker() -> Iterator[int]:
    """Mosquitto with the shipped ACL file and a password file from make-passwd.sh."""
    folder = TEST_DATA / "mosquitto-acl-test"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    folder.chmod(0o755)
    passwd = folder / "passwd"
    env = _env(**{f"MQTT_{u.upper().replace('-', '_')}_PASSWORD": p for u, p in PASSWORDS.items()})
    subprocess.run([str(INFRA / "make-passwd.sh"), str(passwd)], env=env, check=True,
                   capture_output=True)
    acl = folder / "acl"
    shutil.copy(INFRA / "acl", acl)
    for path in (passwd, acl):
        path.chmod(0o644)  # readable by the `mosquitto` user the broker drops to
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {PORT} 127.0.0.1\n"
        "per_listener_settings false\nallow_anonymous false\n"
        f"password_file {passwd}\nacl_file {acl}\n"
        "log_dest stderr\nlog_type error\nlog_type warning\n"
    )
    process = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while not _answers():
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "mosquitto did not start"
        time.sleep(0.05)
    yield PORT
    process.terminate()
    process.wait(timeout=10)


def _answers() -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", PORT)) == 0


class Client:
    """A paho client that records what it receives."""

    def __init__(self, user: str | None, password: str | None = None) -> None:
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connected: queue.Queue[object] = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"acl-test-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv311)
        if user is not None:
            self.client.username_pw_set(user, password if password is not None
                                        else PASSWORDS[user])
        self.client.on_connect = lambda c, u, f, reason, p: self.connected.put(reason)
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload))

    def connect(self) -> object:
        self.client.connect("127.0.0.1", PORT)
        self.client.loop_start()
        return self.connected.get(timeout=5)

    def subscribe(self, topic: str) -> None:
        done: queue.Queue[object] = queue.Queue()
        self.client.on_subscribe = lambda c, u, mid, codes, p: done.put(codes)
        self.client.subscribe(topic, qos=1)
        done.get(timeout=5)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(timeout=5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_only_known_accounts_may_connect(broker: int) -> None:
    anonymous = Client(None)
    assert anonymous.connect().is_failure  # type: ignore[attr-defined]
    wrong = Client("hypervision", "not-its-password")
    assert wrong.connect().is_failure  # type: ignore[attr-defined]
    right = Client("hypervision")
    assert not right.connect().is_failure  # type: ignore[attr-defined]
    for c in (anonymous, wrong, right):
        c.close()


def test_chirpstack_publishes_events_that_only_the_receiver_reads(broker: int) -> None:
    chirpstack, receiver, bridge = Client("chirpstack"), Client("hypervision"), \
        Client("gateway-bridge")
    for c in (chirpstack, receiver, bridge):
        assert not c.connect().is_failure  # type: ignore[attr-defined]
    receiver.subscribe(EVENTS)
    bridge.subscribe("application/#")
    bridge.subscribe("eu868/gateway/#")
    event = "application/0b7f3c2e-0000-4000-8000-000000000001/device/24e124601c100001/event/up"
    command = "eu868/gateway/0016c001f1500001/command/down"

    # The receiver may not publish events (a forged uplink is dropped by the broker)...
    receiver.publish(event, b"forged")
    # ...ChirpStack may. Messages of one publisher arrive in order: once a later message
    # is here, an earlier one would have been too.
    chirpstack.publish(event, b"genuine")
    chirpstack.publish(command, b"to-gateway")
    assert receiver.messages.get(timeout=5) == (event, b"genuine")
    assert receiver.messages.empty()
    # The gateway bridge gets the gateways' topics, not the applications' events.
    assert bridge.messages.get(timeout=5) == (command, b"to-gateway")
    for c in (chirpstack, receiver, bridge):
        c.close()

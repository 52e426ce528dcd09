"""A compose stack of docker-compose.yml driven from the tests (tests/deploy/test_stack.py).

`Stack` wraps `docker compose` for one project: its own name (`hvtest-<port base>`, never
a real deployment's `hypervision`), its own `.env` with fresh secrets, a self-signed
certificate for the three host names, the proxy published on loopback test ports, and
the internal network on a /24 of 198.18.0.0/15 derived from the port base. Everything
it starts, `down()` removes with the volumes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyrage import x25519

REPO = Path(__file__).resolve().parents[2]
HOSTS = {"PLATFORM_HOSTNAME": "platform.hv.test", "DASHBOARDS_HOSTNAME": "dashboards.hv.test",
         "CHIRPSTACK_HOSTNAME": "lns.hv.test"}
# Every `${NAME:?...}` of the compose file gets a fresh random value, but these.
NOT_SECRETS = {*HOSTS, "TLS_CERT_DIR", "HV_BACKUP_AGE_RECIPIENTS", "CHIRPSTACK_OPERATOR_NETWORKS",
               "NAME"}


def required(compose_file: Path) -> list[str]:
    """The secrets a compose file refuses to start without."""
    names = re.findall(r"\$\{([A-Z_]+):\?", compose_file.read_text())
    return sorted(set(names) - NOT_SECRETS)


# Docker's own CLI and Debian's Compose v2 plugin (infra/docker/engine.sh), before any
# other `docker` on the PATH.
DOCKER_ENV = {**os.environ, "PATH": "/usr/bin:/usr/sbin:" + os.environ.get("PATH", "")}

# The compose file's one-shot jobs (`restart: "no"`): done when they exited with 0.
ONE_SHOTS = ("migrate", "superset-init", "chirpstack-init")

# Each phase's time, one line each (`phase`): read it after a run to see where time goes.
# Beside the test data folder, not in it: the session's services empty that folder when
# they start, after the images' background build has begun writing its log.
_DATA = Path(os.environ.get("HV_TEST_DATA_DIR", "/tmp/hypervision-test"))
PHASES = _DATA.with_name(f"{_DATA.name}-stack") / "stack-phases.log"


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Times one phase of the stack tests into PHASES (failed or not)."""
    start = time.monotonic()
    try:
        yield
    finally:
        PHASES.parent.mkdir(parents=True, exist_ok=True)
        with PHASES.open("a", encoding="utf-8") as log:
            log.write(f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%S} {name}: "
                      f"{time.monotonic() - start:.0f} s\n")


class ImagesBuild:
    """infra/docker/engine.sh then images.sh, started in the background when the session
    starts (tests/deploy/conftest.py) so that the first, long build overlaps the other
    tests; the stack tests wait for it."""

    process: subprocess.Popen[bytes] | None = None
    started = 0.0
    log = PHASES.with_name("stack-images.log")

    @classmethod
    def start(cls) -> None:
        cls.log.parent.mkdir(parents=True, exist_ok=True)
        docker = REPO / "infra" / "docker"
        with cls.log.open("wb") as out:
            cls.process = subprocess.Popen(
                ["bash", "-c", f"bash {docker / 'engine.sh'} && bash {docker / 'images.sh'}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=DOCKER_ENV, start_new_session=True)
        cls.started = time.monotonic()

    @classmethod
    def wait(cls) -> None:
        """Returns once the background build is done; fails with its log if it failed."""
        if cls.process is None:
            return
        with phase("images, waited for (built in the background)"):
            code = cls.process.wait(timeout=3600)
        cls.process = None
        tail = cls.log.read_text(errors="replace")[-4000:]
        assert code == 0, f"engine.sh/images.sh failed ({code}):\n{tail}"
        with PHASES.open("a", encoding="utf-8") as log:
            log.write(f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%S} images, built in the "
                      f"background: {time.monotonic() - cls.started:.0f} s\n")


# A member of tenants/ and one of its devices, as the simulator publishes for it.
MEMBER = "aven_odet"


def self_signed(folder: Path) -> Path:
    """A certificate for the three names (fullchain.pem, privkey.pem); returns its file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hv.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(h) for h in HOSTS.values()]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "privkey.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    # nginx reads the key as root before dropping privileges; the folder is the test's.
    return folder / "fullchain.pem"


@dataclass
class Stack:
    """One compose project of docker-compose.yml (or of another release's copy of it)."""

    name: str
    folder: Path
    port_base: int
    project_dir: Path = REPO
    env: dict[str, str] = field(default_factory=dict)

    @property
    def https_port(self) -> int:
        return self.port_base + 443

    @property
    def env_file(self) -> Path:
        return self.folder / "stack.env"

    def write_env(self, previous: dict[str, str] | None = None) -> None:
        """The `.env` of the test deployment: fresh secrets (or those of `previous`)."""
        tls = self.folder / "tls"
        if not (tls / "fullchain.pem").exists():
            self_signed(tls)
        subnet = f"198.18.{100 + self.port_base // 1000 % 100}.0/24"
        self.env = previous or {}
        for name in required(self.project_dir / "docker-compose.yml"):
            self.env.setdefault(name, secrets.token_hex(24))
        if "HV_BACKUP_AGE_RECIPIENTS" not in self.env:
            # The backups' key pair: the public key in `.env`, the private one kept apart
            # (here: the test's folder), readable by the platform's user for the restore.
            identity = x25519.Identity.generate()
            key = self.folder / "backup-key.txt"
            self.folder.mkdir(parents=True, exist_ok=True)
            key.write_text(f"{identity}\n")
            key.chmod(0o600)
            os.chown(key, 10001, 10001)
            self.env["HV_BACKUP_AGE_RECIPIENTS"] = str(identity.to_public())
        self.env = {**self.env, **HOSTS,
                    "TLS_CERT_DIR": str(tls),
                    "HTTPS_PORT": f"127.0.0.1:{self.https_port}",
                    "HTTP_PORT": f"127.0.0.1:{self.port_base + 480}",
                    "BACKEND_SUBNET": subnet,
                    "CHIRPSTACK_OPERATOR_NETWORKS": "127.0.0.1/32",
                    # Each role's password, written by `migrate`: the test's, not the
                    # checkout's ./secrets.
                    "ROLE_SECRETS_DIR": str(self.folder / "secrets"),
                    "HV_WORKER_CONCURRENCY": "1",
                    # A worker killed mid-batch: its batch comes back after 20 s, not
                    # the default 5 minutes (test_stack's crash of the worker). Compose
                    # takes a variable of its own environment first: under pytest the
                    # session's HV_BROKER_VISIBILITY_TIMEOUT (tests/conftest.py) wins.
                    "HV_BROKER_VISIBILITY_TIMEOUT": "20"}
        self.folder.mkdir(parents=True, exist_ok=True)
        # docs/runbook.md, "Install", step 4: the role passwords' folder, the platform's.
        role_secrets = self.folder / "secrets"
        role_secrets.mkdir(mode=0o700, exist_ok=True)
        os.chown(role_secrets, 10001, 10001)
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in self.env.items()))
        self.env_file.chmod(0o600)

    def compose(self, *args: str, check: bool = True, timeout: float = 1800,
                input: str | None = None) -> subprocess.CompletedProcess[str]:
        command = ["docker", "compose", "--project-name", self.name, "--project-directory",
                   str(self.project_dir), "--env-file", str(self.env_file),
                   "-f", str(self.project_dir / "docker-compose.yml"), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                env=DOCKER_ENV, input=input, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command[2:])} failed ({result.returncode}):\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def containers(self) -> list[dict[str, str]]:
        out = self.compose("ps", "--all", "--format", "json").stdout.strip()
        if not out:
            return []
        # Compose 2.21+ writes one JSON object per line.
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def unhealthy(self) -> list[str]:
        """Services not (yet) healthy, and one-shot jobs not (yet) exited with 0."""
        problems = []
        for c in self.containers():
            service, state, health = c["Service"], c["State"], c.get("Health", "")
            if service in ONE_SHOTS:
                if state != "exited" or c.get("ExitCode") != 0:
                    problems.append(f"{service}: {state} {c.get('ExitCode')}")
            elif state != "running" or health != "healthy":
                problems.append(f"{service}: {state} {health}")
        return problems

    def up(self, *services: str, timeout: float = 900) -> None:
        """`up -d`, then wait until every service is healthy and `migrate` exited 0."""
        with phase(f"{self.name} up {' '.join(services) or '(all)'}"):
            self._up(services, timeout)

    def _up(self, services: tuple[str, ...], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        # `up` gives up when a dependency is not healthy yet; on a busy host, ask again.
        while self.compose("up", "-d", "--no-build", *services,
                           check=time.monotonic() > deadline).returncode != 0:
            time.sleep(10)
        while True:
            problems = self.unhealthy()
            # A container that exited (migrate: with an error) will not become healthy.
            failed = [p for p in problems if ": exited" in p and not p.endswith(" 0")]
            if not problems:
                return
            if failed or time.monotonic() > deadline:
                logs = self.compose("logs", "--tail", "40", check=False).stdout
                raise AssertionError(f"stack {self.name} not healthy: {problems}\n{logs[-6000:]}")
            time.sleep(5)

    def down(self, volumes: bool = False) -> None:
        with phase(f"{self.name} down{' --volumes' if volumes else ''}"):
            self.compose("down", "--remove-orphans", *(["--volumes"] if volumes else []),
                         check=False, timeout=600)

    def hv(self, *args: str, key: bool = False,
           service: str = "jobs") -> subprocess.CompletedProcess[str]:
        """The runbook's `hv`: the platform's command line in a one-off `jobs` container
        (`superset-init` for `hv superset ...`: Superset's image, the role passwords'
        folder); with `key`, the backups' private key mounted at /run/key.txt for that run
        only."""
        mount = ["-v", f"{self.folder / 'backup-key.txt'}:/run/key.txt:ro"] if key else []
        with phase(f"{self.name} hv {' '.join(args[:2])}"):
            return self.compose("run", "--rm", "--no-deps", "-T", *mount, service,
                                "hypervision", *args)

    def psql(self, query: str) -> str:
        """One query as the database's superuser, in the timescaledb container."""
        return self.compose("exec", "-T", "-e",
                            f"PGPASSWORD={self.env['TIMESCALEDB_ADMIN_PASSWORD']}",
                            "timescaledb", "psql", "-X", "-q", "-A", "-t",
                            "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "hv_admin",
                            "-d", "hypervision", "-c", query,
                            ).stdout.strip()

    def uplinks(self, member: str = MEMBER) -> int:
        return int(self.psql(f"SELECT count(*) FROM tenant_{member}.uplinks"))

    def publish(self, count: int, member: str = MEMBER, rate: float = 0.0) -> int:
        """`count` uplinks of the member's devices, published to the stack's Mosquitto as
        ChirpStack would: account `chirpstack`, QoS 1, its topics and JSON; at most `rate`
        a second when given. Runs in a one-off platform container on the internal network
        (the simulator is in the image). Each is sent until the broker acknowledged it,
        through the broker's restarts (paho reconnects; the script publishes again)."""
        script = PUBLISHER.format(count=count, member=member, seed=secrets.randbits(32),
                                  pause=1 / rate if rate else 0.0)
        result = self.compose(
            "run", "--rm", "--no-deps", "-T", "-e",
            f"HV_PUBLISH_PASSWORD={self.env['CHIRPSTACK_MQTT_PASSWORD']}",
            "receiver", "python", "-", input=script)
        return int(result.stdout.strip().splitlines()[-1])

    def wait_for_uplinks(self, at_least: int, member: str = MEMBER,
                         timeout: float = 180) -> int:
        deadline = time.monotonic() + timeout
        while True:
            count = self.uplinks(member)
            if count >= at_least or time.monotonic() > deadline:
                return count
            time.sleep(2)


# Runs inside the platform's image (`python -`): the simulator, the member files of the
# image, paho-mqtt as the receiver uses it.
PUBLISHER = """
import os
import time
import paho.mqtt.client as mqtt
from hypervision.simulator import Simulator
from pathlib import Path
from hypervision.tenancy.spec import load_dir
from ingest.decode import Catalogue

sim = Simulator([s for s in load_dir(Path("/srv/hypervision/tenants")) if s.name == "{member}"],
                Catalogue.load(), seed={seed})
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="stand-in-chirpstack-{seed}",
                     protocol=mqtt.MQTTv311)
client.username_pw_set("chirpstack", os.environ["HV_PUBLISH_PASSWORD"])
client.connect("mosquitto", 1883, keepalive=30)
client.loop_start()
sent = 0
for topic, payload in sim.stream(total={count}, status_every=10**9):
    if topic.endswith("/event/up"):
        # As ChirpStack's client does: while the broker restarts, publish again once
        # reconnected (QoS 1, at least once: the pipeline stores a repeat once).
        while True:
            info = client.publish(topic, payload, qos=1)
            try:
                info.wait_for_publish(timeout=120)
            except RuntimeError:  # not connected: the broker is restarting
                time.sleep(0.5)
                continue
            if info.is_published():
                break
        sent += 1
        time.sleep({pause})
client.disconnect()
client.loop_stop()
print(sent)
"""

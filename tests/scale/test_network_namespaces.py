"""Workers and the receiver on hosts of their own, with members on two database servers:
nothing in the pipeline relies on loopback or on a Unix socket.

Each worker host is a Linux network namespace (tests/scale/netns.py) with addresses of
198.18.0.0/15 only. The services run in the root namespace and listen on addresses of that
range, never on loopback: the primary database server, Redis and Mosquitto on one, the
second database server on another. The receiver and a Celery worker run on one host,
another worker on the other, each given only the services' addresses, the servers file
and the worker's secrets folder; the folders of the servers' Unix sockets are hidden from
them. A host cannot reach the root namespace's loopback (the suite's own Redis there does
not answer it). Uplinks of a member on the primary (alpha) and of one on the second
server (kappa) are published through MQTT: each is stored once, on its member's server,
and counted `stored` once.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import redis
import yaml
from pydantic import SecretStr

from hypervision import daemons
from hypervision.settings import Settings
from tests.conftest import PORT_BASE, REPO, TENANTS, TEST_DATA, wait_for
from tests.pipeline.helpers import publish
from tests.scale.conftest import SCALE_TENANTS
from tests.scale.netns import Host, Network
from tests.scale.test_ingest_placement import ids_of, outcome_totals
from tests.scale.test_workers_and_moves import count_on

pytestmark = pytest.mark.services

# The services of this test, on the network's service addresses; the ports are the test
# run's own, apart from the suite's services (tests/conftest.py) and the second cluster of
# tests/scale/conftest.py.
PRIMARY_PORT = PORT_BASE + 442
SECOND_PORT = PORT_BASE + 443
REDIS_PORT = PORT_BASE + 389
MQTT_PORT = PORT_BASE + 893
FOLDER = TEST_DATA / "netns"
ADMIN_SECRETS = FOLDER / "admin"

# Run on a host: connect to an address and port, print the outcome, exit 1 on failure.
CONNECT = """\
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
except OSError as exc:
    print(type(exc).__name__, exc)
    sys.exit(1)
print("connected")
"""


@dataclass
class Stack:
    network: Network
    settings: Settings   # the test's own: the primary, Redis, Mosquitto, the servers file
    second: Settings     # the second server's cluster

    def environment(self, host: Host) -> dict[str, str]:
        """All a process on a worker host is given: the services' addresses, the servers
        file, the worker's secrets folder and a data folder of the host's own (holding
        no socket). Nothing comes from the test process's environment."""
        s = self.settings
        assert s.redis_password is not None and s.database_servers_file is not None
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": f"{REPO / 'platform'}:{REPO}",
            "HOME": str(FOLDER / host.name),
            "HV_DATA_DIR": str(FOLDER / host.name),
            "HV_PG_HOST": s.pg_host,
            "HV_PG_PORT": str(s.pg_port),
            "HV_PG_DATABASE": s.pg_database,
            "HV_DATABASE_SERVERS_FILE": str(s.database_servers_file),
            "HV_ROLE_SECRETS_DIR": str(s.role_secrets / "worker"),
            "HV_REDIS_HOST": s.redis_host,
            "HV_REDIS_PORT": str(s.redis_port),
            "HV_REDIS_PASSWORD": s.redis_password.get_secret_value(),
            "HV_MQTT_HOST": s.mqtt_host,
            "HV_MQTT_PORT": str(s.mqtt_port),
            "HV_MQTT_USERNAME": s.mqtt_username or "",
            "HV_MQTT_PASSWORD": s.mqtt_password.get_secret_value() if s.mqtt_password else "",
            "HV_MQTT_CLIENT_ID": f"{host.name}-receiver",
            "HV_BATCH_SIZE": "10",
            "HV_BATCH_MAX_WAIT": "0.2",
            "HV_BROKER_VISIBILITY_TIMEOUT": "5",
            "HV_RETRY_BACKOFF_MAX": "2",
        }

    def start(self, host: Host, *args: str) -> Path:
        """Start `hypervision ARGS` on a host, with the servers' socket folders and the
        superuser's secrets covered by empty folders in its own mount namespace (`ip
        netns exec` gives it one): a process there that tried a Unix socket, or the
        superuser's connection, would find none. Returns its log."""
        log = FOLDER / "log" / f"{host.name}-{args[0]}.log"
        hidden = [str(s.pg_socket_dir) for s in (self.settings, self.second)] + [
            str(ADMIN_SECRETS)]
        script = "".join(f"mount -t tmpfs -o size=1m hidden {d} && " for d in hidden)
        self.network.start(host, ["sh", "-c", f'{script}exec "$@"', "sh", sys.executable,
                                  "-m", "hypervision", *args],
                           self.environment(host), REPO, log)
        return log


@pytest.fixture
def stack(services: Settings) -> Iterator[Stack]:
    """The network, the services on its addresses, the members alpha (on the primary) and
    kappa (on the second server) applied; everything stopped and removed at the end,
    whatever happened."""
    from hypervision import daemons, migrate
    from hypervision.db import connect_admin
    from hypervision.tenancy import apply as tenancy
    from hypervision.tenancy.spec import load_dir
    from ingest.decode import Catalogue

    network = Network.for_port_base(PORT_BASE)
    main_address, second_address = network.services
    settings = services.model_copy(update={
        "data_dir": FOLDER / "primary", "role_secrets_dir": None,
        "pg_host": main_address, "pg_port": PRIMARY_PORT, "pg_shared_buffers": "128MB",
        "redis_host": main_address, "redis_port": REDIS_PORT,
        "redis_username": None, "redis_password": SecretStr(secrets.token_hex(16)),
        "mqtt_host": main_address, "mqtt_port": MQTT_PORT,
        "mqtt_username": "hypervision", "mqtt_password": SecretStr(secrets.token_hex(16)),
        "database_servers_file": FOLDER / "servers.yaml",
    })
    second = settings.model_copy(update={
        "data_dir": FOLDER / "second", "pg_host": second_address, "pg_port": SECOND_PORT,
        "database_servers_file": None})
    # A run killed half-way leaves its daemons running: their pid files name them.
    daemons.stop_all(settings)
    daemons.postgres.stop(second)
    shutil.rmtree(FOLDER, ignore_errors=True)
    for folder in (FOLDER / "log", *(FOLDER / h.name for h in network.hosts)):
        folder.mkdir(parents=True)
    FOLDER.chmod(0o755)
    try:
        network.create()
        daemons.start_all(settings)
        daemons.postgres.start(second)
        # The superuser's connection to the second server is a secret of the
        # operator's side, in a file the worker hosts do not see (Stack.start).
        ADMIN_SECRETS.mkdir(mode=0o700)
        (ADMIN_SECRETS / "second").write_text(second.admin_conninfo(), encoding="utf-8")
        (FOLDER / "servers.yaml").write_text(yaml.safe_dump({
            "version": "v1", "kind": "database_servers",
            "servers": [
                {"name": "main", "role": "primary"},
                {"name": "second", "role": "members", "host": second.pg_host,
                 "port": second.pg_port, "database": second.pg_database,
                 "admin_url_file": str(ADMIN_SECRETS / "second")},
            ],
        }), encoding="utf-8")
        specs = [s for s in load_dir(TENANTS) if s.name == "alpha"] + [
            s for s in load_dir(SCALE_TENANTS) if s.name == "kappa"]
        with connect_admin(settings) as conn:
            migrate.migrate_control(conn, log=lambda _: None)
            tenancy.apply(conn, specs, Catalogue.load(), settings, log=lambda _: None)
        yield Stack(network, settings, second)
    finally:
        try:
            network.destroy()
        finally:
            daemons.postgres.stop(second)
            daemons.stop_all(settings)


def connect_from(stack: Stack, host: Host, address: str, port: int) -> str:
    result = stack.network.run(host, [sys.executable, "-c", CONNECT, address, str(port)])
    return (result.stdout + result.stderr).strip()


def log_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def test_workers_on_other_hosts_store_each_uplink_once_on_its_members_server(
    stack: Stack, services: Settings
) -> None:
    from hypervision.simulator import Simulator
    from hypervision.tenancy.spec import load_dir
    from ingest.decode import Catalogue

    settings, network = stack.settings, stack.network
    first, other = network.hosts

    # The hosts have addresses of 198.18.0.0/15 besides their own loopback, and only
    # those; the root namespace's loopback is out of their reach: the suite's Redis
    # answers there from the root namespace, not from a host.
    for host in network.hosts:
        shown = network.run(host, ["ip", "-4", "-o", "addr", "show"]).stdout
        addresses = sorted(line.split()[3] for line in shown.splitlines())
        assert addresses == ["127.0.0.1/8", f"{host.address}/30"], shown
    assert redis.Redis(host="127.0.0.1", port=services.redis_port).ping()
    assert connect_from(stack, first, "127.0.0.1", services.redis_port).startswith(
        "ConnectionRefusedError")
    assert connect_from(stack, other, settings.redis_host, settings.redis_port) == "connected"
    # The test's services answer the hosts on their addresses, and are not on loopback.
    for address, port in ((settings.pg_host, settings.pg_port),
                          (stack.second.pg_host, stack.second.pg_port),
                          (settings.redis_host, settings.redis_port),
                          (settings.mqtt_host, settings.mqtt_port)):
        assert connect_from(stack, other, address, port) == "connected"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=3).close()

    # Off loopback the broker takes authenticated clients only (its password file holds
    # a hash), as the broker account of Redis does.
    assert daemons.mosquitto.answers(settings)
    refused: list[object] = []
    anonymous = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="anonymous-probe")
    anonymous.on_connect = lambda _c, _u, _f, reason, _p: refused.append(reason)
    anonymous.connect(settings.mqtt_host, settings.mqtt_port)
    deadline = time.monotonic() + 5
    while not refused and time.monotonic() < deadline:
        anonymous.loop(timeout=0.1)
    leftover = anonymous.socket()
    if leftover is not None:
        leftover.close()
    assert refused and refused[0].is_failure, refused

    receiver_log = stack.start(first, "receive", "--no-http")
    worker_logs = [stack.start(host, "worker", "--concurrency", "1", "--queues", "ingest")
                   for host in network.hosts]
    for process, host in zip(network.processes, [first, *network.hosts], strict=True):
        assert network.namespace_of(process.pid) == host.name
    wait_for(lambda: "subscribed to" in log_text(receiver_log), timeout=60,
             what=f"the receiver's subscription ({receiver_log})")
    wait_for(lambda: all("ready." in log_text(log) for log in worker_logs), timeout=90,
             what=f"the workers ({', '.join(map(str, worker_logs))})")

    seed = int(time.time() * 1000) % 100000
    specs = [s for s in load_dir(TENANTS) if s.name == "alpha"] + [
        s for s in load_dir(SCALE_TENANTS) if s.name == "kappa"]
    sim = Simulator(specs, Catalogue.load(), seed=seed)
    alpha = [sim.uplink(d) for _ in range(5) for d in sim.devices if d.member == "alpha"]
    kappa = [sim.uplink(d) for _ in range(8) for d in sim.devices if d.member == "kappa"]
    # Interleaved, so that batches hold members of both servers.
    publish(settings, [x for pair in itertools.zip_longest(alpha, kappa) for x in pair
                       if x is not None])

    wait_for(lambda: count_on(settings, None, "tenant_alpha", ids_of(alpha))[0]
             == len(alpha), timeout=120, what="alpha's uplinks on the primary")
    wait_for(lambda: count_on(settings, "second", "tenant_kappa", ids_of(kappa))[0]
             == len(kappa), timeout=120, what="kappa's uplinks on the second server")
    wait_for(lambda: sum(outcome_totals(settings, m).get("stored", 0)
                         for m in ("alpha", "kappa")) >= len(alpha) + len(kappa),
             timeout=60, what="the outcomes")
    time.sleep(2)  # nothing more may come: a second delivery would show here
    assert count_on(settings, None, "tenant_alpha", ids_of(alpha)) == (len(alpha), len(alpha))
    assert count_on(settings, "second", "tenant_kappa", ids_of(kappa)) == (
        len(kappa), len(kappa))
    assert outcome_totals(settings, "alpha") == {"stored": len(alpha)}
    assert outcome_totals(settings, "kappa") == {"stored": len(kappa)}
    # Neither member's rows are on the other's server.
    assert count_on(settings, "second", "tenant_kappa", ids_of(alpha)) == (0, 0)
    assert count_on(settings, None, "tenant_alpha", ids_of(kappa)) == (0, 0)
    # Both hosts' workers did part of the work.
    for log in worker_logs:
        assert "succeeded" in log_text(log), log

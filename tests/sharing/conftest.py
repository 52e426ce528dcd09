"""Fixtures of the sharing tests: commune A (two waste containers and a water meter) and
intercommunality B, A sharing its containers' fill level with B for a year from today,
applied for real by `tenants apply`, with an hour of measurements in A's schema."""

from __future__ import annotations

import datetime as dt
import getpass
import socket
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from hypervision.db import connect_admin
from hypervision.settings import Settings
from hypervision.tenancy import apply as tenancy
from hypervision.tenancy.spec import TenantSpec, check_together, load_dir, load_file
from ingest.decode import Catalogue
from tests.conftest import PORT_BASE, TENANTS, wait_for

HERE = Path(__file__).parent
T0 = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)
BINS = ("c0c0c0c0c0c00001", "c0c0c0c0c0c00002")
METER = "c0c0c0c0c0c00003"
SCHEMA = "share_commune_a__waste_to_epci"


@dataclass
class Story:
    settings: Settings
    specs: list[TenantSpec]

    def apply(self, specs: Sequence[TenantSpec] | None = None) -> list[str]:
        with connect_admin(self.settings) as conn:
            steps = tenancy.apply(conn, specs or self.specs, Catalogue.load(), self.settings,
                                  log=lambda _: None)
        return [str(s) for s in steps]


def a_year_from_today(spec: TenantSpec) -> TenantSpec:
    today = dt.datetime.now(dt.UTC).date()
    shares = [s.model_copy(update={"starts": today, "ends": today + dt.timedelta(days=365)})
              for s in spec.shares]
    return spec.model_copy(update={"shares": shares})


def insert_measurements(conn: psycopg.Connection) -> None:
    """An hour of fill levels from both bins and of index from the meter, one a minute."""
    rows = []
    for minute in range(60):
        at = T0 + dt.timedelta(minutes=minute)
        for eui in BINS:
            rows.append((at, eui, "fill.level", float(minute), "%", uuid.uuid4()))
            rows.append((at, eui, "temperature", 12.5, "°C", uuid.uuid4()))
        rows.append((at, METER, "water.index", 1000.0 + minute, "m3", uuid.uuid4()))
    with conn.cursor() as cur:
        cur.executemany(sql.SQL(
            "INSERT INTO {} (time, dev_eui, metric, value, unit, deduplication_id)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
        ).format(sql.Identifier("tenant_commune_a", "measurements")), rows)


@pytest.fixture(scope="session")
def story(platform_db: Settings) -> Story:
    specs = [*load_dir(TENANTS), *(a_year_from_today(load_file(p))
                                   for p in sorted((HERE / "tenants").glob("*.yaml")))]
    result = Story(platform_db, check_together(specs))
    result.apply()
    with connect_admin(platform_db) as conn:
        insert_measurements(conn)
    return result


@dataclass
class SftpServer:
    """A real OpenSSH server (Debian's sshd) on a test port, accepting the platform's
    delivery key for the current user; files land in `root`."""

    host: str
    port: int
    user: str
    host_key: str
    root: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def sftp_server(platform_db: Settings) -> Iterator[SftpServer]:
    from hypervision.sharing.deliveries import public_key

    base = platform_db.data_dir / "sshd"
    base.mkdir(mode=0o700, exist_ok=True)
    root = base / "inbox"
    root.mkdir(exist_ok=True)
    host_key = base / "ssh_host_ed25519_key"
    if not host_key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)],
                       check=True)
    authorized = base / "authorized_keys"
    authorized.write_text(public_key(platform_db) + "\n")
    authorized.chmod(0o600)
    port = PORT_BASE + 22
    config = base / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"PidFile {base / 'sshd.pid'}\nAuthorizedKeysFile {authorized}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\n"
        "Subsystem sftp internal-sftp\nLogLevel VERBOSE\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    log = open(base / "sshd.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return process.poll() is not None

    wait_for(listening, what="sshd listening")
    assert process.poll() is None, (base / "sshd.log").read_text()
    server = SftpServer("127.0.0.1", port, getpass.getuser(),
                        host_key.with_suffix(".pub").read_text().strip(), root, process)
    try:
        yield server
    finally:
        server.stop()

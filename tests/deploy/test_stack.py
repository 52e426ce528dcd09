"""docker-compose.yml started for real: every image built from Debian's archive
(infra/docker/images.sh), the stack brought up as docs/runbook.md says, an uplink
followed from Mosquitto to a member's table, the API and Superset through the TLS proxy,
`down`/`up`, a backup restored into a fresh stack.

The stack is first the previous release's (docs/runbook.md, "Upgrade"): its tree comes
out of git (`git archive`: the newest `v*` tag before HEAD, or while there is none, the
commit named in infra/docker/previous-release); its images are built (its code, pins and
compose file, with this tree's Dockerfiles and images.sh), its data path started and
uplinks ingested. Then this tree's images and `docker compose up -d` on the same project
and volumes, as an operator does after `git checkout <new tag>`; the first test checks
that nothing was lost, and every later one runs on that upgraded stack. One stack for
all, because each first start costs minutes (CI runs these on every change).

ChirpStack's own images cannot be fetched here: its services stay behind the
`chirpstack` profile, and the simulator stands in for it, publishing to the stack's
Mosquitto with ChirpStack's account. The tests run in order and share the stack (a
module fixture), whose project name (`hvtest-<port base>`) never collides with a real
deployment's; it is removed with its volumes at the end, failed or not. Each phase's time
is written to `<HV_TEST_DATA_DIR>-stack/stack-phases.log`.

Needs root (or a running Docker engine): infra/docker/engine.sh installs Docker and
Compose v2 from Debian's archive and starts the engine; without either the tests fail,
they never skip. Marked `docker`: `bash infra/compose-test.sh` runs these alone.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PORT_BASE, TEST_DATA
from tests.deploy.stack import DOCKER_ENV, HOSTS, MEMBER, REPO, ImagesBuild, Stack, phase

pytestmark = [pytest.mark.docker, pytest.mark.slow]
# What the runbook stops before a full restore.
WRITERS = ("receiver", "worker", "jobs", "beat", "api", "superset")
# What the runbook starts on a new server before a full restore.
RESTORE_FIRST = ("jobs",)
# The previous release: the services started, the images built from its tree.
DATA_PATH = ("timescaledb", "redis", "mosquitto", "migrate", "receiver", "worker")
UPGRADED = ("timescaledb", "redis", "mosquitto", "migrate")
# This tree's image recipes, used for the previous release's tree too: what did not
# change comes from the build cache (the TimescaleDB and Redis images, the wheelhouse).
RECIPES = ("infra/docker/Dockerfile", "infra/docker/Dockerfile.dockerignore",
           "infra/docker/timescaledb/Dockerfile")


def run(*command: str, timeout: float = 3600, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                            env={**DOCKER_ENV, **(env or {})}, check=False)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout[-4000:]}\n" \
                                   f"{result.stderr[-4000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def images() -> None:
    """Docker from Debian (as root), then every image of the stack; a second run reuses
    the images and Docker's build cache. Usually built in the background since the
    session started (ImagesBuild): then this waits for it, and checks again (seconds)."""
    ImagesBuild.wait()
    if os.geteuid() == 0:
        with phase("engine"):
            run("bash", str(REPO / "infra" / "docker" / "engine.sh"), timeout=900)
    elif subprocess.run(["docker", "info"], capture_output=True, env=DOCKER_ENV,
                        check=False).returncode != 0:
        # Never a skip: CI runs these tests, and a machine that cannot must say so.
        pytest.fail("no Docker engine, and not root to install one (infra/docker/engine.sh)")
    with phase("images"):
        run("bash", str(REPO / "infra" / "docker" / "images.sh"))


@dataclass
class Upgraded:
    """The stack after the upgrade, and what the previous release had stored."""

    stack: Stack
    rows: int
    control_migrations: set[int]


def previous_release() -> str:
    """The ref of the previous release (see the module's docstring)."""
    if not (REPO / ".git").exists():
        pytest.fail("the upgrade needs the repository's git history (a full clone)")
    described = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--tags", "--abbrev=0", "--match", "v*", "HEAD^"],
        capture_output=True, text=True, check=False)
    if described.returncode == 0:
        return described.stdout.strip()
    lines = (REPO / "infra" / "docker" / "previous-release").read_text().splitlines()
    named = next(line.strip() for line in lines if line.strip() and not line.startswith("#"))
    if subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{named}^{{commit}}"],
                      capture_output=True, check=False).returncode != 0:
        pytest.fail(f"infra/docker/previous-release names {named}, which this clone does not"
                    " have (a shallow clone, or a history rewritten since): name a commit of"
                    " main, or tag the release")
    return named


def previous_tree(folder: Path) -> Path:
    """The previous release's files, with this tree's image recipes (RECIPES)."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar",
                              previous_release()], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    for recipe in RECIPES:
        shutil.copyfile(REPO / recipe, folder / recipe)
    return folder


def pins(tree: Path) -> set[str]:
    """A tree's Python requirements and pinned versions (the platform's and Superset's)."""
    with (tree / "pyproject.toml").open("rb") as f:
        found = {f"dependency {d}" for d in tomllib.load(f)["project"]["dependencies"]}
    for lock in ("infra/requirements.lock", "infra/superset/requirements.lock",
                 "infra/superset/requirements.in"):
        lines = (tree / lock).read_text(encoding="utf-8").splitlines()
        found |= {f"{lock} {line.strip()}" for line in lines
                  if line.strip() and not line.startswith("#")}
    return found


def migrations(stack: Stack, track: str) -> set[int]:
    """The versions of one track applied in the stack's database (any schema)."""
    out = stack.psql("SELECT DISTINCT version FROM hv.schema_migrations"
                     f" WHERE track = '{track}'")
    return {int(v) for v in out.split()}


def shipped(track: str) -> set[int]:
    """The versions of one track in this tree."""
    folder = REPO / "platform" / "hypervision" / "migrations" / track
    return {int(f.name[:4]) for f in folder.iterdir() if f.name[:4].isdigit()}


@pytest.fixture(scope="module")
def upgraded(images: None) -> Iterator[Upgraded]:
    """The previous release's data path with uplinks in it, then docs/runbook.md's
    upgrade: this tree's images, `.env` completed, `docker compose up -d`."""
    folder = TEST_DATA / "stack"
    shutil.rmtree(folder, ignore_errors=True)
    tree = previous_tree(folder / "previous")
    s = Stack(name=f"hvtest-{PORT_BASE}", folder=folder, port_base=PORT_BASE,
              project_dir=tree)
    s.write_env()
    s.down(volumes=True)
    try:
        # This tree's wheelhouse serves when it holds every wheel the previous one pins.
        wheels = {"HV_WHEELS_ROOT": str(REPO)} if pins(tree) <= pins(REPO) else {}
        with phase("previous release's images"):
            run("bash", str(REPO / "infra" / "docker" / "images.sh"), *UPGRADED,
                env={"HV_BUILD_ROOT": str(tree), **wheels})
        s.up(*DATA_PATH)
        sent = s.publish(8)
        rows = s.wait_for_uplinks(sent)
        assert rows == sent
        before = migrations(s, "control")
        # The operator's upgrade: this tree's images, then `up` on the same volumes.
        s.compose("down")
        with phase("this release's images again"):
            run("bash", str(REPO / "infra" / "docker" / "images.sh"), *UPGRADED)
        s.project_dir = REPO
        # `.env` gets the variables this release requires and the previous did not.
        s.write_env(s.env)
        s.up()
        yield Upgraded(s, rows, before)
    finally:
        s.down(volumes=True)


@pytest.fixture(scope="module")
def stack(upgraded: Upgraded) -> Stack:
    return upgraded.stack


def curl(stack: Stack, host: str, path: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """A request to the proxy over TLS, by name (SNI), trusting the test's certificate."""
    return subprocess.run(
        ["curl", "-sS", "--max-time", "60", "--cacert", str(stack.folder / "tls" / "fullchain.pem"),
         "--resolve", f"{host}:{stack.https_port}:127.0.0.1", *extra,
         f"https://{host}:{stack.https_port}{path}"],
        capture_output=True, text=True, check=False, timeout=90)


def test_an_upgrade_from_the_previous_release_loses_nothing(upgraded: Upgraded) -> None:
    stack = upgraded.stack
    assert stack.uplinks() == upgraded.rows
    # docs/runbook.md, "Upgrade", step 5: the audit trail's chain is whole.
    stack.hv("audit", "verify")
    # Every migration of this tree is applied, those of the previous release included.
    assert upgraded.control_migrations <= migrations(stack, "control") == shipped("control")
    # A release may retire a numbered file (views moved to migrations/tenant/views/):
    # what it applied stays recorded.
    assert shipped("tenant") <= migrations(stack, "tenant")
    more = stack.publish(4)
    assert stack.wait_for_uplinks(upgraded.rows + more) == upgraded.rows + more


def test_every_service_of_the_stack_is_healthy(stack: Stack) -> None:
    services = {c["Service"] for c in stack.containers()}
    assert {"proxy", "mosquitto", "timescaledb", "redis", "migrate", "receiver", "worker",
            "jobs", "beat", "api", "superset"} <= services
    assert stack.unhealthy() == []
    # Nothing of ChirpStack's profile runs: its images are not here.
    assert not services & {"chirpstack", "chirpstack-postgres", "chirpstack-gateway-bridge"}


def test_the_stack_runs_on_the_benchmarking_range_only(stack: Stack) -> None:
    networks = run("docker", "network", "ls", "--filter", f"label=com.docker.compose.project="
                   f"{stack.name}", "--format", "{{.Name}}").split()
    assert networks
    for network in networks:
        subnet = run("docker", "network", "inspect", network, "--format",
                     "{{range .IPAM.Config}}{{.Subnet}} {{end}}").split()
        assert subnet and all(s.startswith(("198.18.", "198.19.")) for s in subnet), network


def test_an_uplink_published_through_mosquitto_reaches_the_members_table(stack: Stack) -> None:
    before = stack.uplinks()
    sent = stack.publish(6)
    assert sent == 6
    assert stack.wait_for_uplinks(before + sent) == before + sent


def kill_main_process(stack: Stack, service: str) -> None:
    """A crash, not a stop: SIGKILL to the container's main process from the host, so
    that Docker's restart policy (not a person) brings it back."""
    container = stack.compose("ps", "-q", service).stdout.split()[0]
    pid = int(run("docker", "inspect", "--format", "{{.State.Pid}}", container).strip())
    os.kill(pid, signal.SIGKILL)


# What is restarted during ingestion, and how: `docker compose restart` (a stop and a
# start, as an operator or an update does), or a crash of the main process.
RESTARTS = (("redis", "restart"), ("timescaledb", "restart"), ("mosquitto", "restart"),
            ("worker", "crash"), ("receiver", "crash"))


@pytest.mark.parametrize(("service", "how"), RESTARTS, ids=[s for s, _ in RESTARTS])
def test_a_service_restarted_during_ingestion_loses_nothing_and_needs_nobody(
    stack: Stack, service: str, how: str
) -> None:
    """Uplinks published at 40 a second while a service of the data path restarts or
    crashes: every uplink is stored once, and the stack is healthy again by itself (the
    restart policies of docker-compose.yml; the workers, receiver and beat reconnect)."""
    before = stack.uplinks()
    with ThreadPoolExecutor(1) as pool:
        sending = pool.submit(stack.publish, 400, MEMBER, 40.0)
        # Once the stream flows through to the member's table, in its middle:
        assert stack.wait_for_uplinks(before + 20, timeout=120) >= before + 20
        with phase(f"{stack.name} {how} {service} during ingestion"):
            if how == "crash":
                kill_main_process(stack, service)
            else:
                stack.compose("restart", service, timeout=300)
        sent = sending.result(timeout=600)
    assert sent == 400
    assert stack.wait_for_uplinks(before + sent, timeout=300) == before + sent
    # None doubled: one row per uplink (the count above is of rows, exactly the number
    # sent), and the stack healthy without a hand on it.
    deadline = time.monotonic() + 300
    while (problems := stack.unhealthy()) and time.monotonic() < deadline:
        time.sleep(5)
    assert problems == []
    assert stack.uplinks() == before + sent


def test_the_api_answers_through_the_proxy_over_tls(stack: Stack) -> None:
    response = curl(stack, HOSTS["PLATFORM_HOSTNAME"], "/api/v1/health", "-i")
    assert response.returncode == 0, response.stderr
    head = response.stdout.partition("\r\n\r\n")[0]
    assert head.startswith("HTTP/2 200") or head.startswith("HTTP/1.1 200"), head
    assert "strict-transport-security" in head.lower()
    # An unknown name gets no certificate at all.
    stranger = subprocess.run(
        ["curl", "-sS", "-k", "--max-time", "20", "--resolve",
         f"other.example:{stack.https_port}:127.0.0.1",
         f"https://other.example:{stack.https_port}/"],
        capture_output=True, text=True, check=False)
    assert stranger.returncode != 0


def test_superset_serves_a_members_dashboard_through_the_proxy(stack: Stack) -> None:
    """`hv superset apply` provisions the members' dashboards; Superset's API, through the
    proxy over TLS, lists the member's dashboard and serves its charts."""
    stack.hv("superset", "apply", service="superset-init")
    said = stack.hv("superset", "password", "admin", "--yes", service="superset-init").stdout
    password = said.strip().rsplit(": ", 1)[-1]
    host = HOSTS["DASHBOARDS_HOSTNAME"]
    login = curl(stack, host, "/api/v1/security/login", "-H", "Content-Type: application/json",
                 "--data", json.dumps({"username": "admin", "password": password,
                                       "provider": "db", "refresh": False}))
    assert login.returncode == 0, login.stderr
    token = json.loads(login.stdout)["access_token"]
    auth = ("-H", f"Authorization: Bearer {token}")
    listed = json.loads(curl(stack, host, "/api/v1/dashboard/?q=(page_size:100)", *auth).stdout)
    mine = [d for d in listed["result"] if MEMBER in (d.get("slug") or "")
            or "Aven-Odet" in d["dashboard_title"]]
    assert mine, [d["dashboard_title"] for d in listed["result"]]
    charts = json.loads(curl(stack, host, f"/api/v1/dashboard/{mine[0]['id']}/charts",
                             *auth).stdout)
    assert charts["result"], charts
    page = curl(stack, host, f"/superset/dashboard/{mine[0]['id']}/", "-o", "/dev/null",
                "-w", "%{http_code}")
    # Without a session the page sends to the login form: served by Superset, through TLS.
    assert page.stdout in {"200", "302"}, page.stdout


def test_down_and_up_lose_nothing(stack: Stack) -> None:
    before = stack.uplinks()
    assert before > 0
    stack.compose("down")
    stack.up()
    assert stack.uplinks() == before
    sent = stack.publish(3)
    assert stack.wait_for_uplinks(before + sent) == before + sent


def test_a_backup_restores_into_a_fresh_stack(stack: Stack) -> None:
    """docs/runbook.md, "Backups and restore", step by step: `hv backup run` in the `jobs`
    service (encrypted for the key of HV_BACKUP_AGE_RECIPIENTS), the archive copied off
    the host, the stack and its volumes destroyed (the server is lost), a fresh stack
    started, the archive copied in, the writers stopped, `hv backup restore --identity`
    with the private key mounted for that run only, `docker compose up -d`: the member's
    rows are all there."""
    rows = stack.uplinks()
    assert rows > 0
    made = stack.hv("backup", "run").stdout
    archive = re.findall(r"\d{8}T\d{6}Z-full", made)[-1]
    offsite = stack.folder / "offsite"
    shutil.rmtree(offsite, ignore_errors=True)
    offsite.mkdir()
    stack.compose("cp", f"jobs:/var/backups/hypervision/{archive}", str(offsite))
    assert (offsite / archive / "manifest.json").is_file()
    # Encrypted at rest: the member's rows are not readable in the copy.
    manifest = json.loads((offsite / archive / "manifest.json").read_text())
    assert manifest["encryption"], manifest.keys()
    assert list((offsite / archive).rglob("*.age"))
    assert not list((offsite / archive).rglob("*.copy.gz"))

    stack.down(volumes=True)
    # A new server: only what the restore needs (the database, the broker, `migrate`,
    # `jobs`); Superset's first set-up would be replaced by the archive's anyway.
    stack.up(*RESTORE_FIRST)
    assert stack.uplinks() == 0
    # `docker compose cp` keeps the files' owner: the platform's user (uid 10001) must
    # own them to read them in the container.
    for path in [offsite / archive, *(offsite / archive).rglob("*")]:
        os.chown(path, 10001, 10001)
    stack.compose("cp", str(offsite / archive), "jobs:/var/backups/hypervision/")
    stack.compose("stop", *WRITERS)
    # Without the private key nothing is restored; with it, everything.
    refused = stack.compose("run", "--rm", "--no-deps", "-T", "jobs", "hypervision", "backup",
                            "restore", archive, "--yes", check=False)
    assert refused.returncode != 0
    stack.hv("backup", "restore", archive, "--identity", "/run/key.txt", "--yes", key=True)
    stack.up()
    assert stack.uplinks() == rows
    stack.hv("audit", "verify")
    sent = stack.publish(2)
    assert stack.wait_for_uplinks(rows + sent) == rows + sent

"""The first README command's main job: `hypervision demo` on the embedded default, in a
data folder and on ports of its own, as a new user would run it: it backfills a history
through the real pipeline, says it is ready, and then every chart of every example
member's dashboards has data, as that member's user sees them in a browser.

The demo runs once for the module (HV_TEST_DEMO_HISTORY_DAYS days of history, 16 unless
told: the full month of `hypervision demo` takes minutes more on a busy machine, and 16
days fill every chart, the abnormal days, which need 14 days of a meter's history,
included). Whatever happens, the fixture stops the demo, its
Superset and its services at the end.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hypervision.analytics import health, members
from hypervision.settings import Settings
from tests.conftest import PORT_BASE, TEST_DATA

REPO = Path(__file__).resolve().parents[1]
# Ports of their own within the run's range (PORT_BASE + 0..999: two runs at once use
# bases 1000 apart), away from the session's services and from a demo running with the
# defaults on the same machine (checked below).
PORTS = {"HV_PG_PORT": PORT_BASE + 632, "HV_REDIS_PORT": PORT_BASE + 579,
         "HV_MQTT_PORT": PORT_BASE + 683, "HV_HTTP_PORT": PORT_BASE + 690,
         "HV_SUPERSET_PORT": PORT_BASE + 688, "HV_API_PORT": PORT_BASE + 670}
HISTORY_DAYS = float(os.environ.get("HV_TEST_DEMO_HISTORY_DAYS", "16"))
PASSWORD = "Mot-de-passe-de-demo-1"
ARTEFACTS = REPO / "tests" / "superset" / "artefacts" / "demo"

pytestmark = [pytest.mark.services, pytest.mark.slow]


@dataclass
class Demo:
    """A running `hypervision demo` and what it printed so far."""

    process: subprocess.Popen[str]
    settings: Settings
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output)
            if found:
                return found
            if self.process.poll() is not None:
                time.sleep(0.5)  # the reader thread's last lines
                found = re.search(pattern, self.output)
                if found:
                    return found
                pytest.fail(f"the demo ended ({self.process.returncode}) before printing"
                            f" {pattern!r}:\n{self.output[-4000:]}")
            time.sleep(0.5)
        pytest.fail(f"no {pattern!r} from the demo after {timeout:.0f}s:\n{self.output[-4000:]}")


def platform_url() -> str:
    """The demo's console, where people sign in (Superset's sign-in goes there)."""
    return f"http://127.0.0.1:{PORTS['HV_API_PORT']}"


def demo_environment(data: Path) -> dict[str, str]:
    # The tests sign in as every example user, one after another from one address, within
    # minutes: more than the sign-in limiter lets one address try (HV_API_LOGIN_ATTEMPTS).
    return dict(os.environ, HV_DATA_DIR=str(data), HV_TENANTS_DIR=str(REPO / "tenants"),
                HV_MQTT_CLIENT_ID="hypervision-demo-test", COLUMNS="120",
                HV_API_LOGIN_ATTEMPTS="1000", **{k: str(v) for k, v in PORTS.items()})


def stop_everything(env: dict[str, str]) -> None:
    """What the demo may have left running in its folder: Superset, then the services."""
    for command in (["superset", "stop"], ["services", "stop"]):
        subprocess.run([sys.executable, "-m", "hypervision", *command], env=env, cwd=REPO,
                       capture_output=True, timeout=180, check=False)


def interrupt(process: subprocess.Popen[str], timeout: float = 180) -> None:
    """Ctrl-C, as a user stops the demo; SIGKILL to its group if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    data = TEST_DATA.with_name(TEST_DATA.name + "-demo")
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(mode=0o755)
    env = demo_environment(data)
    settings = Settings(data_dir=data, tenants_dir=REPO / "tenants",
                        pg_port=PORTS["HV_PG_PORT"], redis_port=PORTS["HV_REDIS_PORT"],
                        mqtt_port=PORTS["HV_MQTT_PORT"], http_port=PORTS["HV_HTTP_PORT"],
                        superset_port=PORTS["HV_SUPERSET_PORT"], api_port=PORTS["HV_API_PORT"])
    process = subprocess.Popen(
        [sys.executable, "-m", "hypervision", "demo", "--rate", "20", "--stop-all",
         "--history-days", str(HISTORY_DAYS)],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    running = Demo(process, settings)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            running.lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield running
    finally:
        interrupt(process)
        reader.join(10)
        stop_everything(env)


def test_the_test_ports_never_collide_with_a_demo_running_on_the_defaults() -> None:
    defaults = Settings.model_fields
    taken = {defaults[name].default for name in
             ("pg_port", "redis_port", "mqtt_port", "http_port", "superset_port", "api_port")}
    session = {int(os.environ[name]) for name in
               ("HV_PG_PORT", "HV_REDIS_PORT", "HV_MQTT_PORT", "HV_HTTP_PORT",
                "HV_SUPERSET_PORT")}
    demo = set(PORTS.values())
    assert not taken & (session | demo)
    assert not session & demo
    assert all(PORT_BASE <= port < PORT_BASE + 1000 for port in session | demo)


def test_the_demo_backfills_its_history_through_the_pipeline_before_it_is_ready(
        demo: Demo) -> None:
    from hypervision.db import connect_admin

    ready = demo.wait_for(r"ready: dashboards at (http://\S+) \(sign in as (\S+) / (\S+)\)",
                          timeout=1500)
    assert ready.group(1).endswith(f":{PORTS['HV_SUPERSET_PORT']}")
    # The account printed signs in through the platform, and Superset lets it in.
    from hypervision.superset import Client

    with Client.through_platform(ready.group(1), platform_url(), ready.group(2),
                                 ready.group(3)) as client:
        assert client.get("/api/v1/me/")["result"]["username"] == ready.group(2)
    assert "tenants applied: aven_odet, kerbihan, locmaria, syndicat" in demo.output
    history = re.search(r"history: (\d+) events of (\d+) devices", demo.output)
    assert history, demo.output[-3000:]
    events, devices = map(int, history.groups())
    # Every example device has a model the simulator can encode.
    declared = sum(f.read_text(encoding="utf-8").count("dev_eui:")
                   for f in (REPO / "tenants").glob("*.yaml"))
    assert devices == declared
    # An uplink every ten to twenty minutes per device over the period, give or take.
    assert events > devices * HISTORY_DAYS * 24 * 2
    assert re.search(rf"history: {events} events in \d+s\n", demo.output), demo.output[-3000:]
    with connect_admin(demo.settings) as conn:
        outcomes = dict(conn.execute(
            "SELECT outcome, sum(events) FROM hv.ingest_outcomes GROUP BY outcome"
        ).fetchall())
        assert sum(outcomes.values()) >= events
        assert set(outcomes) == {"stored"}, outcomes
        # The operator's uplinks per member and day: the history counts on its own days
        # (when the network received it), not on the day the backfill processed it.
        per_day = dict(conn.execute(
            "SELECT day, sum(events) FROM hv_operator.events_per_member_day"
            " WHERE event_type = 'up' AND outcome = 'stored' GROUP BY day").fetchall())
        assert len(per_day) >= HISTORY_DAYS, per_day
        for slug in ("aven_odet", "kerbihan", "locmaria", "syndicat"):
            schema = f"tenant_{slug}"
            first, last, devices_heard = conn.execute(
                f"SELECT min(time), max(time), count(DISTINCT dev_eui) FROM {schema}.uplinks"
            ).fetchone()
            assert devices_heard == 8
            assert (last - first).total_seconds() > (HISTORY_DAYS - 0.2) * 86400
            # The refresh ran before "ready": the derived tables hold the history.
            days = conn.execute(
                f"SELECT count(DISTINCT day) FROM {schema}.water_daily").fetchone()[0]
            assert days >= HISTORY_DAYS
            assert conn.execute(
                f"SELECT count(*) FROM {schema}.waste_collections").fetchone()[0] > 0
            # The night leak of the first meter, the reverse flow of the second.
            kinds = {k for (k,) in conn.execute(
                f"SELECT DISTINCT kind FROM {schema}.water_events")}
            assert "backflow" in kinds, kinds
            # One sensor has gone silent, one battery is running down.
            found = health.devices(conn, schema, dt.datetime.now(dt.UTC),
                                   members.settings_of(conn, schema).health)
            assert (sum(d.silent for d in found), sum(d.battery_low for d in found)) == (1, 1)
            # Silences are never negative, however the clocks of the gateways compare.
            assert conn.execute(
                f"SELECT count(*) FROM {schema}.dash_gateways WHERE hours_silent < 0"
                f" OR heard_until > now() AT TIME ZONE 'Europe/Paris'").fetchone()[0] == 0
            assert conn.execute(
                f"SELECT count(*) FROM {schema}.dash_device_health"
                f" WHERE hours_since_seen < 0").fetchone()[0] == 0


def test_every_chart_of_every_example_members_dashboards_has_data(demo: Demo) -> None:
    """Generic: every dashboard Superset lists for each example member's user, every chart
    on it (from Superset's API), rendered in Chromium and answered with rows by the chart
    data API. Screenshots are kept under tests/superset/artefacts/demo/."""
    from hypervision import accounts
    from hypervision.db import connect_admin
    from hypervision.superset import Client, server
    from tests.superset.browser import charts_without_rows, problems, screenshots

    demo.wait_for(r"ready: dashboards at", timeout=1500)
    shutil.rmtree(ARTEFACTS, ignore_errors=True)
    base = server.url(demo.settings)
    empty: dict[str, object] = {}
    seen = 0
    who = accounts.Who("system:test-demo")
    for slug in ("aven_odet", "kerbihan", "locmaria", "syndicat"):
        # A platform account of the member, reading only: it signs in to Superset through
        # the platform, as every person does.
        user = f"agent-{slug}@example.org"
        with connect_admin(demo.settings) as conn:
            accounts.upsert_account(conn, who, email=user, name=f"Agent {slug}", member=slug,
                                    rights=["read"])
            accounts.set_password(conn, who, user, PASSWORD)
        with Client.through_platform(base, platform_url(), user, PASSWORD) as client:
            dashboards = client.get("/api/v1/dashboard/", q="(page_size:100)")["result"]
            charts = {
                d["slug"]: {c["id"]: c["slice_name"] for c in
                            client.get(f"/api/v1/dashboard/{d['id']}/charts")["result"]}
                for d in dashboards
            }
        assert charts, f"{user} sees no dashboard"
        assert all(name.startswith(f"{slug}-") for name in charts), sorted(charts)
        report = screenshots(base, user, PASSWORD, sorted(charts), ARTEFACTS)
        assert [r["dashboard"] for r in report] == sorted(charts)
        for entry in report:
            seen += 1
            missing = charts_without_rows(entry, charts[entry["dashboard"]])
            if missing:
                empty[entry["dashboard"]] = missing
        if problems(report):
            empty.update({f"{k} (in the browser)": v for k, v in problems(report).items()})
    assert empty == {}
    assert seen >= 16  # four members, at least water, waste, air and health each


def test_the_operators_dashboard_of_the_demo_has_data_on_every_chart(demo: Demo) -> None:
    """The syndicate's operator (second factor enrolled, signing in with a recovery code)
    opens the network's dashboard: every chart answers with rows; its screenshot is kept
    with the members' ones."""
    import pyotp

    from hypervision import accounts, mfa
    from hypervision.db import connect_admin
    from hypervision.superset import Client, server
    from tests.superset.browser import charts_without_rows, problems, screenshots

    demo.wait_for(r"ready: dashboards at", timeout=1500)
    base = server.url(demo.settings)
    user, secret = "operateur@syndicat.example.org", pyotp.random_base32()
    # Enrolled once per demo: the module's demo is a fresh one.
    who = accounts.Who("system:test-demo")
    with connect_admin(demo.settings) as conn:
        accounts.upsert_account(conn, who, email=user, name="Opérateur", member="syndicat",
                                rights=["read"], operator=True)
        accounts.set_password(conn, who, user, PASSWORD)
        account = accounts.get_account(conn, user)
        assert account is not None
        if not account.mfa_enrolled:
            assert mfa.enrol(conn, who, account, secret, pyotp.TOTP(secret).now())
            account = accounts.get_account(conn, user)
            assert account is not None
        codes = mfa.new_recovery_codes(conn, who, account)
    with Client.through_platform(base, platform_url(), user, PASSWORD,
                                 code=lambda: codes[1]) as client:
        dashboards = client.get("/api/v1/dashboard/", q="(page_size:100)")["result"]
        charts = {d["slug"]: {c["id"]: c["slice_name"] for c in
                              client.get(f"/api/v1/dashboard/{d['id']}/charts")["result"]}
                  for d in dashboards}
    assert "operator" in charts, sorted(charts)
    report = screenshots(base, user, PASSWORD, ["operator"], ARTEFACTS, codes=[codes[0]])
    assert problems(report) == {}
    assert charts_without_rows(report[0], charts["operator"]) == {}


def test_ctrl_c_stops_the_demo_its_superset_and_its_services(demo: Demo) -> None:
    demo.wait_for(r"ready: dashboards at", timeout=1500)
    demo.wait_for(r"simulating \d+ devices", timeout=60)
    time.sleep(5)  # some live events
    interrupt(demo.process)
    assert demo.process.returncode == 0, demo.output[-3000:]
    final = demo.wait_for(r"published (\d+) live events; stored (\d+) uplinks in all,"
                          r" (\d+) dead letters", timeout=10)
    published, stored, dead = map(int, final.groups())
    assert published > 0
    assert stored > published
    assert dead == 0
    for port in PORTS.values():
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"


def test_a_demo_that_cannot_start_stops_what_it_started() -> None:
    """Superset's port is taken (by a demo running on the same port, say): the demo says
    so and exits, and the PostgreSQL, Redis and Mosquitto it started are stopped."""
    data = TEST_DATA.with_name(TEST_DATA.name + "-demo-fails")
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(mode=0o755)
    env = demo_environment(data)
    ports = {k: v + 100 for k, v in PORTS.items()}
    env.update({k: str(v) for k, v in ports.items()})
    try:
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", ports["HV_SUPERSET_PORT"]))
            squatter.listen()
            done = subprocess.run(
                [sys.executable, "-m", "hypervision", "demo", "--history-days", "0",
                 "--duration", "1"],
                env=env, cwd=REPO, capture_output=True, text=True, timeout=600,
            )
        assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
        assert f"127.0.0.1:{ports['HV_SUPERSET_PORT']}" in done.stderr
        assert "Traceback" not in done.stderr
        assert "stopped before the demo was ready" in done.stdout
        for port in (ports["HV_PG_PORT"], ports["HV_REDIS_PORT"], ports["HV_MQTT_PORT"]):
            with socket.socket() as s:
                assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"
    finally:
        stop_everything(env)
        shutil.rmtree(data, ignore_errors=True)

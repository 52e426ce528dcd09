"""The reverse proxy's configuration (infra/docker/nginx/), served by a real nginx.

The template is rendered as the nginx image renders it (environment variables in place
of ${NAME}), with three changes so that it runs here without Docker: loopback ports
instead of 80/443/8081, a local stand-in for the upstreams instead of the compose
services' names, and files under a temporary folder instead of /etc/nginx. On an nginx
older than 1.25.1 (Debian 12 ships 1.22), `http2 on;` is dropped: that directive did not
exist yet, and HTTP/2 plays no part in what is checked here.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import PORT_BASE, TEST_DATA

NGINX_DIR = Path(__file__).resolve().parents[2] / "infra" / "docker" / "nginx"
HTTP_PORT, HTTPS_PORT, HEALTH_PORT = (PORT_BASE + n for n in (140, 141, 142))
HOSTS = {"PLATFORM_HOSTNAME": "platform.hv.test", "DASHBOARDS_HOSTNAME": "dashboards.hv.test",
         "CHIRPSTACK_HOSTNAME": "lns.hv.test"}
# The operators' network: this test's own address, not 127.0.0.2 (test_chirpstack_...).
OPERATOR_NETWORKS = "127.0.0.1/32 2001:db8::/48"
REQUIRED_HEADERS = ("strict-transport-security", "x-content-type-options", "referrer-policy",
                    "permissions-policy", "content-security-policy", "x-frame-options")


class Upstream(BaseHTTPRequestHandler):
    """Stands for the API, Superset and ChirpStack: echoes what it received as JSON."""

    def do_GET(self) -> None:
        if self.path == "/missing":
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps({"path": self.path, "headers": dict(self.headers)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Server", "uvicorn-1.2.3")
        if self.path == "/own-csp":
            self.send_header("Content-Security-Policy", "default-src 'self' blob:")
            self.send_header("X-Frame-Options", "SAMEORIGIN")
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        """Quiet."""


def self_signed(folder: Path) -> Path:
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
    (folder / "fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "privkey.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return folder / "fullchain.pem"


def nginx_version() -> tuple[int, ...]:
    out = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=True).stderr
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out)
    assert match is not None, out
    return tuple(int(g) for g in match.groups())


def render(folder: Path, upstream_port: int) -> Path:
    """Write nginx.conf and the site file for this machine; return the main file."""
    site = (NGINX_DIR / "templates" / "hypervision.conf.template").read_text()
    for variable, value in HOSTS.items():
        site = site.replace("${" + variable + "}", value)
    assert "${" not in site, "a variable the test does not know"
    site = re.sub(r"server (api|superset|chirpstack):\d+;", f"server 127.0.0.1:{upstream_port};",
                  site)
    site = re.sub(r"(set \$hv_\w+_upstream) \w+:\d+;", rf"\1 127.0.0.1:{upstream_port};", site)
    site = site.replace("listen 80 default_server;",
                        f"listen 127.0.0.1:{HTTP_PORT} default_server;")
    site = site.replace("listen 443 ssl", f"listen 127.0.0.1:{HTTPS_PORT} ssl")
    site = site.replace("listen 127.0.0.1:8081;", f"listen 127.0.0.1:{HEALTH_PORT};")
    site = site.replace("/etc/nginx/certs/", f"{folder}/")
    site = site.replace("/etc/nginx/security-headers.conf",
                        str(NGINX_DIR / "security-headers.conf"))
    # As the image's entrypoint does: the operators' networks (here the test's address).
    subprocess.run(["sh", str(NGINX_DIR / "operator-networks.sh")], check=True,
                   env={"CHIRPSTACK_OPERATOR_NETWORKS": OPERATOR_NETWORKS, "PATH": "/usr/bin:/bin",
                        "OPERATOR_NETWORKS_FILE": str(folder / "operators.conf")})
    site = site.replace("/etc/nginx/hv-operator-networks.conf", str(folder / "operators.conf"))
    if nginx_version() < (1, 25, 1):
        site = site.replace("http2 on;", "")
    (folder / "hypervision.conf").write_text(site)
    main = (NGINX_DIR / "nginx.conf").read_text()
    main = main.replace("/var/run/nginx.pid", str(folder / "nginx.pid"))
    main = main.replace("/etc/nginx/conf.d/hypervision.conf", str(folder / "hypervision.conf"))
    main = main.replace("access_log /dev/stdout hv;", f"access_log {folder}/access.log hv;")
    main = main.replace("error_log /dev/stderr warn;", f"error_log {folder}/error.log warn;")
    (folder / "nginx.conf").write_text(main)
    return folder / "nginx.conf"


@pytest.fixture(scope="module")
def proxy() -> Iterator[ssl.SSLContext]:
    """nginx with the rendered configuration and the upstream stand-in; yields a TLS
    context that trusts the test certificate."""
    folder = TEST_DATA / "proxy-test"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    cert = self_signed(folder)
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    conf = render(folder, upstream.server_address[1])
    checked = subprocess.run(["nginx", "-t", "-c", str(conf), "-p", str(folder)],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(folder),
                                "-g", "daemon off;"], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{HEALTH_PORT}/healthz", timeout=1)
            break
        except httpx.TransportError:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "nginx did not answer"
            time.sleep(0.1)
    context = ssl.create_default_context(cafile=str(cert))
    yield context
    process.terminate()
    process.wait(timeout=20)
    upstream.shutdown()
    upstream.server_close()


def get(context: ssl.SSLContext, host: str, path: str = "/", method: str = "GET",
        headers: dict[str, str] | None = None) -> httpx.Response:
    """An HTTPS request to `host` (SNI and Host header) on the local proxy."""
    with httpx.Client(verify=context, timeout=10) as client:
        return client.request(method, f"https://127.0.0.1:{HTTPS_PORT}{path}",
                              headers={"Host": host, **(headers or {})},
                              extensions={"sni_hostname": host})


def assert_security_headers(response: httpx.Response) -> None:
    missing = [h for h in REQUIRED_HEADERS if h not in response.headers]
    assert missing == [], f"{response.status_code} {response.url}: missing {missing}"
    assert "max-age=" in response.headers["strict-transport-security"]
    assert response.headers["x-content-type-options"] == "nosniff"
    for name in REQUIRED_HEADERS:
        assert len(response.headers.get_list(name)) == 1, f"{name} sent twice"


def test_the_proxy_serves_each_site_over_tls_to_its_upstream(proxy: ssl.SSLContext) -> None:
    for host in HOSTS.values():
        response = get(proxy, host, "/api/v1/health")
        assert response.status_code == 200
        assert response.json()["headers"]["Host"] == host
        assert response.http_version in ("HTTP/1.1", "HTTP/2")


def test_every_response_carries_the_security_headers(proxy: ssl.SSLContext) -> None:
    for host in HOSTS.values():
        assert_security_headers(get(proxy, host, "/"))
        assert_security_headers(get(proxy, host, "/missing"))
    redirect = httpx.get(f"http://127.0.0.1:{HTTP_PORT}/x?y=1",
                         headers={"Host": HOSTS["PLATFORM_HOSTNAME"]})
    assert redirect.status_code == 301
    assert redirect.headers["location"] == f"https://{HOSTS['PLATFORM_HOSTNAME']}/x?y=1"
    assert_security_headers(redirect)


def test_it_hides_software_versions(proxy: ssl.SSLContext) -> None:
    response = get(proxy, HOSTS["PLATFORM_HOSTNAME"], "/")
    assert response.headers.get("server") == "nginx"


def test_an_applications_own_policy_is_kept_and_the_default_fills_in(
    proxy: ssl.SSLContext,
) -> None:
    own = get(proxy, HOSTS["DASHBOARDS_HOSTNAME"], "/own-csp")
    assert own.headers["content-security-policy"] == "default-src 'self' blob:"
    assert own.headers["x-frame-options"] == "SAMEORIGIN"
    default = get(proxy, HOSTS["PLATFORM_HOSTNAME"], "/")
    assert "frame-ancestors 'none'" in default.headers["content-security-policy"]
    assert default.headers["x-frame-options"] == "DENY"


def test_the_client_address_cannot_be_forged(proxy: ssl.SSLContext) -> None:
    response = get(proxy, HOSTS["PLATFORM_HOSTNAME"], "/",
                   headers={"X-Forwarded-For": "203.0.113.7"})
    assert response.json()["headers"]["X-Forwarded-For"] == "127.0.0.1"


def test_logins_are_rate_limited_per_address(proxy: ssl.SSLContext) -> None:
    """10 a minute with a burst of 5: twenty attempts in a row meet a 429, which still
    carries the security headers."""
    statuses = []
    limited = None
    for _ in range(20):
        response = get(proxy, HOSTS["PLATFORM_HOSTNAME"], "/api/v1/auth/login", method="POST")
        statuses.append(response.status_code)
        if response.status_code == 429:
            limited = response
    assert statuses[0] == 200
    assert limited is not None, statuses
    assert_security_headers(limited)
    # The rest of the site is not affected by the login limit.
    assert get(proxy, HOSTS["PLATFORM_HOSTNAME"], "/api/v1/health").status_code == 200


def test_a_client_naming_another_host_gets_no_certificate(proxy: ssl.SSLContext) -> None:
    with pytest.raises(httpx.ConnectError):
        get(proxy, "intruder.hv.test", "/")



def test_exports_are_rate_limited_on_their_real_path(proxy: ssl.SSLContext) -> None:
    """The exports' location (30 a minute, burst 10, unbuffered) matches the path the API
    serves them at, /api/v1/members/<slug>/exports/<kind>.<format>: twenty requests in a
    row meet a 429, where the site's general limit (20 a second, burst 40) would not."""
    from hypervision.api.main import create_app
    from hypervision.settings import get_settings

    paths = [p for p in create_app(get_settings()).openapi()["paths"] if "/exports/" in p]
    assert paths == ["/api/v1/members/{slug}/exports/{kind}.{fmt}"]
    statuses = [get(proxy, HOSTS["PLATFORM_HOSTNAME"],
                    "/api/v1/members/alpha/exports/measurements.csv").status_code
                for _ in range(20)]
    assert statuses[0] == 200
    assert 429 in statuses, statuses
    # Other member paths keep the general limit.
    assert get(proxy, HOSTS["PLATFORM_HOSTNAME"], "/api/v1/members/alpha").status_code == 200


def test_chirpstacks_site_answers_the_operators_networks_only(proxy: ssl.SSLContext) -> None:
    """From 127.0.0.1 (an operators' network) ChirpStack's site answers; from 127.0.0.2
    (any other address) it is refused, while the platform's site still answers."""
    def from_elsewhere(host: str) -> int:
        transport = httpx.HTTPTransport(verify=proxy, local_address="127.0.0.2")
        with httpx.Client(transport=transport, timeout=10) as client:
            return client.get(f"https://127.0.0.1:{HTTPS_PORT}/", headers={"Host": host},
                              extensions={"sni_hostname": host}).status_code

    assert get(proxy, HOSTS["CHIRPSTACK_HOSTNAME"], "/").status_code == 200
    assert from_elsewhere(HOSTS["CHIRPSTACK_HOSTNAME"]) == 403
    assert from_elsewhere(HOSTS["PLATFORM_HOSTNAME"]) == 200


def test_operator_networks_refuse_a_value_that_is_not_a_network(tmp_path: Path) -> None:
    for value in ("", "all", "198.18.0.0/15; allow all"):
        result = subprocess.run(
            ["sh", str(NGINX_DIR / "operator-networks.sh")], capture_output=True, text=True,
            env={"CHIRPSTACK_OPERATOR_NETWORKS": value, "PATH": "/usr/bin:/bin",
                 "OPERATOR_NETWORKS_FILE": str(tmp_path / "o.conf")}, check=False)
        assert result.returncode != 0, value

"""The fixture `oidc_provider` (used by tests/console/test_sso.py and tests/superset): a real
OpenID Connect provider for the session (oidc-provider on Node.js, see provider.mjs) on a
port of the test range. The platform's client may come back to the console of either
test folder (PLATFORMS).

Accounts at the provider (login = `sub`): ana (alpha's reader, verified e-mail), alice
(alpha's admin), stranger (an e-mail no tenant file declares), unverified (ana's e-mail,
not verified).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PORT_BASE, TEST_DATA

HERE = Path(__file__).parent
PORT = PORT_BASE + 555
ISSUER = f"http://127.0.0.1:{PORT}"
CLIENT_ID, CLIENT_SECRET = "hypervision", "test-secret-of-the-platform"
OTHER_ID, OTHER_SECRET = "another-service", "test-secret-of-another-service"
# Where the tests serve the console: tests/console/test_sso.py, tests/superset/conftest.py.
PLATFORMS = [f"http://127.0.0.1:{PORT_BASE + 556}", f"http://127.0.0.1:{PORT_BASE + 870}"]
ACCOUNTS = {
    "ana": {"email": "ana@alpha.example.org", "email_verified": True, "name": "Ana Reader"},
    "alice": {"email": "alice@alpha.example.org", "email_verified": True, "name": "Alice"},
    "stranger": {"email": "nobody@elsewhere.example.org", "email_verified": True},
    "unverified": {"email": "ana@alpha.example.org", "email_verified": False},
}


def clients(redirect_bases: list[str]) -> list[dict[str, object]]:
    return [{"client_id": cid, "client_secret": secret,
             "redirect_uris": [f"{base}/console/sso/callback" for base in redirect_bases],
             "post_logout_redirect_uris": [f"{base}/console/login" for base in redirect_bases],
             "grant_types": ["authorization_code"], "response_types": ["code"]}
            for cid, secret in ((CLIENT_ID, CLIENT_SECRET), (OTHER_ID, OTHER_SECRET))]


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[str]:
    node = shutil.which("node")
    assert node and (HERE / "node_modules" / "oidc-provider").exists(), \
        "node and tests/oidc/node_modules are needed: run infra/install.sh"
    config = {"port": PORT, "clients": clients(PLATFORMS),
              "accounts": ACCOUNTS}
    TEST_DATA.mkdir(parents=True, exist_ok=True)
    log = (TEST_DATA / "oidc-provider.log").open("ab")
    process = subprocess.Popen([node, str(HERE / "provider.mjs"), json.dumps(config)],
                               stdout=subprocess.PIPE, stderr=log, text=True,
                               start_new_session=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip() == "ready", f"the OIDC provider did not start: {line}"
        yield ISSUER
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()

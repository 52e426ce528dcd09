"""The benchmark scripts' own services for the smoke tests: a folder and ports of their
own (the test port base + 100), so that they never touch the session's services."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PORT_BASE, REPO, TEST_DATA

BENCH_DATA = Path(f"{TEST_DATA}-bench")
BENCH_PORT_BASE = PORT_BASE + 100


def bench_env() -> dict[str, str]:
    """The environment without the test session's HV_* variables: each script sets its
    own from --data-dir and --port-base."""
    return {k: v for k, v in os.environ.items() if not k.startswith("HV_")}


def run_bench(module: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", module, "--data-dir", str(BENCH_DATA), "--port-base",
         str(BENCH_PORT_BASE), "--keep-services", *args],
        cwd=REPO, env=bench_env(), capture_output=True, text=True, timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (
        f"{module} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="session")
def bench_services() -> Iterator[Path]:
    """Stop the scripts' services (left running between scripts) at the end."""
    BENCH_DATA.mkdir(parents=True, exist_ok=True)
    BENCH_DATA.chmod(0o755)
    yield BENCH_DATA
    from hypervision import daemons
    from hypervision.settings import Settings

    settings = Settings(secret_key="x" * 64, data_dir=BENCH_DATA,
                        pg_port=BENCH_PORT_BASE + 432, redis_port=BENCH_PORT_BASE + 379,
                        mqtt_port=BENCH_PORT_BASE + 883)
    daemons.stop_all(settings)
    # The ingest benchmark's second database server (--servers 2), when it ran.
    daemons.postgres.stop(settings.model_copy(update={
        "data_dir": BENCH_DATA / "second", "pg_port": BENCH_PORT_BASE + 433}))

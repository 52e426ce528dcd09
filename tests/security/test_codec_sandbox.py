"""Finding 10: the JS codec sandbox gets none of the worker's environment (its secrets)
and runs under resource limits of its own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.decode.jsruntime import Limits, Sandbox


@pytest.fixture
def sandbox_pid() -> Iterator[int]:
    os.environ["HV_SOME_PASSWORD"] = "must-not-reach-the-sandbox"
    sandbox = Sandbox(Limits())
    try:
        yield sandbox._process().pid
    finally:
        sandbox.kill()
        del os.environ["HV_SOME_PASSWORD"]


def test_the_codec_sandbox_inherits_no_secret_from_the_worker(sandbox_pid: int) -> None:
    environ = Path(f"/proc/{sandbox_pid}/environ").read_bytes().split(b"\0")
    names = {e.split(b"=", 1)[0].decode() for e in environ if e}
    assert not {n for n in names if n.startswith("HV_")}, names
    assert names <= {"PATH", "PYTHONPATH", "LANG", "LC_ALL", "PYTHONDONTWRITEBYTECODE"}, names


def test_the_codec_sandbox_runs_under_resource_limits(sandbox_pid: int) -> None:
    limits = {line[:26].strip(): line[26:].split()[:2]
              for line in Path(f"/proc/{sandbox_pid}/limits").read_text().splitlines()[1:]}
    assert limits["Max file size"] == ["0", "0"]        # it writes no file
    assert limits["Max core file size"] == ["0", "0"]   # nor a core dump of its memory
    assert int(limits["Max open files"][1]) <= 64

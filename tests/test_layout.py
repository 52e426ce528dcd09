"""The repository layout keeps the standard library's `platform` module reachable."""

import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_platform_from_the_repo_root_is_the_standard_library() -> None:
    out = subprocess.run(
        [sys.executable, "-c",
         "import platform; print(platform.__file__); print(platform.system())"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(out[0]).resolve().parent == stdlib
    assert out[1] == "Linux"


def test_the_control_plane_is_importable_as_hypervision() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import hypervision, ingest; print(hypervision.__file__)"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert Path(out).resolve() == REPO / "platform" / "hypervision" / "__init__.py"

"""The import contract of docs/architecture.md: five boxes, every arrow pointing down.

`lint-imports` (import-linter) reads the contracts in pyproject.toml ([tool.importlinter])
and fails on an import that points up: the pipeline (ingest) importing the control plane,
the control plane importing the web layer or the commands, the foundation (settings, role
names, the Celery app) importing anything above it, or a new module of `hypervision` that
no layer lists.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_imports_point_down_the_five_boxes_only() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout, result.stdout


def test_the_repository_cites_no_document_outside_it() -> None:
    """No brief nor "issue N": a reader has only the repository, so a reference says what
    it stands for (a section of docs/, a README, an article of a law)."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    pattern = re.compile(r"BRIEF\.md|\bissues? ?#?\d+\b", re.IGNORECASE)
    found = []
    for name in tracked:
        path = ROOT / name
        if path == Path(__file__):
            continue
        if path.suffix not in {".py", ".md", ".yaml", ".yml", ".toml", ".sh", ".html", ".js",
                               ".css", ".sql", ".conf", ".ini", ".txt"} or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if pattern.search(line):
                found.append(f"{name}:{number}: {line.strip()}")
    assert found == []

"""The import rules of ARCHITECTURE.md hold: the floors (contracts, runtime, services beside the
dev stack, CLI, bench, tests) import only downwards, and no service imports another. The rules
are import-linter contracts in pyproject.toml; this runs them on the whole tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def lint_imports() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_every_import_follows_the_floors_and_rooms() -> None:
    done = lint_imports()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout, done.stdout

"""The import rules of ARCHITECTURE.md hold: the floors (contracts, proofs and runtime, dev stack,
services beside the CLI, bench, tests) import only downwards, production code never imports
development tooling, and no service imports another. The rules are import-linter contracts in
pyproject.toml; this runs them on the whole tree, and shows they catch a breach."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def lint_imports() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_every_import_follows_the_floors_and_rooms() -> None:
    done = lint_imports()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("where", "import_line", "broken"),
    [
        ("libs/appeals_cli", "import services.audit.service", "Floors"),
        ("services/intake", "import services.routing.policy", "Rooms"),
        ("services/notifications", "import appeals_devstack.paths", "Production code"),
    ],
)
def test_a_breach_is_caught(where: str, import_line: str, broken: str) -> None:
    probe = REPO / where / f"_architecture_probe_{uuid.uuid4().hex[:8]}.py"
    probe.write_text(
        f'"""A breach the contracts must catch (deleted after the test)."""\n\n{import_line}\n'
    )
    try:
        done = lint_imports()
    finally:
        probe.unlink()
    assert done.returncode != 0
    _, _, report = done.stdout.partition("Broken contracts")
    # The contract named first under "Broken contracts" is the one the probe breaks.
    assert "1 broken" in done.stdout, done.stdout
    assert report.lstrip("-\n ").startswith(broken), done.stdout

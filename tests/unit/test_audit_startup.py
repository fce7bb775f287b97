"""Audit refuses to start, naming the variable, when it has no keys to check tokens with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def start_audit(**env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("AUTH_")
    }
    environment["PYTHONPATH"] = os.pathsep.join(sys.path)
    # Nothing listens here: a service that got past its configuration would hang, not exit.
    environment["KAFKA_BOOTSTRAP_SERVERS"] = "127.0.0.1:9"
    return subprocess.run(
        [sys.executable, "-m", "services.audit.main"],
        cwd=ROOT,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "Field required"),
        ({"AUTH_JWKS_FILE": "/nonexistent/jwks.json"}, "does not point to a file"),
    ],
)
def test_audit_without_a_jwks_file_exits_at_once_naming_auth_jwks_file(
    env: dict[str, str], message: str
) -> None:
    started = start_audit(**env)

    assert started.returncode == 2, started.stderr
    assert "AUTH_JWKS_FILE" in started.stderr
    assert message in started.stderr
    assert "Traceback" not in started.stderr

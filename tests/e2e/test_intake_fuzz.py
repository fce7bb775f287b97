"""Schemathesis against the live intake process, as a platform team would point it at the served
OpenAPI document (issue 14 item 1), once with a surface token and once with an ops token:

* positive mode (data the schema allows) is never refused as invalid: no 400, only answers a valid
  request can get (2xx, 401/403 for a role that may not, 404, 409, 429, and 422 for what no schema
  can say: an appeal window that has passed, a decision dated in the future, a window of more than
  31 days; each 422 is documented);
* negative mode (data the schema forbids) is always refused (4xx);
* no 5xx, and every response is in the schema (status, content type, headers, body);
* at least 100 generated cases per operation, counted from the run's own report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from appeals_devstack import devkeys
from tests.e2e.conftest import Pipeline

pytestmark = pytest.mark.e2e

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "positive_data_acceptance",
        "negative_data_rejection",
        "missing_required_header",
    ]
)
# Semantic refusals a schema cannot express are 422, never 400 (see the module docstring).
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]
"""
MIN_CASES = 100
SEED = 20261125


def operations(base: str) -> set[str]:
    document = httpx.get(f"{base}/openapi.json", timeout=10).json()
    return {
        f"{method.upper()} {path}"
        for path, methods in document["paths"].items()
        if path.startswith("/v1/")
        for method in methods
    }


def cases_per_operation(report: Path) -> Counter[str]:
    """Generated cases per operation, from the NDJSON event stream of the run."""
    counted: Counter[str] = Counter()
    for line in report.read_text().splitlines():
        event: dict[str, Any] = json.loads(line)
        finished = event.get("ScenarioFinished")
        if not isinstance(finished, dict):
            continue
        recorder = finished.get("recorder") or {}
        counted[recorder.get("label", "")] += len(recorder.get("cases") or {})
    return counted


def schemathesis(
    base: str, token: str, tmp_path: Path, seed: int, phases: str, names: list[str]
) -> tuple[str, Counter[str]]:
    """One run (of the operations ``names``, or all); its output and its cases per operation.
    Fails on any finding."""
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    events = tmp_path / f"events-{seed}.ndjson"
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "--config-file", str(config),
            "run", f"{base}/openapi.json",
            "--url", base,
            "--header", f"Authorization: Bearer {token}",
            "--include-path-regex", "^/v1/",
            *[option for name in names for option in ("--include-name", name)],
            "--checks", CHECKS,
            "--max-examples", str(3 * MIN_CASES),
            "--mode", "all",
            "--phases", phases,
            "--seed", str(seed),
            # One worker: with two threads, CPython 3.11.7's ast module (which schemathesis uses
            # for pattern coverage) can fail with "AST constructor recursion depth mismatch"
            # (its recursion counter is shared between threads; gh-106905, fixed in 3.11.8).
            "--workers", "1",
            "--request-timeout", "20",
            "--suppress-health-check", "all",
            "--report", "ndjson", "--report-ndjson-path", str(events),
        ],
        capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )  # fmt: skip
    output = result.stdout + result.stderr
    failures = output[output.find("FAILURES") :][:8000] if "FAILURES" in output else output[-8000:]
    assert result.returncode == 0, failures
    return output, cases_per_operation(events)


@pytest.mark.parametrize("role", ["surface", "ops"])
def test_generated_requests_are_taken_or_refused_exactly_as_the_schema_says(
    pipeline: Pipeline, tmp_path: Path, role: str
) -> None:
    # A surface allowed on every platform, so valid appeals get through to the broker too.
    token = devkeys.mint_token(
        pipeline.signing_key, role=role, subject=f"fuzzer-{role}",
        platforms=["facebook", "instagram", "whatsapp", "horizon"],
    )  # fmt: skip
    base = pipeline.url("intake")
    output, counted = schemathesis(base, token, tmp_path, SEED, "examples,coverage,fuzzing", [])
    # An operation with little to vary (one path parameter) runs out of new cases before the
    # others: it gets more fuzzing runs, with other seeds, until it has had its hundred.
    for extra in range(1, 8):
        short = sorted(op for op in operations(base) if counted[op] < MIN_CASES)
        if not short:
            break
        _, more = schemathesis(base, token, tmp_path, SEED + extra, "fuzzing", short)
        counted.update(more)
    too_few = {op: counted[op] for op in operations(base) if counted[op] < MIN_CASES}
    assert not too_few, f"fewer than {MIN_CASES} cases: {too_few}\n{output[-3000:]}"

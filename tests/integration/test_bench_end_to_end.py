"""`make bench` end to end at a tiny scale: every figure is in the results, nothing is lost.

No timing is asserted (speed is what the bench reports, not what a test judges); the test checks
that a run completes on a stack of its own, produces every figure the acceptance lines need, and
leaves no process behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from appeals_devstack.paths import REPO_ROOT
from appeals_devstack.processes import pid_alive
from bench import report

pytestmark = pytest.mark.integration

TINY = [
    "--rates", "5", "--step-s", "3", "--saturation-s", "3", "--concurrency", "4",
    "--reviewers", "3", "--idle-s", "2", "--history-idle-s", "1", "--limits-s", "2",
    "--perf-records", "2000", "--template", "10", "--history", "1000", "--history-rate", "5",
    "--judge-rate", "5", "--drain-timeout-s", "180",
]  # fmt: skip
HOP_FIGURES = {"count", "p50", "p95", "p99", "max"}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench")
    run = subprocess.run(
        [sys.executable, "-m", "bench", *TINY, "--out-dir", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert (out / "pipeline-latest.png").stat().st_size > 0
    loaded: dict[str, Any] = json.loads((out / "pipeline-latest.json").read_text())
    return loaded


@pytest.mark.timeout(1600)
def test_every_step_has_every_hop_and_the_resources(results: dict[str, Any]) -> None:
    steps = [*results["steps"], results["decision_free"], results["saturation"]]
    for step in steps:
        assert set(step["latency_ms"]) == set(report.HOPS)
        for hop in report.HOPS:
            assert set(step["latency_ms"][hop]) == HOP_FIGURES
        for hop in ("submit_to_202", "submit_to_routed", "submit_to_audited"):
            assert step["latency_ms"][hop]["count"] > 0, (step["name"], hop)
        for figure in ("accepted_per_s", "end_to_end_per_s", "lag_to_zero_s", "drained"):
            assert figure in step
        assert set(report.STACK) <= set(step["cpu_ms_per_appeal"])
        assert set(report.STACK) <= set(step["max_rss_mb"])
        assert 0 < step["machine_busy_percent"] <= 100  # the stack at least was running
        # (No reviewer works during the step that shows the judged rate without decisions.)
        tooling = {"load"} if step is results["decision_free"] else {"load", "reviewers"}
        assert tooling <= set(step["cpu_ms_per_appeal"])
    assert results["lag_series"]
    assert set(report.STACK) <= set(results["idle"]["cpu_percent"])


@pytest.mark.timeout(1600)
def test_the_limits_were_measured_on_the_same_broker(results: dict[str, Any]) -> None:
    limits = results["limits"]
    assert limits["relay_chain"]["messages_per_s"] > 0
    assert limits["bare_endpoint"]["accepted_per_s"] > 0
    assert limits["producer_performance"]["records_per_s"] > 0


@pytest.mark.timeout(1600)
def test_nothing_was_lost_or_duplicated(results: dict[str, Any]) -> None:
    integrity = results["integrity"]
    assert integrity["accepted"] > 0
    assert integrity["lost"] == 0, integrity
    assert integrity["duplicated"] == 0, integrity


@pytest.mark.timeout(1600)
def test_history_was_seeded_and_measured_again(results: dict[str, Any]) -> None:
    (size,) = results["history"]["sizes"]
    assert size["appeals"] >= 1000
    assert size["seeding"]["documents"] > 0
    assert size["seeding"]["audit_entries"] > 0
    assert size["step"]["latency_ms"]["submit_to_audited"]["count"] > 0


@pytest.mark.timeout(1600)
def test_every_acceptance_line_is_printed_and_judged(results: dict[str, Any]) -> None:
    names = {check["name"] for check in results["checks"]}
    assert "end-to-end appeals/s ÷ relay chain msgs/s" in names
    assert "intake accepted/s ÷ bare endpoint accepted/s" in names
    assert "p99 submit→audited at 5/s" in names
    reading = {line["name"]: line["pass"] for line in results["for_reading"]}
    assert reading == {
        "p99 submit→routed at 5/s with no reviewer deciding (not judged)": None,
        "p99 submit→audited at 5/s with no reviewer deciding (not judged)": None,
    }
    accepted = results["integrity"]["accepted"]
    assert f"lost appeals (of {accepted:,} accepted)" in names


@pytest.mark.timeout(1600)
def test_no_process_is_left_running(results: dict[str, Any]) -> None:
    started = [pid for pids in results["pids"].values() for pid in pids]
    assert started
    assert [pid for pid in started if pid_alive(pid)] == []

"""The acceptance lines a bench run is judged by (issue 12), from a results document."""

from __future__ import annotations

from typing import Any

from bench import report


def _latency(p50: float, p99: float) -> dict[str, Any]:
    return {"count": 100, "p50": p50, "p95": p99, "p99": p99, "max": p99}


def _step(
    name: str,
    offered: float | None,
    *,
    routed_p99: float = 120.0,
    e2e: float = 50.0,
    lag: float | None = 1.0,
    scale: float = 1.0,
) -> dict[str, Any]:
    return {
        "name": name,
        "offered_per_s": offered,
        "sent": 1000,
        "accepted": 1000,
        "accepted_per_s": offered or 80.0,
        "end_to_end_per_s": e2e,
        "stopped_early": None,
        "drained": True,
        "lag_to_zero_s": lag,
        "lost": 0,
        "duplicated": 0,
        "latency_ms": {
            "submit_to_202": _latency(10 * scale, 40 * scale),
            "submit_to_routed": _latency(50 * scale, routed_p99 * scale),
            "submit_to_audited": _latency(90 * scale, 300 * scale),
            "decided_to_notified": _latency(30 * scale, 80 * scale),
        },
        "cpu_ms_per_appeal": {"intake": 2.0, "kafka": 1.0, "load": 0.5},
        "max_rss_mb": {"intake": 90.0, "kafka": 400.0, "load": 60.0},
    }


def _results(**changes: Any) -> dict[str, Any]:
    results: dict[str, Any] = {
        "options": {"judge_rate": 50.0},
        "steps": [_step("rate-25", 25.0, e2e=25.0), _step("rate-50", 50.0)],
        "saturation": {**_step("saturation", None, e2e=60.0), "concurrency": 40},
        "limits": {
            "relay_chain": {"messages_per_s": 400.0},
            "bare_endpoint": {"accepted_per_s": 100.0},
            "producer_performance": {"records_per_s": 50_000.0, "record_size": 512},
        },
        "processes": {name: {"max_rss_mb": 100.0} for name in report.SERVICES},
        "idle": {"stack_cpu_percent": 4.0},
        "integrity": {"accepted": 3000, "lost": 0, "duplicated": 0},
    }
    results.update(changes)
    return results


def _verdicts(results: dict[str, Any]) -> dict[str, bool | None]:
    return {check.name: check.passed for check in report.checks(results)}


def test_a_run_that_meets_every_target_passes_every_line() -> None:
    verdicts = _verdicts(_results())
    assert verdicts and all(verdicts.values()), verdicts
    found = {c.name: c for c in report.checks(_results())}
    assert found["end-to-end appeals/s ÷ relay chain msgs/s"].value == "15.0% (60.0 / 400.0)"
    assert found["intake accepted/s ÷ bare endpoint accepted/s"].value == "80.0% (80.0 / 100.0)"


def test_each_target_fails_on_its_own_figure() -> None:
    slow = _results(steps=[_step("rate-50", 50.0, routed_p99=400.0, lag=9.0)])
    verdicts = _verdicts(slow)
    assert verdicts["p99 submit→routed at 50/s"] is False
    assert verdicts["p99 submit→audited at 50/s"] is True
    assert (
        verdicts["consumer lag back to 0 after the 50/s step (all written by then committed)"]
        is False
    )
    fat = _results(processes={"intake": {"max_rss_mb": 151.0}})
    assert _verdicts(fat)["max RSS of intake"] is False
    busy = _verdicts(_results(idle={"stack_cpu_percent": 12.5}))
    assert busy["stack idle CPU (services, Kafka, FerretDB, Jaeger)"] is False
    lossy = _results(integrity={"accepted": 10, "lost": 1, "duplicated": 0})
    assert _verdicts(lossy)["lost appeals (of 10 accepted)"] is False


def test_a_judged_step_that_stopped_early_fails_its_latency_lines() -> None:
    step = {**_step("rate-50", 50.0), "stopped_early": "backlog of 600 accepted appeals"}
    verdicts = _verdicts(_results(steps=[step]))
    assert verdicts["p99 submit→routed at 50/s"] is False
    assert verdicts["p99 submit→audited at 50/s"] is False


def test_an_end_to_end_rate_with_losses_does_not_count() -> None:
    lossy_saturation = {**_step("saturation", None, e2e=300.0), "lost": 3}
    results = _results(saturation=lossy_saturation)
    assert report.best_end_to_end(results) == 50.0


def test_figures_not_measured_say_so_instead_of_passing() -> None:
    results = _results(steps=[_step("rate-25", 25.0)], saturation=None, limits={})
    verdicts = _verdicts(results)
    assert verdicts["p99 submit→routed at 50/s"] is None
    assert verdicts["end-to-end appeals/s ÷ relay chain msgs/s"] is None
    assert verdicts["intake accepted/s ÷ bare endpoint accepted/s"] is None


def test_history_compares_the_largest_size_with_the_smallest() -> None:
    history = {
        "sizes": [
            {"size": 10_000, "appeals": 10_000, "step": _step("history-10000", 25.0)},
            {"size": 500_000, "appeals": 500_000, "step": _step("history-500000", 25.0, scale=2)},
        ]
    }
    ratios = report.history_ratios(history)
    assert ratios["submit_to_routed"] == {"p50": 2.0, "p99": 2.0}
    verdicts = _verdicts(_results(history=history))
    assert verdicts["submit→routed p99 at 500,000 ÷ at 10,000 appeals"] is False


def test_tables_render_in_text_and_markdown() -> None:
    results = _results()
    results["checks"] = [check.as_dict() for check in report.checks(results)]
    text = report.table(report.throughput_rows(results))
    assert text[0].split()[:3] == ["step", "offered/s", "sent"]
    markdown = report.markdown(results)
    assert "| rate-50 | submit→routed | 100 | 50 | 120 | 120 | 120 |" in markdown
    assert "| stack total | 3.0 |" in markdown


def test_the_judged_rate_without_decisions_is_shown_beside_the_lines_and_not_judged() -> None:
    assert report.for_reading(_results()) == []  # no such step in this run: nothing to show
    calm = _step("rate-50-no-decisions", 50.0, routed_p99=400.0)
    results = _results(decision_free=calm)
    reading = {check.name: check for check in report.for_reading(results)}
    routed = reading["p99 submit→routed at 50/s with no reviewer deciding (not judged)"]
    assert (routed.value, routed.target, routed.passed) == ("400.0 ms", "≤ 250 ms", None)
    assert "p99 submit→audited at 50/s with no reviewer deciding (not judged)" in reading
    # The acceptance lines stay those of the step with the reviewers, whatever this one shows.
    assert _verdicts(results)["p99 submit→routed at 50/s"] is True
    assert not any(name in _verdicts(results) for name in reading)
    assert [s["name"] for s in report.measured_steps(results)][-2:] == [
        "rate-50-no-decisions",
        "saturation",
    ]
    results["checks"] = [check.as_dict() for check in report.checks(results)]
    markdown = report.markdown(results)
    assert "| rate-50-no-decisions | submit→routed | 100 | 50 | 400 | 400 | 400 |" in markdown
    assert (
        "| p99 submit→routed at 50/s with no reviewer deciding (not judged) | 400.0 ms "
        "| ≤ 250 ms | for reading |" in markdown
    )

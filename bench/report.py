"""Judging and printing a bench run's results (the JSON document ``bench.run`` builds). Pure.

The acceptance lines of issue 12, each with its target and a plain pass/fail; a line whose
figure was not measured in this run (a step skipped or stopped early, no history mode) says
``n/a`` instead of passing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

HOPS = ("submit_to_202", "submit_to_routed", "submit_to_audited", "decided_to_notified")
HOP_NAMES = {
    "submit_to_202": "submit→202",
    "submit_to_routed": "submit→routed",
    "submit_to_audited": "submit→audited",
    "decided_to_notified": "decided→notified",
}
SERVICES = ("intake", "routing", "notifications", "audit")
STACK = (*SERVICES, "kafka", "ferretdb", "jaeger")

E2E_TARGET, E2E_AIM = 0.10, 0.25
INTAKE_TARGET = 0.50
ROUTED_P99_MS, AUDITED_P99_MS = 250.0, 500.0
# The hops whose p99 at the judged rate has a limit, and that limit.
P99_LIMITS = (("submit_to_routed", ROUTED_P99_MS), ("submit_to_audited", AUDITED_P99_MS))
LAG_ZERO_S = 5.0
RSS_MB = 150.0
IDLE_CPU_PERCENT = 10.0
HISTORY_RATIO = 1.5


@dataclass(frozen=True)
class Check:
    name: str
    value: str
    target: str
    passed: bool | None

    @property
    def verdict(self) -> str:
        return "n/a" if self.passed is None else "PASS" if self.passed else "FAIL"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "target": self.target,
            "pass": self.passed,
        }


def _fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}{unit}"


def judged_step(results: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The open-loop step at the judged rate (50/s by default), if it ran in full."""
    rate = results["options"]["judge_rate"]
    for step in results["steps"]:
        if step.get("offered_per_s") == rate and not step.get("skipped"):
            return step  # type: ignore[no-any-return]
    return None


def best_end_to_end(results: Mapping[str, Any]) -> float | None:
    """The best end-to-end appeals/s of a step with nothing lost or duplicated."""
    candidates = [
        step["end_to_end_per_s"]
        for step in [*results["steps"], results.get("saturation") or {}]
        if step
        and not step.get("skipped")
        and step.get("lost") == 0
        and step.get("duplicated") == 0
        and step.get("end_to_end_per_s")
    ]
    return max(candidates) if candidates else None


def checks(results: Mapping[str, Any]) -> list[Check]:
    return [
        *_throughput_checks(results),
        *_latency_checks(results),
        *_resource_checks(results),
        *_integrity_checks(results),
        *_history_checks(results),
    ]


def for_reading(results: Mapping[str, Any]) -> list[Check]:
    """Figures printed beside the acceptance lines but not judged (``passed`` is None): the
    judged rate's p99 lines again with no reviewer deciding."""
    step = results.get("decision_free")
    if not step:
        return []
    rate = results["options"]["judge_rate"]
    return [
        Check(
            f"p99 {HOP_NAMES[hop]} at {rate:g}/s with no reviewer deciding (not judged)",
            _fmt(step["latency_ms"][hop]["p99"], " ms"),
            f"≤ {limit:.0f} ms",
            None,
        )
        for hop, limit in P99_LIMITS
    ]


def _ratio_check(name: str, part: float | None, whole: float | None, target: float,
                 note: str = "") -> Check:  # fmt: skip
    if part is None or not whole:
        return Check(name, "n/a", f"≥ {target:.0%}{note}", None)
    ratio = part / whole
    value = f"{ratio:.1%} ({part:,.1f} / {whole:,.1f})"
    return Check(name, value, f"≥ {target:.0%}{note}", ratio >= target)


def _throughput_checks(results: Mapping[str, Any]) -> Iterator[Check]:
    limits = results.get("limits") or {}
    relay = (limits.get("relay_chain") or {}).get("messages_per_s")
    bare = (limits.get("bare_endpoint") or {}).get("accepted_per_s")
    saturation = results.get("saturation") or {}
    yield _ratio_check(
        "end-to-end appeals/s ÷ relay chain msgs/s",
        best_end_to_end(results),
        relay,
        E2E_TARGET,
        f", aim {E2E_AIM:.0%}",
    )
    yield _ratio_check(
        "intake accepted/s ÷ bare endpoint accepted/s",
        saturation.get("accepted_per_s"),
        bare,
        INTAKE_TARGET,
    )


def _latency_checks(results: Mapping[str, Any]) -> Iterator[Check]:
    rate = results["options"]["judge_rate"]
    step = judged_step(results)
    early = bool(step and step.get("stopped_early"))
    for hop, limit in P99_LIMITS:
        p99 = None if step is None else step["latency_ms"][hop]["p99"]
        # A step the pipeline could not carry to its end fails, whatever its partial p99 says.
        yield Check(
            f"p99 {HOP_NAMES[hop]} at {rate:g}/s",
            _fmt(p99, " ms") + (" (step stopped early)" if early else ""),
            f"≤ {limit:.0f} ms",
            None if p99 is None else p99 <= limit and not early,
        )
    lag = None if step is None else step.get("lag_to_zero_s")
    never = step is not None and lag is None
    yield Check(
        f"consumer lag back to 0 after the {rate:g}/s step (all written by then committed)",
        "not within the drain" if never else _fmt(lag, " s"),
        f"≤ {LAG_ZERO_S:.0f} s",
        None if step is None else lag is not None and lag <= LAG_ZERO_S,
    )


def _resource_checks(results: Mapping[str, Any]) -> Iterator[Check]:
    peaks = results.get("processes", {})
    for service in SERVICES:
        rss = peaks.get(service, {}).get("max_rss_mb")
        yield Check(
            f"max RSS of {service}",
            _fmt(rss, " MB"),
            f"≤ {RSS_MB:.0f} MB",
            None if rss is None else rss <= RSS_MB,
        )
    idle = (results.get("idle") or {}).get("stack_cpu_percent")
    yield Check(
        "stack idle CPU (services, Kafka, FerretDB, Jaeger)",
        _fmt(idle, " % of one core"),
        f"< {IDLE_CPU_PERCENT:.0f} %",
        None if idle is None else idle < IDLE_CPU_PERCENT,
    )


def _integrity_checks(results: Mapping[str, Any]) -> Iterator[Check]:
    integrity = results.get("integrity") or {}
    # Appeals still arriving when the bench stopped waiting are late, not (yet) lost.
    still_arriving = integrity.get("wait_ended") == "capped"
    for name in ("lost", "duplicated"):
        value = integrity.get(name)
        late = name == "lost" and still_arriving and bool(value)
        yield Check(
            f"{name} appeals (of {integrity.get('accepted', 0):,} accepted)",
            "n/a" if value is None else f"{value:,}" + (" still arriving" if late else ""),
            "= 0",
            None if value is None or late else value == 0,
        )


def history_ratios(history: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per hop and percentile: the largest size's value ÷ the smallest size's."""
    sizes = history.get("sizes") or []
    if len(sizes) < 2:
        return {}
    first, last = sizes[0]["step"]["latency_ms"], sizes[-1]["step"]["latency_ms"]
    ratios: dict[str, dict[str, float | None]] = {}
    for hop in HOPS:
        ratios[hop] = {}
        for percentile in ("p50", "p99"):
            low, high = first[hop][percentile], last[hop][percentile]
            ratios[hop][percentile] = round(high / low, 2) if low and high is not None else None
    return ratios


def _history_checks(results: Mapping[str, Any]) -> Iterator[Check]:
    history = results.get("history") or {}
    sizes = history.get("sizes") or []
    if len(sizes) < 2:
        return
    ratios = history_ratios(history)
    small, large = sizes[0]["appeals"], sizes[-1]["appeals"]
    for hop in HOPS:
        for percentile in ("p50", "p99"):
            ratio = ratios[hop][percentile]
            yield Check(
                f"{HOP_NAMES[hop]} {percentile} at {large:,} ÷ at {small:,} appeals",
                _fmt(ratio, "x", 2),
                f"≤ {HISTORY_RATIO}x",
                None if ratio is None else ratio <= HISTORY_RATIO,
            )


# Printing -----------------------------------------------------------------------------------


# Columns read as text, left-aligned; the others are figures.
_TEXT_COLUMNS = frozenset({"step", "hop", "process", "note", "check", "measured", "target",
                           "verdict", "appeals stored"})  # fmt: skip


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Plain-text table: a header, a rule, the rows."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    left = [header in _TEXT_COLUMNS for header in rows[0]]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            cell.ljust(width) if is_text else cell.rjust(width)
            for cell, width, is_text in zip(row, widths, left, strict=True)
        ]
        lines.append("  " + "  ".join(cells).rstrip())
        if n == 0:
            lines.append("  " + "  ".join("-" * width for width in widths))
    return lines


def measured_steps(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    steps = list(results["steps"])
    steps += [results[name] for name in ("decision_free", "saturation") if results.get(name)]
    return steps


def _note(step: Mapping[str, Any]) -> str:
    notes = []
    if step.get("stopped_early"):
        notes.append(f"stopped early: {step['stopped_early']}")
    if step.get("drained") is False:
        notes.append(f"not drained after {step.get('drain_s', 0):.0f} s")
    return "; ".join(notes)


def throughput_rows(results: Mapping[str, Any]) -> list[list[str]]:
    rows = [["step", "offered/s", "sent", "accepted", "accepted/s", "end-to-end/s",
             "CPUs busy %", "lag→0 s", "lost/dup", "note"]]  # fmt: skip
    for step in measured_steps(results):
        if step.get("skipped"):
            rows.append([step["name"], _fmt(step.get("offered_per_s")), "", "", "", "", "", "",
                         "", "skipped: a lower rate already saturated the pipeline"])  # fmt: skip
            continue
        offered = step.get("offered_per_s")
        closed = f"closed x{step.get('concurrency')}"
        rows.append(
            [
                step["name"],
                _fmt(offered) if offered else closed,
                f"{step['sent']:,}",
                f"{step['accepted']:,}",
                _fmt(step.get("accepted_per_s")),
                _fmt(step.get("end_to_end_per_s")),
                _fmt(step.get("machine_busy_percent")),
                _fmt(step.get("lag_to_zero_s")),
                f"{step.get('lost', 'n/a')}/{step.get('duplicated', 'n/a')}",
                _note(step),
            ]
        )
    return rows


def latency_rows(steps: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    rows = [["step", "hop", "n", "p50 ms", "p95 ms", "p99 ms", "max ms"]]
    for step in steps:
        if step.get("skipped"):
            continue
        for hop in HOPS:
            summary = step["latency_ms"][hop]
            rows.append(
                [step["name"], HOP_NAMES[hop], f"{summary['count']:,}"]
                + [_fmt(summary[p], digits=0) for p in ("p50", "p95", "p99", "max")]
            )
    return rows


def cpu_rows(step: Mapping[str, Any]) -> list[list[str]]:
    """CPU ms per appeal and peak memory of the stack's processes, then the bench's own."""
    cpu = step.get("cpu_ms_per_appeal") or {}
    rss = step.get("max_rss_mb") or {}
    tooling = [name for name in ("load", "reviewers", "bench") if name in cpu]
    rows = [["process", "CPU ms/appeal", "max RSS MB"]]
    for name in [*(n for n in STACK if n in cpu), *tooling]:
        rows.append([name, _fmt(cpu.get(name)), _fmt(rss.get(name))])
    stack_total = sum(cpu.get(name, 0.0) for name in STACK)
    rows.append(["stack total", _fmt(stack_total), ""])
    return rows


def markdown_table(rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(cell or " " for cell in row) + " |" for row in rows[1:]]
    return lines


def history_rows(history: Mapping[str, Any]) -> list[list[str]]:
    rows = [["appeals stored", "seeded in", *(f"{HOP_NAMES[h]} p50/p99 ms" for h in HOPS),
             "idle CPU %"]]  # fmt: skip
    for size in history.get("sizes") or []:
        latency = size["step"]["latency_ms"]
        seeding = size.get("seeding") or {}
        rows.append(
            [
                f"{size['appeals']:,}",
                _fmt(seeding.get("seconds"), " s", 0) if seeding else "-",
                *(f"{_fmt(latency[h]['p50'], digits=0)}/{_fmt(latency[h]['p99'], digits=0)}"
                  for h in HOPS),
                _fmt((size.get("idle") or {}).get("stack_cpu_percent")),
            ]
        )  # fmt: skip
    return rows


def check_rows(found: Sequence[Check], *, verdict: str | None = None) -> list[list[str]]:
    """The lines as a table; ``verdict`` in place of each line's own (lines not judged)."""
    return [["check", "measured", "target", "verdict"]] + [
        [c.name, c.value, c.target, verdict or c.verdict] for c in found
    ]


def limits_line(results: Mapping[str, Any]) -> str:
    limits = results.get("limits") or {}
    relay = (limits.get("relay_chain") or {}).get("messages_per_s")
    bare = (limits.get("bare_endpoint") or {}).get("accepted_per_s")
    perf = limits.get("producer_performance") or {}
    return (
        f"limits on the same broker: relay chain {_fmt(relay)} msgs/s, bare endpoint "
        f"{_fmt(bare)} accepted/s, Kafka's ProducerPerformance "
        f"{_fmt(perf.get('records_per_s'), digits=0)} records/s "
        f"({perf.get('record_size', '?')} B records, acks=all)"
    )


def markdown(results: Mapping[str, Any]) -> str:
    """The run's tables in Markdown, for the README's Performance section."""
    lines = [f"`{results.get('command', 'make bench')}` — {results.get('title', '')}", ""]
    lines += [*markdown_table(throughput_rows(results)), ""]
    lines += [*markdown_table(latency_rows(measured_steps(results))), ""]
    step = judged_step(results)
    if step is not None:
        lines += [f"CPU per appeal and peak memory at {step['name']}:", ""]
        lines += [*markdown_table(cpu_rows(step)), ""]
    lines += [limits_line(results), ""]
    if results.get("history"):
        lines += [*markdown_table(history_rows(results["history"])), ""]
    found = [Check(c["name"], c["value"], c["target"], c["pass"]) for c in results["checks"]]
    lines += markdown_table(check_rows(found))
    reading = for_reading(results)
    if reading:
        lines += ["", *markdown_table(check_rows(reading, verdict="for reading"))]
    return "\n".join(lines) + "\n"

"""The order of a bench run on a started :class:`BenchStack`: warm-up, idle, limits, offered
rates, the judged rate again with no reviewer deciding, saturation, history sizes, and the
integrity count; returns the results document.

The order is chosen so that each measurement sees a quiet machine: the limits run before any
load (the pipeline is idle), each step waits for the pipeline to catch up before the next one
(bounded by ``--drain-timeout-s``; a step that cannot drain says so), and a step whose backlog
explodes stops early, and the higher rates after it are skipped (they would only explode
faster).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import procstat, report
from bench.limits import measure as limits
from bench.options import Options
from bench.seeding import history
from bench.seeding.template import snapshot
from bench.session import Say, Session
from bench.stack import BenchStack


async def run(stack: BenchStack, options: Options, say: Say) -> dict[str, Any]:
    """The whole run on a stack whose services are started; the results document."""
    session = Session(stack, options, say)
    results: dict[str, Any] = {"steps": []}
    try:
        await session.start()
        await session.start_reviewers()
        warm = options.template if options.history_mode else options.warmup
        template_ids = await session.warm_up(warm, until_notified=options.history_mode)
        template = None
        if options.history_mode:
            if not template_ids:
                raise RuntimeError("no warm-up appeal was decided and notified: nothing to clone")
            say(f"  template: snapshot of the stores after {len(template_ids)} appeals")
            template = await snapshot(session.client, template_ids)
        await session.stop_reviewers()
        results["idle"] = await session.measure_idle(options.idle_s)
        results["limits"] = await limits.measure(session)
        await session.start_reviewers()
        saturated_at: float | None = None
        for offered in options.rates:
            name = f"rate-{offered:g}"
            if saturated_at is not None:
                say(f"\n==> {name}: skipped ({saturated_at:g}/s already exceeded what the "
                    "pipeline carries)")  # fmt: skip
                results["steps"].append({"name": name, "offered_per_s": offered, "skipped": True})
                continue
            step = await session.open_step(name, offered, options.step_s)
            results["steps"].append(step)
            if step["stopped_early"]:
                saturated_at = offered
        judged_ran = options.judge_rate in options.rates and (
            saturated_at is None or saturated_at > options.judge_rate
        )
        if options.decision_free_s > 0 and judged_ran:
            results["decision_free"] = await decision_free_step(session, options)
        if options.saturation_s > 0:
            results["saturation"] = await session.saturation_step()
        if template is not None:
            results["history"] = await history.measure(session, template)
        history_steps = [s["step"] for s in (results.get("history") or {}).get("sizes", [])]
        measured = [s for s in report.measured_steps(results) if not s.get("skipped")]
        results["integrity"] = await session.integrity([*measured, *history_steps])
        session.settle_notifications([*measured, *history_steps])
        session.procs.sample()
        results["processes"] = {
            name: {"max_rss_mb": round(usage.peak_rss_bytes / procstat.MB, 1),
                   "cpu_s": round(usage.cpu_s, 1)}
            for name, usage in sorted(session.procs.usage.items())
        }  # fmt: skip
        # Every process the run started (all incarnations), so a test can check none is left.
        results["pids"] = {
            name: sorted(usage.cpu_by_pid) for name, usage in sorted(session.procs.usage.items())
            if name != "bench"
        }  # fmt: skip
        results["lag_series"] = [
            {"at": round(s.at, 2), "groups": s.groups} for s in session.lag.samples
        ]
        results["lifecycle_events"] = dict(session.lifecycle.counts)
    finally:
        await session.close()
    return results


async def decision_free_step(session: Session, options: Options) -> dict[str, Any]:
    """The judged rate again while no reviewer decides: reported for reading, not judged (the
    acceptance lines are judged with the reviewers), it shows how much of the tail at that rate
    is the decisions' work."""
    await session.stop_reviewers()
    try:
        name = f"rate-{options.judge_rate:g}-no-decisions"
        return await session.open_step(name, options.judge_rate, options.decision_free_s)
    finally:
        await session.start_reviewers()


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")

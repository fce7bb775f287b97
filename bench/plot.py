"""The run as a picture: latency percentiles and throughput against offered rate, and the
consumer groups' lag over the run (PNG, matplotlib without a display)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from bench.report import HOP_NAMES, HOPS

PERCENTILES = (("p50", "o-"), ("p99", "s--"))
Step = Mapping[str, Any]


def plot(results: Mapping[str, Any], path: Path) -> None:
    steps = [s for s in results["steps"] if not s.get("skipped") and s.get("offered_per_s")]
    sizes = (results.get("history") or {}).get("sizes") or []
    panels = 4 if sizes else 3
    figure, axes = plt.subplots(1, panels, figsize=(6 * panels, 5.5))
    _latency(axes[0], steps)
    _throughput(axes[1], steps, results)
    measured = [*steps, results.get("saturation") or {}, *(size["step"] for size in sizes)]
    _lag(axes[2], measured, results.get("lag_series") or [])
    if sizes:
        _history(axes[3], sizes)
    figure.suptitle(results.get("title", "make bench"), fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _latency(axes: Axes, steps: Sequence[Step]) -> None:
    offered = [s["offered_per_s"] for s in steps]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for n, hop in enumerate(HOPS):
        for percentile, style in PERCENTILES:
            values = [s["latency_ms"][hop][percentile] for s in steps]
            points = [(x, y) for x, y in zip(offered, values, strict=True) if y]
            if points:
                xs, ys = zip(*points, strict=True)
                label = f"{HOP_NAMES[hop]} {percentile}"
                axes.plot(xs, ys, style, color=colours[n], label=label)
    axes.set_yscale("log")
    axes.set_xlabel("offered appeals/s (open loop)")
    axes.set_ylabel("latency, ms (log scale)")
    axes.set_title("Latency per hop, from each request's scheduled time")
    axes.legend(fontsize=7)
    axes.grid(True, which="both", alpha=0.3)


def _throughput(axes: Axes, steps: Sequence[Step], results: Mapping[str, Any]) -> None:
    offered = [s["offered_per_s"] for s in steps]
    axes.plot(offered, [s["accepted_per_s"] for s in steps], "o-", label="intake accepted/s")
    ends = [s["end_to_end_per_s"] for s in steps]
    axes.plot(offered, ends, "s-", label="end to end (routed and audited)/s")
    if offered:
        axes.plot(offered, offered, ":", color="grey", label="offered")
    limits = results.get("limits") or {}
    relay = (limits.get("relay_chain") or {}).get("messages_per_s")
    bare = (limits.get("bare_endpoint") or {}).get("accepted_per_s")
    saturated = (results.get("saturation") or {}).get("accepted_per_s")
    if relay:
        label = f"10 % of the relay chain ({relay:,.0f} msgs/s)"
        axes.axhline(0.1 * relay, color="red", linestyle="--", linewidth=1, label=label)
    if bare:
        label = f"bare endpoint ({bare:,.0f} accepted/s)"
        axes.axhline(bare, color="purple", linestyle="-.", linewidth=1, label=label)
    if saturated:
        label = f"intake at saturation ({saturated:,.1f} accepted/s)"
        axes.axhline(saturated, color="green", linestyle=":", label=label)
    axes.set_yscale("log")
    axes.set_xlabel("offered appeals/s (open loop)")
    axes.set_ylabel("appeals/s (log scale)")
    axes.set_title("Throughput against the limits")
    axes.legend(fontsize=7)
    axes.grid(True, alpha=0.3)


def _lag(axes: Axes, steps: Sequence[Step], series: Sequence[Mapping[str, Any]]) -> None:
    if series:
        start = series[0]["at"]
        seconds = [s["at"] - start for s in series]
        groups = sorted({g for sample in series for g in sample["groups"]})
        for group in groups:
            if not group.startswith("bench-"):
                lags = [s["groups"].get(group, 0) for s in series]
                axes.plot(seconds, lags, label=group, linewidth=1)
        for step in steps:
            if step.get("started_at"):
                begin, end = step["started_at"] - start, step["ended_at"] - start
                axes.axvspan(begin, end, alpha=0.08, color="grey")
    axes.set_xlabel("seconds into the run (grey: measured steps and their drain)")
    axes.set_ylabel("records behind")
    axes.set_title("Consumer lag per group")
    axes.legend(fontsize=7)
    axes.grid(True, alpha=0.3)


def _history(axes: Axes, sizes: Sequence[Mapping[str, Any]]) -> None:
    stored = [size["appeals"] for size in sizes]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for n, hop in enumerate(HOPS):
        for percentile, style in PERCENTILES:
            values = [size["step"]["latency_ms"][hop][percentile] for size in sizes]
            points = [(x, y) for x, y in zip(stored, values, strict=True) if y]
            if points:
                xs, ys = zip(*points, strict=True)
                label = f"{HOP_NAMES[hop]} {percentile}"
                axes.plot(xs, ys, style, color=colours[n], label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("appeals stored (log scale)")
    axes.set_ylabel("latency, ms (log scale)")
    rate = sizes[0]["step"].get("offered_per_s")
    axes.set_title(f"History: the same hops at {rate:g}/s as the store grows")
    axes.legend(fontsize=7)
    axes.grid(True, which="both", alpha=0.3)


def main() -> None:
    """``python -m bench.plot RESULTS.json OUT.png``: draw a run's results again."""
    plot(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))


if __name__ == "__main__":
    main()

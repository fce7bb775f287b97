"""``python -m bench``: what ``make bench`` runs (see ``bench/__init__.py``).

Starts the bench's own stack in a temporary folder, runs the bench, writes the results (JSON and
PNG under ``--out-dir``), prints the tables and, last, the acceptance lines with pass/fail.
Everything it started is stopped however it ends: Ctrl-C, SIGTERM, an error.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import uvloop

from appeals_devstack.paths import REPO_ROOT, read_versions
from bench import children, report
from bench.options import Options, parse
from bench.run import run, write_json
from bench.stack import BenchStack


def say(message: str) -> None:
    print(message, flush=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _git() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(git("status", "-s"))}


def _options_dict(options: Options) -> dict[str, Any]:
    return {
        key: str(value) if isinstance(value, Path) else value
        for key, value in dataclasses.asdict(options).items()
    }


def _meta(options: Options, argv: list[str]) -> dict[str, Any]:
    return {
        "bench": "pipeline",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench", *argv]),
        "machine": {"cpus": os.cpu_count(), "load_average": list(os.getloadavg())},
        "versions": read_versions(),
        "git": _git(),
        "options": _options_dict(options),
    }


def _print_results(results: dict[str, Any], found: list[report.Check]) -> None:
    show = report.table
    say("\n==> results")
    say("\nthroughput per step (end-to-end: routed and audited)")
    for line in show(report.throughput_rows(results)):
        say(line)
    say("\nlatency per hop (from each request's scheduled send time)")
    for line in show(report.latency_rows(report.measured_steps(results))):
        say(line)
    step = report.judged_step(results) or next(
        (s for s in results["steps"] if not s.get("skipped")), None
    )
    if step is not None:
        say(f"\nCPU per appeal and peak memory, step {step['name']} (the step and its drain)")
        for line in show(report.cpu_rows(step)):
            say(line)
    say("\n" + report.limits_line(results))
    integrity = results.get("integrity") or {}
    say(
        f"integrity: {integrity.get('accepted', 0):,} accepted, {integrity.get('lost')} lost, "
        f"{integrity.get('duplicated')} duplicated"
    )
    if results.get("history"):
        say("\nhistory: the same hops at each store size")
        for line in show(report.history_rows(results["history"])):
            say(line)
    say(f"\nresults: {results['json_path']}\nplot:    {results['png_path']}")
    say("\n==> acceptance (issue 12), measured in this run")
    for line in show(report.check_rows(found)):
        say(line)
    reading = report.for_reading(results)
    if reading:
        say("\nbeside them, not judged:")
        for line in show(report.check_rows(reading, verdict="for reading")):
            say(line)


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    options = parse(arguments)
    signal.signal(signal.SIGTERM, _interrupt)
    state = Path(tempfile.mkdtemp(prefix="appeals-bench-"))
    results: dict[str, Any] = _meta(options, arguments)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    say(f"==> bench: {os.cpu_count()} CPU(s), load average {load}; state in {state}")
    stack: BenchStack | None = None
    began = time.monotonic()
    keep = options.keep_state
    try:
        say("==> starting Kafka, FerretDB and Jaeger on free ports")
        stack = BenchStack.start(state, partitions=options.partitions)
        say("==> starting intake, routing, notifications and audit")
        stack.start_services()
        # uvloop, as the services and the load process: its observers share the cores too.
        results.update(uvloop.run(run(stack, options, say)))
    except KeyboardInterrupt:
        say("\n==> interrupted; stopping everything")
        return 130
    except Exception:
        keep = True  # the services' logs are what explains a failed run
        raise
    finally:
        children.kill_all_started()
        if stack is not None:
            say("==> stopping the stack")
            stack.stop()
        if keep:
            say(f"==> kept {state} (logs in {state / 'logs'})")
        else:
            shutil.rmtree(state, ignore_errors=True)
    results["seconds"] = round(time.monotonic() - began, 1)
    found = report.checks(results)
    results["checks"] = [check.as_dict() for check in found]
    results["for_reading"] = [check.as_dict() for check in report.for_reading(results)]
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    json_path = options.out_dir / f"pipeline-{stamp}.json"
    png_path = json_path.with_suffix(".png")
    results["json_path"], results["png_path"] = str(json_path), str(png_path)
    results["title"] = (
        f"make bench, {results['started_at']}, commit {results['git']['commit']}, "
        f"{results['machine']['cpus']} CPUs"
    )
    write_json(results, json_path)
    from bench.plot import plot  # matplotlib is slow to import; only needed here

    plot(results, png_path)
    for name in ("pipeline-latest.json", "pipeline-latest.png"):
        source = json_path if name.endswith(".json") else png_path
        shutil.copyfile(source, options.out_dir / name)
    _print_results(results, found)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What a bench run does, from the command line (the Makefile passes RATES, STEP_S, HISTORY)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from appeals_devstack.paths import STATE_DIR


def _numbers(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(",") if part.strip())


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(sorted({int(float(part)) for part in text.split(",") if part.strip()}))


@dataclass(frozen=True)
class Options:
    rates: tuple[float, ...] = (25, 50, 100, 200)
    step_s: float = 20.0
    saturation_s: float = 20.0
    concurrency: int = 40
    reviewers: int = 20
    # Seconds a simulated reviewer spends on a case before deciding: people read the case, so
    # the desk decides at most reviewers / review_s appeals a second (a backlog forms in bursts).
    review_s: float = 2.0
    warmup: int = 20
    template: int = 200
    history: tuple[int, ...] = ()
    history_rate: float = 25.0
    idle_s: float = 30.0
    history_idle_s: float = 15.0
    limits_s: float = 15.0
    perf_records: int = 200_000
    record_size: int = 512
    drain_timeout_s: float = 120.0
    integrity_timeout_s: float = 1800.0
    backlog_limit_s: float = 10.0
    judge_rate: float = 50.0
    # One more step at the judged rate with the reviewers stopped (0: none), reported for reading
    # only: the acceptance lines are judged with the reviewers, and this shows how much of the
    # tail is the decisions' work (each about 35 store statements and 4-5 events).
    decision_free_s: float = 20.0
    partitions: int = 3
    out_dir: Path = field(default_factory=lambda: STATE_DIR / "bench")
    keep_state: bool = False

    @property
    def history_mode(self) -> bool:
        return bool(self.history)


def parse(argv: list[str] | None = None) -> Options:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Drive the whole pipeline on a stack of its own and print its figures "
        "against the limits measured on the same broker (make bench).",
    )
    add = parser.add_argument
    add("--rates", type=_numbers, default=defaults.rates, help="offered appeals/s, e.g. 25,50")
    add("--step-s", type=float, default=defaults.step_s, help="seconds per offered rate")
    add("--saturation-s", type=float, help="seconds at saturation (default: --step-s)")
    add("--concurrency", type=int, default=defaults.concurrency,
        help="clients at saturation (intake and the bare endpoint)")  # fmt: skip
    add("--reviewers", type=int, default=defaults.reviewers, help="simulated reviewers")
    add("--review-s", type=float, default=defaults.review_s,
        help="seconds each reviewer spends on a case before deciding it")  # fmt: skip
    add("--warmup", type=int, default=defaults.warmup, help="appeals before measuring")
    add("--template", type=int, default=defaults.template,
        help="history mode: warm-up appeals cloned as history")  # fmt: skip
    add("--history", type=_sizes, default=defaults.history,
        help="history mode: store sizes in appeals, e.g. 10000,500000")  # fmt: skip
    add("--history-rate", type=float, default=defaults.history_rate,
        help="offered appeals/s at each history size")  # fmt: skip
    add("--idle-s", type=float, default=defaults.idle_s, help="seconds of idle measurement")
    add("--history-idle-s", type=float, default=defaults.history_idle_s)
    add("--limits-s", type=float, default=defaults.limits_s,
        help="seconds for the relay chain and the bare endpoint")  # fmt: skip
    add("--perf-records", type=int, default=defaults.perf_records,
        help="records for Kafka's ProducerPerformance")  # fmt: skip
    add("--record-size", type=int, default=defaults.record_size, help="bytes per limit record")
    add("--drain-timeout-s", type=float, default=defaults.drain_timeout_s,
        help="longest wait for the pipeline to catch up after a step")  # fmt: skip
    add("--integrity-timeout-s", type=float, default=defaults.integrity_timeout_s,
        help="longest wait at the end for every accepted appeal to arrive")  # fmt: skip
    add("--backlog-limit-s", type=float, default=defaults.backlog_limit_s,
        help="stop a step early when this many seconds of load are not yet audited")  # fmt: skip
    add("--judge-rate", type=float, default=defaults.judge_rate,
        help="the offered rate latency and lag are judged at")  # fmt: skip
    add("--decision-free-s", type=float,
        help="seconds of one more step at the judged rate with no reviewer deciding, reported "
        "for reading, not judged (default: --step-s; 0: none)")  # fmt: skip
    add("--partitions", type=int, default=defaults.partitions)
    add("--out-dir", type=Path, default=defaults.out_dir, help="where results go")
    add("--keep-state", action="store_true", help="keep the stack's folder (logs, stores)")
    args = parser.parse_args(argv)
    return Options(
        rates=args.rates,
        step_s=args.step_s,
        saturation_s=args.saturation_s if args.saturation_s is not None else args.step_s,
        concurrency=args.concurrency,
        reviewers=args.reviewers,
        review_s=args.review_s,
        warmup=args.warmup,
        template=args.template,
        history=args.history,
        history_rate=args.history_rate,
        idle_s=args.idle_s,
        history_idle_s=args.history_idle_s,
        limits_s=args.limits_s,
        perf_records=args.perf_records,
        record_size=args.record_size,
        drain_timeout_s=args.drain_timeout_s,
        integrity_timeout_s=args.integrity_timeout_s,
        backlog_limit_s=args.backlog_limit_s,
        judge_rate=args.judge_rate,
        decision_free_s=args.decision_free_s if args.decision_free_s is not None else args.step_s,
        partitions=args.partitions,
        out_dir=args.out_dir,
        keep_state=args.keep_state,
    )

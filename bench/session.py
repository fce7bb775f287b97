"""A bench session on a started :class:`BenchStack`: the observers, the bench's own processes
(load, reviewers), and the steps built from them (warm-up, idle, an open-loop or saturation step
with its drain, the integrity count). ``run.py`` puts them in order; ``limits/measure.py`` and
``seeding/history.py`` add the limits and history mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from appeals_runtime import store
from bench import procstat, report
from bench.children import Child
from bench.observers import AuditObserver, LagSample, LagSampler, LifecycleObserver, caught_up
from bench.options import Options
from bench.procstat import ProcSampler
from bench.stack import DATABASE, BenchStack
from bench.stats import Summary, rate, summarise

Say = Callable[[str], None]
BACKLOG_MIN = 50
EARLY_STOP_AFTER_S = 3.0
QUIET_S = 2.0
# The integrity count gives up on an appeal once nothing has arrived for this long.
STALL_S = 60.0
# How long a drain waits for the lag to reach 0 once the step's own appeals are through.
LAG_SETTLE_S = 30.0


@dataclass
class Accepted:
    step: str
    due: float  # when the request was due, wall-clock seconds
    ack_ms: float


@dataclass
class Driven:
    """What the load process reported for a step, and the appeals it got accepted."""

    done: dict[str, Any]
    outcomes: list[tuple[str, float, float, int]]
    ids: list[str]
    stopped_early: str | None


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


class Session:
    """What one run shares: its stack, observers and processes, and the accepted appeals."""

    def __init__(self, stack: BenchStack, options: Options, say: Say) -> None:
        self.stack = stack
        self.options = options
        self.say = say
        bootstrap = stack.infra.kafka_bootstrap_servers
        self.client = store.create_client(stack.infra.mongodb_url, app_name="bench")
        self.lifecycle = LifecycleObserver(bootstrap)
        self.audit = AuditObserver(self.client[store.service_database(DATABASE, "audit")])
        self.lag = LagSampler(bootstrap)
        self.children: dict[str, Child] = {}
        # Every child ever started, by name: its CPU keeps counting after it ended.
        self._child_pids: dict[str, int] = {}
        self.procs = ProcSampler(stack.process_leaders(self._extra_pids))
        self.accepted: dict[str, Accepted] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._outputs = stack.state_dir / "load"
        self._outputs.mkdir(parents=True, exist_ok=True)

    def _observer_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.say(f"  !! an observer failed: {task.exception()!r}; its figures stop here")

    def _extra_pids(self) -> dict[str, int]:
        return {"bench": os.getpid(), **self._child_pids}

    # Processes ---------------------------------------------------------------------------

    async def start(self) -> None:
        for runner in (self.lifecycle.run, self.audit.run, self.lag.run, self.procs.run):
            task = asyncio.create_task(runner())
            task.add_done_callback(self._observer_ended)
            self._tasks.append(task)
        self.load = await self.child(
            "load", ["bench.load", self.stack.intake_url, str(self.stack.signing_key)]
        )
        await self.load.expect("ready", wait_s=60)

    async def close(self) -> None:
        for child in list(self.children.values()):
            with contextlib.suppress(Exception):
                await child.stop()
        self.children.clear()
        for observer in (self.lifecycle, self.audit, self.lag, self.procs):
            observer.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.client.close()

    async def child(self, name: str, args: list[str], *, python_module: bool = True) -> Child:
        child = await Child.start(
            name, args, env=self.stack.env, log_dir=self.stack.log_dir,
            python_module=python_module,
        )  # fmt: skip
        self.children[name] = child
        self._child_pids[name] = child.pid
        return child

    async def stop_child(self, name: str) -> None:
        child = self.children.pop(name, None)
        if child is not None:
            await child.stop()

    async def start_reviewers(self) -> None:
        if self.options.reviewers <= 0 or "reviewers" in self.children:
            return
        reviewers = await self.child(
            "reviewers",
            ["bench.reviewers", self.stack.desk_target, str(self.stack.signing_key),
             str(self.options.reviewers), str(self.options.review_s)],
        )  # fmt: skip
        await reviewers.expect("ready", wait_s=60)

    async def stop_reviewers(self) -> None:
        await self.stop_child("reviewers")

    # Observations ------------------------------------------------------------------------

    def _check_services(self) -> None:
        exited = self.stack.exited()
        if exited:
            logs = ", ".join(str(self.stack.log_dir / f"{name}.log") for name in exited)
            raise RuntimeError(f"{', '.join(exited)} exited during the run (see {logs})")

    def _routed(self, appeal_id: str) -> bool:
        times = self.lifecycle.appeals.get(appeal_id)
        return times is not None and times.routed_ms is not None

    def _audited(self, appeal_id: str) -> bool:
        return appeal_id in self.audit.routed_at_ms

    def _complete(self, appeal_id: str) -> bool:
        return self._routed(appeal_id) and self._audited(appeal_id)

    def _told_decision(self, appeal_id: str) -> bool:
        times = self.lifecycle.appeals.get(appeal_id)
        return times is not None and times.notified_of_decision

    def _lag_text(self) -> str:
        latest = self.lag.latest
        if latest is None:
            return "lag ?"
        behind = ", ".join(f"{g} {n}" for g, n in latest.groups.items() if n)
        return f"lag {latest.total}" + (f" ({behind})" if behind else "")

    # Driving the load --------------------------------------------------------------------

    async def drive(
        self, command: dict[str, Any], *, label: str, offered: float | None, pipeline: bool
    ) -> Driven:
        out = self._outputs / f"{command['step']}.json"
        await self.load.send({**command, "out": str(out)})
        ids: list[str] = []
        began = time.monotonic()
        stopped: str | None = None
        longest = float(command["duration"]) + 120
        while True:
            line = await self.load.read(wait_s=longest)
            if line is None:
                raise RuntimeError(f"the load process ended{self.load.tail()}")
            if line.get("event") == "progress":
                self._check_services()
                ids.extend(line["new_ids"])
                elapsed = time.monotonic() - began
                self._progress(label, elapsed, line, ids, pipeline)
                reason = self._early_stop(line, ids, elapsed, offered) if pipeline else None
                if reason and stopped is None:
                    stopped = reason
                    self.say(f"  [{label}] stopping early: {reason}")
                    await self.load.send({"op": "stop"})
            elif line.get("event") == "done":
                break
        raw = json.loads(await asyncio.to_thread(out.read_text))
        outcomes = [tuple(item) for item in raw["outcomes"]]
        for appeal_id, due, latency_ms, status in outcomes if pipeline else ():
            if appeal_id and status == 202:
                self.accepted[appeal_id] = Accepted(command["step"], due, latency_ms)
        accepted_ids = [o[0] for o in outcomes if o[0] and o[3] == 202]
        return Driven(line, outcomes, accepted_ids, stopped)

    def _progress(
        self, label: str, elapsed: float, line: dict[str, Any], ids: list[str], pipeline: bool
    ) -> None:
        text = (
            f"  [{label}] {elapsed:4.0f}s  offered {line['sent']:>6}  "
            f"accepted {line['accepted']:>6}"
        )
        if pipeline:
            routed = sum(1 for i in ids if self._routed(i))
            audited = sum(1 for i in ids if self._audited(i))
            text += f"  routed {routed:>6}  audited {audited:>6}  {self._lag_text()}"
        text += f"  in flight {line['in_flight']}"
        self.say(text)

    def _early_stop(
        self, line: dict[str, Any], ids: list[str], elapsed: float, offered: float | None
    ) -> str | None:
        if offered is None or elapsed < EARLY_STOP_AFTER_S:
            return None
        limit = max(BACKLOG_MIN, offered * self.options.backlog_limit_s)
        backlog = len(ids) - sum(1 for i in ids if self._audited(i))
        if backlog > limit:
            return (
                f"backlog of {backlog} accepted appeals not yet audited "
                f"(> {self.options.backlog_limit_s:g} s of offered load)"
            )
        if line["in_flight"] > limit:
            return f"{line['in_flight']} requests unanswered (intake is not keeping up)"
        return None

    async def _drain(self, label: str, ids: list[str], *, full: bool = False) -> tuple[bool, float]:
        """Wait until every appeal in ``ids`` is routed and audited (``full``: also decided and
        the person told) and every consumer group committed what the broker held by then;
        (drained, seconds waited)."""
        began = time.monotonic()
        deadline = began + self.options.drain_timeout_s + (3 * len(ids) if full else 0)
        last_say = began
        arrived: float | None = None
        through_at = 0.0
        backlog: LagSample | None = None  # the broker's contents when the appeals were through
        while True:
            pending = [i for i in ids if not self._complete(i)]
            undecided = [i for i in ids if full and not self._told_decision(i)]
            latest = self.lag.latest
            now = time.monotonic()
            if not pending and not undecided:
                # Through once every group committed what the broker held by then (the
                # reviewers' decisions on a backlog of cases keep records coming after the
                # step's own appeals, so the lag need not read 0); wait for that only so long.
                if arrived is None:
                    arrived, through_at = now, time.time()
                if backlog is None:
                    recent = self.lag.samples[-10:]
                    backlog = next((s for s in recent if s.at >= through_at), None)
                if backlog is not None and latest is not None and caught_up(latest, backlog.ends):
                    return True, now - began
                if now - arrived >= LAG_SETTLE_S:
                    self.say(f"  [{label}] appeals through; consumers not caught up within "
                             f"{LAG_SETTLE_S:.0f}s after them: {self._lag_text()}")  # fmt: skip
                    return False, now - began
            self._check_services()
            if now >= deadline:
                self.say(
                    f"  [{label}] did not drain within {now - began:.0f}s: {len(pending)} not "
                    f"routed and audited" + (f", {len(undecided)} not decided" if full else "")
                    + f", {self._lag_text()}"
                )  # fmt: skip
                return False, now - began
            if now - last_say >= 1:
                text = f"  [{label}] drain {now - began:4.0f}s  waiting for {len(pending)}"
                if full:
                    text += f" (+{len(undecided)} to be decided and notified)"
                self.say(f"{text}  {self._lag_text()}")
                last_say = now
            await asyncio.sleep(0.2)

    # Steps -------------------------------------------------------------------------------

    async def open_step(self, name: str, offered: float, duration: float) -> dict[str, Any]:
        label = f"{offered:g}/s"
        command = {"op": "open", "step": name, "rate": offered, "duration": duration}
        return await self._step(name, label, command, offered=offered)

    async def saturation_step(self) -> dict[str, Any]:
        command = {
            "op": "closed",
            "step": "saturation",
            "concurrency": self.options.concurrency,
            "duration": self.options.saturation_s,
        }
        label = f"saturation x{self.options.concurrency}"
        result = await self._step("saturation", label, command, offered=None)
        result["concurrency"] = self.options.concurrency
        return result

    async def _step(
        self, name: str, label: str, command: dict[str, Any], *, offered: float | None
    ) -> dict[str, Any]:
        self.say(f"\n==> {name}: " + (f"{offered:g} appeals/s open loop" if offered else
                 f"{command['concurrency']} clients, closed loop") +
                 f" for {command['duration']:g}s")  # fmt: skip
        self.procs.start_window()
        cpu_before = self.procs.cpu()
        machine_before = procstat.machine_ticks()
        started = time.time()
        driven = await self.drive(command, label=label, offered=offered, pipeline=True)
        machine_busy = procstat.busy_percent(machine_before, procstat.machine_ticks())
        drained, drain_s = await self._drain(label, driven.ids)
        ended = time.time()
        cpu = procstat.cpu_delta(cpu_before, self.procs.cpu())
        result = self._step_result(name, driven, started, ended)
        result.update(
            offered_per_s=offered,
            duration_s=command["duration"],
            drained=drained,
            drain_s=round(drain_s, 1),
            cpu_ms_per_appeal={
                process: round(seconds * 1000 / max(1, len(driven.ids)), 2)
                for process, seconds in sorted(cpu.items())
            },
            max_rss_mb=self.procs.window_peaks_mb(),
            # While the load was on (the drain not included): a latency that grows at a rate
            # the stack's work per appeal does not explain is the machine running out of CPU.
            machine_busy_percent=machine_busy,
        )
        return result

    def _step_result(
        self, name: str, driven: Driven, started: float, ended: float
    ) -> dict[str, Any]:
        done, ids = driven.done, driven.ids
        first_due = min((o[1] for o in driven.outcomes), default=started)
        last_answer = max((o[1] + o[2] / 1000 for o in driven.outcomes), default=started)
        routed, audited, completions = [], [], []
        for appeal_id in ids:
            due_ms = _ms(self.accepted[appeal_id].due)
            times = self.lifecycle.appeals.get(appeal_id)
            if times is not None and times.routed_ms is not None:
                routed.append(times.routed_ms - due_ms)
            audited_ms = self.audit.routed_at_ms.get(appeal_id)
            if audited_ms is not None:
                audited.append(audited_ms - due_ms)
                if self._routed(appeal_id):
                    completions.append(audited_ms)
        decided = self.decided_to_notified(started, ended)
        end_to_end_window = (max(completions) / 1000 - first_due) if completions else 0
        latency: dict[str, Summary] = {
            "submit_to_202": summarise(o[2] for o in driven.outcomes if o[3] == 202),
            "submit_to_routed": summarise(routed),
            "submit_to_audited": summarise(audited),
            "decided_to_notified": summarise(decided),
        }
        return {
            "name": name,
            "sent": done["sent"],
            "accepted": len(ids),
            "statuses": done["statuses"],
            "errors": done["errors"],
            "stopped_early": driven.stopped_early,
            "max_schedule_lag_ms": done["max_schedule_lag_ms"],
            "accepted_per_s": rate(len(ids), last_answer - first_due),
            "end_to_end_per_s": rate(len(completions), end_to_end_window),
            "routed": len(routed),
            "audited": len(audited),
            "latency_ms": latency,
            **self._lag_after(done["sending_ended"]),
            "started_at": started,
            "ended_at": ended,
        }

    def decided_to_notified(self, started: float, ended: float) -> list[int]:
        """decided→notified of every decision made in [started, ended] whose notification has
        been seen so far (ms)."""
        return [
            notified - decided
            for decided, notified in self.lifecycle.decided_to_notified
            if _ms(started) <= decided <= _ms(ended)
        ]

    def settle_notifications(self, steps: Iterable[dict[str, Any]]) -> None:
        """Recount decided→notified once the run is over: a decision made near the end of a
        step is often told after the step's figures were taken."""
        for step in steps:
            found = self.decided_to_notified(step["started_at"], step["ended_at"])
            step["latency_ms"]["decided_to_notified"] = summarise(found)

    def _lag_after(self, since: float) -> dict[str, Any]:
        """How long after ``since`` (the load stopped) the consumers caught up: every group
        committed past everything the broker held at the first sample after ``since``. The
        reviewers keep deciding a backlog of cases after the load stops, so new records keep
        coming: the lag reading exactly 0 (``lag_read_zero_s``, also per group) can take long
        while nothing is behind."""
        samples = [s for s in self.lag.samples if s.at >= since]
        backlog = samples[0].ends if samples else {}
        caught = next((round(s.at - since, 1) for s in samples if caught_up(s, backlog)), None)
        total = next((round(s.at - since, 1) for s in samples if s.total == 0), None)
        groups: dict[str, float | None] = {}
        for sample in samples:
            for group, lag in sample.groups.items():
                if group not in groups or groups[group] is None:
                    groups[group] = round(sample.at - since, 1) if lag == 0 else None
        return {"lag_to_zero_s": caught, "lag_read_zero_s": total, "lag_to_zero_by_group_s": groups}

    # Phases ------------------------------------------------------------------------------

    async def warm_up(self, count: int, *, until_notified: bool) -> list[str]:
        offered = min(20.0, max(5.0, count / 10))
        until = ", each until decided and the person told" if until_notified else ""
        self.say(f"\n==> warm-up: {count} appeals at {offered:g}/s{until}")
        command = {"op": "open", "step": "warm-up", "rate": offered, "duration": count / offered}
        driven = await self.drive(command, label="warm-up", offered=None, pipeline=True)
        await self._drain("warm-up", driven.ids, full=until_notified)
        done = [i for i in driven.ids if self._complete(i)]
        if until_notified:
            done = [i for i in done if self._told_decision(i)]
        self.say(f"  warm-up: {len(done)} of {len(driven.ids)} accepted appeals complete")
        return done

    async def measure_idle(self, seconds: float) -> dict[str, Any]:
        """CPU of every process over ``seconds`` with no traffic (reviewers disconnected)."""
        self.say(f"\n==> idle: {seconds:g}s with no traffic")
        await self._wait_quiet()
        # The bench's own polling of the broker and the audit log would show as their CPU.
        await self._pause_observers()
        try:
            before, began = self.procs.cpu(), time.monotonic()
            await asyncio.sleep(seconds)
            elapsed = time.monotonic() - began
            delta = procstat.cpu_delta(before, self.procs.cpu())
        finally:
            self._resume_observers()
        percent = {name: round(100 * s / elapsed, 2) for name, s in sorted(delta.items())}
        stack = round(sum(v for n, v in percent.items() if n in report.STACK), 2)
        self.say(
            f"  idle: stack {stack:.1f} % of one core ("
            + ", ".join(f"{n} {percent[n]:.1f}" for n in report.STACK if n in percent) + ")"
        )  # fmt: skip
        return {"seconds": round(elapsed, 1), "stack_cpu_percent": stack, "cpu_percent": percent}

    async def _pause_observers(self) -> None:
        for pause in (self.lifecycle.pause, self.audit.pause):
            with contextlib.suppress(TimeoutError):  # an observer that died holds nothing up
                await asyncio.wait_for(pause(), 10)
        self.lag.pause()

    def _resume_observers(self) -> None:
        self.lifecycle.resume()
        self.audit.resume()
        self.lag.resume()

    async def _wait_quiet(self) -> None:
        deadline = time.monotonic() + self.options.drain_timeout_s
        began = time.monotonic()
        while time.monotonic() < deadline:
            latest = self.lag.latest
            if latest is not None and latest.total == 0 and latest.at > began:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(QUIET_S)

    # Integrity ---------------------------------------------------------------------------

    def _arrived(self, appeal_id: str) -> bool:
        return self.audit.submitted[appeal_id] > 0 and self._routed(appeal_id)

    async def _wait_for_all(self, ids: list[str]) -> tuple[str, float]:
        """Wait while appeals keep arriving in the audit log and at routing: a slow pipeline is
        not a lossy one. Ends ``complete``, ``stalled`` (nothing new for ``STALL_S``: what is
        missing is lost) or ``capped`` (``--integrity-timeout-s``)."""
        began = last_progress = last_say = time.monotonic()
        missing = len(ids)
        while True:
            pending = [i for i in ids if not self._arrived(i)]
            now = time.monotonic()
            self._check_services()
            if len(pending) < missing:
                missing, last_progress = len(pending), now
            if not pending:
                return "complete", now - began
            if now - last_progress >= STALL_S:
                self.say(f"  [integrity] {len(pending)} still missing, none arrived for "
                         f"{STALL_S:.0f}s")  # fmt: skip
                return "stalled", now - began
            if now - began >= self.options.integrity_timeout_s:
                self.say(f"  [integrity] {len(pending)} still arriving after {now - began:.0f}s")
                return "capped", now - began
            if now - last_say >= 5:
                self.say(f"  [integrity] {now - began:4.0f}s  {len(pending):,} not yet logged "
                         f"and routed  {self._lag_text()}")  # fmt: skip
                last_say = now
            await asyncio.sleep(0.5)

    async def integrity(self, steps: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """Every accepted appeal: logged exactly once as submitted, routed exactly once."""
        ids = list(self.accepted)
        self.say(f"\n==> integrity: waiting for all {len(ids):,} accepted appeals")
        ended, waited = await self._wait_for_all(ids)
        lost_audit = {i for i in ids if self.audit.submitted[i] == 0}
        dup_audit = {i for i in ids if self.audit.submitted[i] > 1}
        routed = {i: len(t.routed_ids) for i, t in self.lifecycle.appeals.items()}
        lost_routing = {i for i in ids if routed.get(i, 0) == 0}
        dup_routing = {i for i in ids if routed.get(i, 0) > 1}
        lost, duplicated = lost_audit | lost_routing, dup_audit | dup_routing
        for step in steps:
            mine = {i for i in ids if self.accepted[i].step == step["name"]}
            step["lost"] = len(mine & lost)
            step["duplicated"] = len(mine & duplicated)
        return {
            "accepted": len(ids),
            # complete: all arrived; stalled: the missing ones stopped coming (lost); capped:
            # still arriving when the bench stopped waiting (--integrity-timeout-s).
            "wait_ended": ended,
            "waited_s": round(waited, 1),
            "lost": len(lost),
            "duplicated": len(duplicated),
            "not_in_audit_log": len(lost_audit),
            "twice_in_audit_log": len(dup_audit),
            "never_routed": len(lost_routing),
            "routed_more_than_once": len(dup_routing),
            "examples": sorted(lost | duplicated)[:10],
        }

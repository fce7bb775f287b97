"""CPU time and memory of every process the bench runs, from ``/proc`` (Linux).

Each named process is a process group (everything is started in its own session, so the group
holds the process and anything it spawned). Sampled once a second: CPU seconds (user + system)
summed over the group, and resident memory. CPU of a process that was restarted (history mode
restarts the services) keeps counting: the totals are per name, over every incarnation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
PAGE = 1024  # /proc/<pid>/status reports kB
MB = 1024 * 1024


@dataclass(frozen=True)
class ProcessStat:
    pid: int
    group: int
    cpu_s: float


def parse_stat(text: str) -> tuple[int, float]:
    """(process group, user + system CPU seconds) from the text of ``/proc/<pid>/stat``.

    The command name (field 2) may hold spaces and parentheses, so fields are counted from the
    last ``)``: after it come state (3), ppid (4), pgrp (5), ..., utime (14), stime (15).
    """
    rest = text[text.rindex(")") + 2 :].split()
    group = int(rest[2])
    ticks = int(rest[11]) + int(rest[12])
    return group, ticks / TICKS_PER_S


def parse_rss(text: str) -> int:
    """Resident memory in bytes from the text of ``/proc/<pid>/status`` (0 if not reported)."""
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * PAGE
    return 0


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def scan() -> dict[int, ProcessStat]:
    found = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        text = _read(entry / "stat")
        if text is None:
            continue
        with contextlib.suppress(ValueError, IndexError):
            group, cpu_s = parse_stat(text)
            found[int(entry.name)] = ProcessStat(int(entry.name), group, cpu_s)
    return found


@dataclass
class Usage:
    # CPU seconds per pid ever seen under this name (the last value read).
    cpu_by_pid: dict[int, float] = field(default_factory=dict)
    rss_bytes: int = 0
    peak_rss_bytes: int = 0
    window_peak_rss_bytes: int = 0

    @property
    def cpu_s(self) -> float:
        return sum(self.cpu_by_pid.values())


class ProcSampler:
    """``leaders`` returns, at each sample, name → pids to watch (group leaders, or single
    processes such as the bench itself)."""

    INTERVAL_S = 1.0

    def __init__(self, leaders: Callable[[], Mapping[str, int]]) -> None:
        self._leaders = leaders
        self.usage: dict[str, Usage] = {}
        self._stopping = asyncio.Event()

    def sample(self) -> None:
        processes = scan()
        by_group: dict[int, list[ProcessStat]] = {}
        for stat in processes.values():
            by_group.setdefault(stat.group, []).append(stat)
        for name, leader in self._leaders().items():
            usage = self.usage.setdefault(name, Usage())
            members = by_group.get(leader) or ([processes[leader]] if leader in processes else [])
            rss = 0
            for member in members:
                usage.cpu_by_pid[member.pid] = member.cpu_s
                rss += parse_rss(_read(PROC / str(member.pid) / "status") or "")
            usage.rss_bytes = rss
            usage.peak_rss_bytes = max(usage.peak_rss_bytes, rss)
            usage.window_peak_rss_bytes = max(usage.window_peak_rss_bytes, rss)

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far, by name (sampled now)."""
        self.sample()
        return {name: usage.cpu_s for name, usage in self.usage.items()}

    def start_window(self) -> None:
        for usage in self.usage.values():
            usage.window_peak_rss_bytes = usage.rss_bytes

    def window_peaks_mb(self) -> dict[str, float]:
        return {
            name: round(usage.window_peak_rss_bytes / MB, 1) for name, usage in self.usage.items()
        }

    def peaks_mb(self) -> dict[str, float]:
        return {name: round(usage.peak_rss_bytes / MB, 1) for name, usage in self.usage.items()}

    async def run(self) -> None:
        while not self._stopping.is_set():
            self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.INTERVAL_S)

    def stop(self) -> None:
        self._stopping.set()


def cpu_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}


@dataclass(frozen=True)
class MachineTicks:
    """The whole machine's CPU time so far, all CPUs together, in clock ticks."""

    busy: int
    total: int


def parse_machine_stat(text: str) -> MachineTicks:
    """From the first line of ``/proc/stat``: ``cpu user nice system idle iowait irq softirq
    steal ...``. Idle and iowait are not busy; guest time is already inside user and nice."""
    fields = [int(value) for value in text.splitlines()[0].split()[1:9]]
    fields += [0] * (8 - len(fields))
    idle = fields[3] + fields[4]
    total = sum(fields)
    return MachineTicks(busy=total - idle, total=total)


def machine_ticks() -> MachineTicks:
    return parse_machine_stat((PROC / "stat").read_text())


def busy_percent(before: MachineTicks, after: MachineTicks) -> float | None:
    """How busy the machine's CPUs were between two readings, in % of all of them (everything
    that ran counts: the stack, the bench, anything else on the machine)."""
    total = after.total - before.total
    if total <= 0:
        return None
    return round(100 * (after.busy - before.busy) / total, 1)

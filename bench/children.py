"""The bench's own helper processes (load, reviewers, limits, seeding): started, talked to in
JSON lines, and stopped however the bench ends.

Each runs ``python -m <module>`` in its own session (so a Ctrl-C in the terminal reaches only
the bench, which then stops it and its children), reads commands as JSON lines on stdin and
reports as JSON lines on stdout; its stderr goes to a log file in the bench's state folder.
Every started process is remembered in :data:`STARTED` so that the bench's last ``finally``
can stop whatever is still running, even after the event loop is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from appeals_devstack.paths import REPO_ROOT

# pid → name of every child still running (process group leaders).
STARTED: dict[int, str] = {}
STOP_TIMEOUT_S = 20.0


class Child:
    def __init__(self, name: str, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.name = name
        self.process = process
        self.log_path = log_path

    @classmethod
    async def start(
        cls,
        name: str,
        args: list[str],
        *,
        env: Mapping[str, str],
        log_dir: Path,
        python_module: bool = True,
    ) -> Child:
        log_path = log_dir / f"{name}.log"
        command = [sys.executable, "-m", *args] if python_module else args
        with _log_file(log_path) as log:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=dict(env),
                cwd=REPO_ROOT,
                start_new_session=True,
                limit=16 * 1024 * 1024,
            )
        STARTED[process.pid] = name
        return cls(name, process, log_path)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def send(self, command: Mapping[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()

    async def read(self, wait_s: float | None = None) -> dict[str, Any] | None:
        """The next JSON line, or None when the process closed its output (it ended)."""
        assert self.process.stdout is not None
        while True:
            line = await asyncio.wait_for(self.process.stdout.readline(), wait_s)
            if not line:
                return None
            text = line.decode(errors="replace").strip()
            if text.startswith("{"):
                parsed: dict[str, Any] = json.loads(text)
                return parsed

    async def read_all(self, wait_s: float) -> str:
        """Everything the process writes on stdout until it ends (a tool's plain output)."""
        assert self.process.stdout is not None
        data = await asyncio.wait_for(self.process.stdout.read(), wait_s)
        return data.decode(errors="replace")

    async def expect(self, event: str, wait_s: float) -> dict[str, Any]:
        """Read lines until one with ``"event": event``; fails if the process ends first."""
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}: no {event!r} within {wait_s:.0f}s{self.tail()}")
            line = await self.read(remaining)
            if line is None:
                raise RuntimeError(f"{self.name} ended before {event!r}{self.tail()}")
            if line.get("event") == event:
                return line

    def tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"; last lines of {self.log_path}:\n" + "\n".join(text) if text else ""

    async def stop(self, grace_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``grace_s``; the exit code."""
        if self.process.returncode is None:
            _signal_group(self.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), grace_s)
            except TimeoutError:
                _signal_group(self.pid, signal.SIGKILL)
                await self.process.wait()
        STARTED.pop(self.pid, None)
        return self.process.returncode


def _log_file(path: Path) -> IO[bytes]:
    """The child's stderr log, appended to (a local file: opening it does not block)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "ab")


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def kill_all_started() -> None:
    """Last resort, outside any event loop: kill every child still registered."""
    for pid in list(STARTED):
        _signal_group(pid, signal.SIGKILL)
        STARTED.pop(pid, None)

"""Starting, waiting for and stopping local child processes, leaving none behind."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

# Ports handed out below the kernel's ephemeral range (Linux: 32768-60999). A port the kernel
# picks for bind(0) comes from that range, which is also where every outgoing connection's
# local port comes from: between choosing such a port and the server binding it, a Kafka
# client's or a scraper's connection could take it ("address already in use", seen in CI).
# Below the range only listeners compete, and they bind explicitly.
PORT_RANGE = range(20000, 32768)
_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now, outside the ephemeral range, never handed out twice by
    this process."""
    for _ in range(200):
        port = random.choice(PORT_RANGE)  # noqa: S311 - spreading, not secrecy
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port found in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def spawn(
    args: list[str],
    *,
    log_path: Path | None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``args`` in its own process group (so stopping it stops its children too)."""
    stdout = open(log_path, "ab") if log_path else subprocess.PIPE  # noqa: SIM115
    try:
        return subprocess.Popen(
            args,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        if log_path:
            stdout.close()  # type: ignore[union-attr]


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    alive: Callable[[], bool] | None = None,
    log_path: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if alive is not None and not alive():
            raise RuntimeError(f"{what} exited during start-up{_tail(log_path)}")
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s{_tail(log_path)}")


def _tail(log_path: Path | None, lines: int = 30) -> str:
    if not log_path or not log_path.exists():
        return ""
    text = log_path.read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {log_path}:\n" + "\n".join(text)


def stop_group(
    pid: int, *, timeout: float = 20.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """SIGTERM the process group led by ``pid``; SIGKILL whatever is left after ``timeout``.

    Pass ``process`` when the leader is our child, so that it is reaped rather than left a zombie.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leader_done = process is None or process.poll() is not None
        if leader_done and not _group_exists(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    if process is not None:
        process.wait()


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalServer:
    """What the dev stack's servers (Kafka, FerretDB, Jaeger, Prometheus) share: one child
    process group logging to ``log_path``, a wait for readiness that fails fast when the process
    dies, and a stop that leaves nothing behind."""

    process: subprocess.Popen[bytes] | None
    stop_timeout: ClassVar[float] = 10.0

    @property
    def log_path(self) -> Path:
        raise NotImplementedError

    def _launch(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.process = spawn(args, log_path=self.log_path, env=env)

    def _wait(self, condition: Callable[[], bool], *, timeout: float, what: str) -> None:
        process = self.process
        wait_until(
            condition,
            timeout=timeout,
            what=what,
            alive=(lambda: process.poll() is None) if process else None,
            log_path=self.log_path,
        )

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process.pid, timeout=self.stop_timeout, process=self.process)
            self.process = None

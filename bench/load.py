"""The load process: submits appeals over REST, open loop at a fixed rate or closed loop at
saturation, and times every request from when it was *scheduled*.

    python -m bench.load INTAKE_URL SIGNING_KEY_FILE

Its own OS process, so that the bench's observers and the pipeline's services never delay the
sending (and its CPU shows on its own line). Commands arrive as JSON lines on stdin:

* ``{"op": "open", "step": ..., "rate": 50, "duration": 20, "out": FILE}``: request ``i`` is due
  at ``start + i / rate`` and is sent then, whether or not earlier ones were answered (open
  loop). Its latency counts from that due time, so a stalled server or a late sender shows in
  the latencies instead of silently lowering the offered rate (no coordinated omission);
* ``{"op": "closed", "step": ..., "concurrency": 40, "duration": 20, "out": FILE, "url": ...}``:
  ``concurrency`` clients each send the next request when the last is answered (saturation),
  to intake or, with ``url``, to another endpoint taking the same body;
* ``{"op": "stop"}`` ends the current step early; ``{"op": "quit"}`` ends the process.

Reports (JSON lines on stdout): ``ready``; a ``progress`` line a second with the appeal ids
accepted since the last one; ``done`` with the counts. Each request's outcome (appeal id, due
time as wall-clock seconds, latency in ms, HTTP status or 0 for no answer) goes to ``out``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from appeals_devstack import devkeys
from bench import mix

REQUEST_TIMEOUT_S = 30.0
# Requests on the wire at once. Requests due beyond it wait for a connection (their latency
# still counts from when they were due).
MAX_CONNECTIONS = 256
PROGRESS_EVERY_S = 1.0


class Clock:
    """Wall-clock times derived from the monotonic clock, so a wall-clock step never bends a
    latency, yet times compare with Kafka record timestamps and the audit log's."""

    def __init__(self) -> None:
        self._wall0 = time.time()
        self._mono0 = time.monotonic()

    def wall(self, mono: float) -> float:
        return self._wall0 + (mono - self._mono0)


@dataclass
class StepState:
    step: str
    sent: int = 0
    answered: int = 0
    accepted: int = 0
    in_flight: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    outcomes: list[tuple[str, float, float, int]] = field(default_factory=list)
    new_ids: list[str] = field(default_factory=list)
    # How late the sender itself was, at worst (a busy machine shows here).
    max_schedule_lag_ms: float = 0.0


def _say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


class Load:
    def __init__(self, intake_url: str, signing_key: Path) -> None:
        self.intake_url = intake_url.rstrip("/")
        self.clock = Clock()
        self.tokens = {
            platform: devkeys.mint_token(
                signing_key, role="surface", subject=f"{platform}-bench", platforms=[platform]
            )
            for platform in mix.PLATFORMS
        }
        # aiohttp, not httpx: the load runs on the machine it measures, and httpx spends about
        # 3 ms of CPU per request here against 0.1 ms (measured with both on one server).
        self.client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
        )
        self._connections = asyncio.Semaphore(MAX_CONNECTIONS)
        self.stopping = asyncio.Event()
        # Bodies differ from run to run: the same user and subject ids would meet intake's
        # one-open-appeal rule in a store that outlived an earlier run.
        self._seed = int.from_bytes(os.urandom(4), "big")
        self._sending_ended = 0.0

    async def close(self) -> None:
        await self.client.close()

    def _bodies(self, count: int) -> Iterator[dict[str, Any]]:
        self._seed += 1
        return mix.bodies(count, seed=self._seed)

    async def _send(self, state: StepState, url: str, body: dict[str, Any], due: float) -> None:
        state.sent += 1
        state.in_flight += 1
        status, appeal_id = 0, ""
        try:
            async with self._connections:
                if self.stopping.is_set():
                    # Due while every connection was busy, and the step stopped meanwhile.
                    state.errors["not sent: step stopped"] += 1
                    return
                status, answer = await self._post(url, body)
            if status == 202:
                appeal_id = str(answer.get("appeal_id", ""))
        except (aiohttp.ClientError, TimeoutError) as error:
            status = 0
            state.errors[type(error).__name__] += 1
        finally:
            state.in_flight -= 1
        latency_ms = (time.monotonic() - due) * 1000
        state.answered += status != 0
        state.statuses[str(status)] += 1
        if appeal_id:
            state.accepted += 1
            state.new_ids.append(appeal_id)
        state.outcomes.append((appeal_id, self.clock.wall(due), round(latency_ms, 2), status))

    async def _post(self, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The answer's status and, for a 202, its JSON body."""
        async with self.client.post(
            url,
            json=body,
            headers={
                "Authorization": f"Bearer {self.tokens[body['platform']]}",
                "Idempotency-Key": uuid.uuid4().hex,
            },
        ) as response:
            if response.status != 202:
                await response.read()
                return response.status, {}
            answer: dict[str, Any] = await response.json(content_type=None)
            return response.status, answer

    async def open_loop(self, state: StepState, url: str, rate: float, duration: float) -> None:
        count = max(1, round(rate * duration))
        bodies = list(self._bodies(count))  # made before the clock starts
        start = time.monotonic() + 0.05
        tasks = set()
        for index, body in enumerate(bodies):
            due = start + index / rate
            delay = due - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
            if self.stopping.is_set():
                break
            state.max_schedule_lag_ms = max(
                state.max_schedule_lag_ms, (time.monotonic() - due) * 1000
            )
            task = asyncio.create_task(self._send(state, url, body, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        self._sending_ended = self.clock.wall(time.monotonic())
        if tasks:
            await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_S + 5)
        for task in list(tasks):  # not answered within the request timeout: give up on them
            task.cancel()

    async def closed_loop(
        self, state: StepState, url: str, concurrency: int, duration: float
    ) -> None:
        end = time.monotonic() + duration
        bodies = self._bodies(sys.maxsize)

        async def client() -> None:
            while time.monotonic() < end and not self.stopping.is_set():
                body = next(bodies, None)
                if body is None:
                    return
                await self._send(state, url, body, time.monotonic())

        await asyncio.gather(*(client() for _ in range(concurrency)))
        self._sending_ended = self.clock.wall(time.monotonic())

    async def run_step(self, command: dict[str, Any]) -> None:
        state = StepState(step=str(command["step"]))
        url = command.get("url") or f"{self.intake_url}/v1/appeals"
        self.stopping.clear()
        started = self.clock.wall(time.monotonic())
        self._sending_ended = started
        reporter = asyncio.create_task(self._report(state))
        try:
            if command["op"] == "open":
                await self.open_loop(state, url, float(command["rate"]), float(command["duration"]))
            else:
                await self.closed_loop(
                    state, url, int(command["concurrency"]), float(command["duration"])
                )
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
        self._progress(state)
        document = json.dumps({"outcomes": state.outcomes})
        await asyncio.to_thread(Path(command["out"]).write_text, document)
        _say(
            event="done",
            step=state.step,
            sent=state.sent,
            answered=state.answered,
            accepted=state.accepted,
            statuses=dict(state.statuses),
            errors=dict(state.errors),
            started=started,
            sending_ended=self._sending_ended,
            ended=self.clock.wall(time.monotonic()),
            stopped_early=self.stopping.is_set(),
            max_schedule_lag_ms=round(state.max_schedule_lag_ms, 1),
            out=command["out"],
        )

    def _progress(self, state: StepState) -> None:
        ids, state.new_ids = state.new_ids, []
        _say(
            event="progress",
            step=state.step,
            sent=state.sent,
            answered=state.answered,
            accepted=state.accepted,
            in_flight=state.in_flight,
            new_ids=ids,
        )

    async def _report(self, state: StepState) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            self._progress(state)


async def _commands() -> tuple[asyncio.Queue[dict[str, Any] | None], asyncio.Task[None]]:
    """Lines of stdin as parsed commands (None once stdin closes), and the task reading them
    (the caller keeps it: the event loop holds tasks only weakly)."""
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def pump() -> None:
        while line := await reader.readline():
            if line.strip():
                await queue.put(json.loads(line))
        await queue.put(None)

    return queue, asyncio.create_task(pump())


async def serve(intake_url: str, signing_key: Path) -> None:
    load = Load(intake_url, signing_key)
    commands, reading = await _commands()
    step: asyncio.Task[None] | None = None
    _say(event="ready")
    try:
        while (command := await commands.get()) is not None:
            op = command.get("op")
            if op == "quit":
                break
            if op == "stop":
                load.stopping.set()
            elif op in ("open", "closed"):
                if step is not None:
                    await step
                step = asyncio.create_task(load.run_step(command))
        if step is not None:
            load.stopping.set()
            await step
    finally:
        reading.cancel()
        await load.close()


def main() -> None:
    # uvloop, as the services use: the load process shares the two cores with what it measures,
    # so every millisecond it spends per request is taken from the pipeline.
    uvloop.run(serve(sys.argv[1], Path(sys.argv[2])))


if __name__ == "__main__":
    main()

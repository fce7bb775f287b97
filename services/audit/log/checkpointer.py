"""The checkpointer: a service component that signs a checkpoint when the log has grown.

It signs once at start (whatever a previous run appended and left unsigned), then waits until
this instance's appender has written new entries, lets them gather for ``interval_s`` (so a busy
log is signed at most once per interval), and integrates and signs what was appended. A log that
does not grow costs nothing: no timer, no store read. The work of a tick is proportional to the
entries appended since the last checkpoint (read by ``_id``) plus O(log n) subtree hashes.

Several audit instances may tick at once, each after its own appends: checkpoints are keyed by
tree size and Ed25519 signing is deterministic, so they produce and store the same note, and each
signs every entry up to the tail, its own and the others'. A refusal (the log no longer extends
what was signed) is logged as an error at every tick until someone looks: it is the alarm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from appeals_runtime.errors import TransientError
from services.audit.log.integrity import Integrity, IntegrityError

log = logging.getLogger(__name__)


class Checkpointer:
    name = "checkpointer"

    def __init__(self, integrity: Integrity, grown: asyncio.Event, *, interval_s: float) -> None:
        self._integrity = integrity
        self._grown = grown
        self._interval_s = interval_s
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        await self.tick()
        while not self._stopping.is_set():
            if await self._first(self._grown, self._stopping) is self._stopping:
                break
            with contextlib.suppress(TimeoutError):  # let this interval's appends gather
                await asyncio.wait_for(self._stopping.wait(), timeout=self._interval_s)
            self._grown.clear()  # appends from here on call for the next tick
            await self.tick()
        if self._grown.is_set():
            await self.tick()  # sign what was appended since the last tick before stopping

    @staticmethod
    async def _first(*events: asyncio.Event) -> asyncio.Event:
        """Wait until one of ``events`` is set; returns it."""
        waiters = {asyncio.create_task(event.wait()): event for event in events}
        try:
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return waiters[next(iter(done))]

    async def tick(self) -> None:
        try:
            await self._integrity.checkpoint()
        except IntegrityError as error:
            log.error("refusing to sign a checkpoint", extra={"reason": str(error)})
        except (TransientError, LookupError) as error:
            log.warning("checkpoint postponed", extra={"reason": str(error)})
            self._grown.set()  # try again after the next interval
        except Exception:
            # A bug here must not take the consumer down with it; the next tick tries again.
            log.exception("checkpoint failed")

    async def stop(self) -> None:
        self._stopping.set()

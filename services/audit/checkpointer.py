"""The periodic checkpointer: a service component that signs a checkpoint every interval.

Each tick integrates the entries appended since the last checkpoint and signs the tree, if it grew.
Several audit instances may tick at once: checkpoints are keyed by tree size and Ed25519 signing is
deterministic, so they produce and store the same note. A refusal (the log no longer extends what
was signed) is logged as an error on every tick until someone looks: it is the alarm.
"""

from __future__ import annotations

import asyncio
import logging

from appeals_runtime.errors import TransientError
from services.audit.integrity import Integrity, IntegrityError

log = logging.getLogger(__name__)


class Checkpointer:
    name = "checkpointer"

    def __init__(self, integrity: Integrity, *, interval_s: float) -> None:
        self._integrity = integrity
        self._interval_s = interval_s
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        while not self._stopping.is_set():
            await self.tick()
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self._interval_s)
            except TimeoutError:
                continue

    async def tick(self) -> None:
        try:
            await self._integrity.checkpoint()
        except IntegrityError as error:
            log.error("refusing to sign a checkpoint", extra={"reason": str(error)})
        except (TransientError, LookupError) as error:
            log.warning("checkpoint postponed", extra={"reason": str(error)})
        except Exception:
            # A bug here must not take the consumer down with it; the next tick tries again.
            log.exception("checkpoint failed")

    async def stop(self) -> None:
        self._stopping.set()

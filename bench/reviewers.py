"""Simulated reviewers for the bench: each works the agent desk as ``appeals agent --auto``
does (stream offers, claim, decide by the demo rule), until the process is stopped.

    python -m bench.reviewers DESK_TARGET SIGNING_KEY_FILE COUNT

Their own process, so their CPU shows on its own line. A reviewer whose stream breaks (routing
restarting, a deadline under load) connects again after a short pause: the bench measures the
pipeline, and a reviewer giving up would only hide it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path

from appeals_cli import reviewer
from appeals_devstack import devkeys

RECONNECT_AFTER_S = 0.5
log = logging.getLogger(__name__)


async def work(target: str, token: str, decided: list[int]) -> None:
    def count(_: str) -> None:
        decided[0] += 1

    while True:
        try:
            await reviewer.review(target, token, auto=True, count=None, say=count)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("reviewer reconnects after %r", error)
        await asyncio.sleep(RECONNECT_AFTER_S)


async def serve(target: str, signing_key: Path, count: int) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    decided = [0]
    workers = [
        asyncio.create_task(
            work(
                target,
                devkeys.mint_token(signing_key, role="agent", subject=f"bench-reviewer-{n + 1}",
                                   queues=["*"]),
                decided,
            )
        )
        for n in range(count)
    ]  # fmt: skip
    print(json.dumps({"event": "ready", "reviewers": count}), flush=True)
    await stopping.wait()
    for worker in workers:
        worker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*workers, return_exceptions=True)
    print(json.dumps({"event": "stopped", "decided": decided[0]}), flush=True)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])))


if __name__ == "__main__":
    main()

"""Simulated reviewers for the bench: each works the agent desk as ``appeals agent --auto``
does (stream offers, claim, decide by the demo rule), until the process is stopped.

    python -m bench.reviewers DESK_TARGET SIGNING_KEY_FILE COUNT [REVIEW_S]

Each takes REVIEW_S seconds over a case before deciding it (people read the case).

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

import uvloop

from appeals_cli import reviewer
from appeals_devstack import devkeys

RECONNECT_AFTER_S = 0.5
log = logging.getLogger(__name__)


# Cases a reviewer works at once (its claims plus reserved offers): registered, as a person's
# desk client would, so each is offered what it can work rather than the policy's window for
# unregistered clients.
CAPACITY = 2


# What each bench reviewer registers: any case (the bench measures the pipeline, not skills).
PROFILE = reviewer.skills_profile(["*"], seniority="senior", capacity=CAPACITY)


async def work(target: str, token: str, decided: list[int], review_s: float) -> None:
    def count(_: str) -> None:
        decided[0] += 1

    while True:
        try:
            await reviewer.review(target, token, auto=True, count=None, say=count,
                                  pause_s=review_s, profile=PROFILE)  # fmt: skip
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("reviewer reconnects after %r", error)
        await asyncio.sleep(RECONNECT_AFTER_S)


async def serve(target: str, signing_key: Path, count: int, review_s: float) -> None:
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
                                   queues=["*"], reviewer="assistant"),
                decided,
                review_s,
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
    review_s = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    uvloop.run(serve(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), review_s))  # as bench.load


if __name__ == "__main__":
    main()

"""Admission control for an HTTP service: at most ``limit`` requests in hand at once.

A server that takes every request it is sent queues what it cannot serve yet: when load passes
what it can do, every request waits longer, each holds its body, its task and its buffers, and
clients give up on answers that come too late (in the bench, intake at 200 appeals/s offered held
about 1,500 requests, answered in 7 s at the median and grew past 170 MB). Answering the request
beyond the limit at once with 503 and ``Retry-After`` (DESIGN: backpressure by 503/429, never by
dropping) keeps the wait of those accepted and the memory bounded, and tells the client when to
come back. Nothing of a refused request was read or done, so retrying it is always safe.

Probes and metrics are never refused: an orchestrator must see a busy process as alive.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from starlette.types import ASGIApp, Receive, Scope, Send

from appeals_runtime import metrics
from appeals_runtime.http import PROBE_PATHS, problem

log = logging.getLogger(__name__)
_refused = metrics.counter(metrics.HTTP_REQUESTS_REFUSED)

# What a refused client is told to wait: a second is long enough for a burst to pass.
RETRY_AFTER_S = 1


class AdmissionLimit:
    """ASGI middleware: requests beyond ``limit`` in hand are answered 503 problem+json."""

    def __init__(self, app: ASGIApp, *, limit: int, exempt: Collection[str] = PROBE_PATHS) -> None:
        if limit < 1:
            raise ValueError("the admission limit must be at least 1")
        self._app = app
        self._limit = limit
        self._exempt = frozenset(exempt)
        self.in_hand = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._exempt:
            await self._app(scope, receive, send)
            return
        if self.in_hand >= self._limit:
            _refused.add(1, {"http.request.method": scope["method"]})
            response = problem(
                503,
                "Service overloaded",
                f"More than {self._limit} requests are in hand; nothing of this one was "
                "read or done. Retry after the time Retry-After gives.",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
            await response(scope, receive, send)
            return
        self.in_hand += 1
        try:
            await self._app(scope, receive, send)
        finally:
            self.in_hand -= 1

"""Admission control: at most ``limit`` requests in hand at once, the next refused at once.

A server that takes every request it is sent queues what it cannot serve yet: when load passes
what it can do, every request waits longer, each holds its body, its task and its buffers, and
clients give up on answers that come too late (in the bench, intake at 200 appeals/s offered held
about 1,500 requests, answered in 7 s at the median and grew past 170 MB). Refusing the request
beyond the limit at once (DESIGN: backpressure by 503/429, never by dropping) keeps the wait of
those accepted and the memory bounded, and tells the client to come back. Nothing of a refused
request was read or done, so retrying it is always safe.

:class:`InHand` counts; :class:`AdmissionLimit` applies it to an HTTP app (503 problem+json with
``Retry-After``), and a gRPC method applies it with :meth:`InHand.admitted` (:class:`Overloaded`,
which ``grpc_server.guarded`` answers UNAVAILABLE, the status gRPC clients retry). Probes and
metrics are never refused: an orchestrator must see a busy process as alive.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator

from starlette.types import ASGIApp, Receive, Scope, Send

from appeals_runtime import metrics
from appeals_runtime.errors import TransientError
from appeals_runtime.http import PROBE_PATHS, problem

_refused = metrics.counter(metrics.REQUESTS_REFUSED)

# What a refused client is told to wait: a second is long enough for a burst to pass.
RETRY_AFTER_S = 1
# Requests in hand by default: about what one instance on two cores serves in one to two
# seconds, so only an overload meets it, and it bounds the wait of those accepted to about that.
DEFAULT_LIMIT = 128


class Overloaded(TransientError):  # noqa: N818 - says what happened, like NotFound
    """Refused at the door: the limit of requests in hand was reached. Nothing was done."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"More than {limit} requests are in hand; this one was not started.")


class InHand:
    """How many requests of one channel are in hand, against ``limit``."""

    def __init__(self, limit: int, *, channel: str) -> None:
        if limit < 1:
            raise ValueError("the admission limit must be at least 1")
        self.limit = limit
        self.count = 0
        self._refused_attributes = {"channel": channel}

    def enter(self) -> bool:
        """Take a place if one is free; False (and counted as refused) when none is."""
        if self.count >= self.limit:
            _refused.add(1, self._refused_attributes)
            return False
        self.count += 1
        return True

    def leave(self) -> None:
        self.count -= 1

    @contextlib.contextmanager
    def admitted(self) -> Iterator[None]:
        """Hold a place for the block; raises :class:`Overloaded` when none is free."""
        if not self.enter():
            raise Overloaded(self.limit)
        try:
            yield
        finally:
            self.leave()


class AdmissionLimit:
    """ASGI middleware: requests beyond ``limit`` in hand are answered 503 problem+json."""

    def __init__(self, app: ASGIApp, *, limit: int, exempt: Collection[str] = PROBE_PATHS) -> None:
        self._app = app
        self.in_hand = InHand(limit, channel="rest")
        self._exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._exempt:
            await self._app(scope, receive, send)
            return
        if not self.in_hand.enter():
            response = problem(
                503,
                "Service overloaded",
                f"More than {self.in_hand.limit} requests are in hand; nothing of this one was "
                "read or done. Retry after the time Retry-After gives.",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
            await response(scope, receive, send)
            return
        try:
            await self._app(scope, receive, send)
        finally:
            self.in_hand.leave()

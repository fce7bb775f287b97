"""The service runtime: shared clients for one process and a run loop for its components.

A component is anything with ``name``, ``async run()`` (returns when stopped) and ``async stop()``:
the HTTP server, the gRPC server, each consumer runner. SIGINT/SIGTERM, or any component ending
on its own, stops every component in reverse order, so consumers commit what they handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import uvloop
from pymongo import AsyncMongoClient

from appeals.topics import Topic
from appeals_runtime import store
from appeals_runtime.kafka.dead_letters import DeadLetterProbe
from appeals_runtime.kafka.producer import EventProducer
from appeals_runtime.logs import configure_logging
from appeals_runtime.settings import ServiceSettings
from appeals_runtime.telemetry import Telemetry, setup_telemetry

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 20.0
# Allocations between two young-generation collections (CPython's default is 700). Handling one
# message allocates thousands of short-lived objects (protobuf, BSON, spans); collecting every
# 700 promotes many still in flight, and the full collections they feed cost 13-16 % of a
# service's CPU with pauses of 150-300 ms under load (measured with the bench at 40/s).
GC_YOUNG_THRESHOLD = 20_000


class Component(Protocol):
    name: str

    async def run(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class ServiceContext:
    """What one service process shares between its components."""

    name: str
    settings: ServiceSettings
    producer: EventProducer
    mongo: AsyncMongoClient[store.Document]
    db: store.Database
    telemetry: Telemetry

    async def check_kafka(self) -> None:
        await self.producer.check_ready()

    async def check_store(self) -> None:
        await store.check_ready(self.db)

    @property
    def readiness_checks(self) -> dict[str, Any]:
        return {"kafka": self.check_kafka, "store": self.check_store}

    def dead_letter_probe(self, consumed: Sequence[Topic[Any]]) -> DeadLetterProbe:
        """A component reporting the size of the DLQs of the topics this service consumes."""
        return DeadLetterProbe(
            self.settings.kafka_bootstrap_servers,
            [topic.dlq for topic in consumed],
            refresh_s=self.settings.metrics_refresh_s,
            client_id=self.name,
        )


@contextlib.asynccontextmanager
async def service_context(
    name: str, settings: ServiceSettings, indexes: Sequence[store.IndexSpec] = ()
) -> AsyncIterator[ServiceContext]:
    """Set up logging, telemetry, the producer and the store client; tear them down after."""
    with observed(name, settings) as telemetry:
        producer = EventProducer(
            settings.kafka_bootstrap_servers,
            client_id=name,
            publish_timeout_s=settings.kafka_publish_timeout_s,
        )
        mongo = store.create_client(settings.mongodb_url, app_name=name)
        db = mongo[store.service_database(settings.mongodb_database, name)]
        await producer.start()
        try:
            await store.ensure_indexes(db, indexes)
            yield ServiceContext(name, settings, producer, mongo, db, telemetry)
        finally:
            await producer.stop()
            await mongo.close()


@contextlib.contextmanager
def observed(name: str, settings: ServiceSettings) -> Iterator[Telemetry]:
    """Logging and telemetry for one process (what a service without Kafka or a store, such as
    the ops page, needs of :func:`service_context`); telemetry is flushed at the end."""
    configure_logging(name, level=settings.log_level, fmt=settings.log_format)
    telemetry = setup_telemetry(
        name,
        otlp_endpoint=settings.otel_exporter_otlp_endpoint,
        otlp_metrics_endpoint=settings.otel_exporter_otlp_metrics_endpoint,
        traces_per_s=settings.trace_starts_per_s,
    )
    try:
        yield telemetry
    finally:
        telemetry.shutdown()


def settle_heap() -> None:
    """Once set up: collect the start-up garbage, then move everything alive to the permanent
    generation (modules, descriptors, settings, clients live as long as the process), so full
    collections walk only what the service builds while it runs; collect the young generation
    less often."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


async def run_components(components: Sequence[Component]) -> None:
    """Run until a signal arrives or a component ends; then stop all of them, last first."""
    settle_heap()
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_requested.set)
    tasks = {asyncio.create_task(c.run(), name=c.name): c for c in components}
    waiter = asyncio.create_task(stop_requested.wait())
    done, _ = await asyncio.wait({*tasks, waiter}, return_when=asyncio.FIRST_COMPLETED)
    ended = [task for task in done if task is not waiter]
    for task in ended:
        error = task.exception()
        log.error(
            "component ended; stopping the service",
            extra={"component": task.get_name(), "error": repr(error)},
        )
    log.info("stopping", extra={"components": [c.name for c in components]})
    for component in reversed(components):
        await component.stop()
    _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
    for task in pending:
        task.cancel()
    waiter.cancel()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(signum)
    if ended:
        raise SystemExit(1)


def run_service(main: Coroutine[Any, Any, None]) -> None:
    """Run a service's ``main`` coroutine to the end on uvloop's event loop.

    uvloop implements the event loop in C (libuv): every socket read, timer and task switch costs
    a fraction of the pure-Python loop's, and a service here does little else (measured with the
    bench: see the README's "Performance").
    """
    uvloop.run(main)


class Periodic:
    """A component that runs ``work`` every ``interval_s`` seconds until stopped.

    A failing run is logged and retried at the next tick: housekeeping must never take the
    service down with it.
    """

    def __init__(self, name: str, interval_s: float, work: Callable[[], Awaitable[object]]) -> None:
        self.name = name
        self._interval_s = interval_s
        self._work = work
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._work()
            except Exception:
                log.exception("periodic work failed", extra={"component": self.name})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval_s)

    async def stop(self) -> None:
        self._stopping.set()

"""Server-side spans and request metrics for gRPC and the document store, plus the helpers that
keep one trace per appeal.

HTTP server spans and ``http.server.request.duration`` come from FastAPI's built-in telemetry
(configured by :data:`appeals_runtime.http.TELEMETRY`). For gRPC and PyMongo we instrument here
rather than with the ``opentelemetry-instrumentation-*`` packages: those release in lock-step
betas that do not resolve together with our pinned SDK, and each is a few dozen lines here,
following the same semantic conventions.

One trace per appeal: the surface's request starts it (its ``traceparent`` is honoured), every
Kafka hop carries it in record headers. Work that starts from a human action (an agent's claim
or decision) or a timer has a trace of its own; it is carried on into the appeal's trace by
:func:`appeal_span`, which parents the work on the appeal's stored context and links back to the
span that triggered it, so the events it publishes (and everything downstream) stay in the
appeal's trace.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from pymongo import monitoring

from appeals_runtime import metrics

tracer = trace.get_tracer("appeals")

# Span attributes of the appeal a span works on (never personal data: ids are random).
APPEAL_ID = "appeals.appeal.id"
PLATFORM = "appeals.platform"
QUEUE = "appeals.queue"
# The kind of a lifecycle event on its send span (submitted, routed, ...): which consumers read
# it depends on it (each skips the kinds it ignores).
EVENT_TYPE = "appeals.event.type"

TRACEPARENT = "traceparent"

_rpc_duration = metrics.histogram(metrics.RPC_SERVER_DURATION)
_db_duration = metrics.histogram(metrics.DB_CLIENT_DURATION)


def appeal_attributes(
    appeal_id: str | None = None, *, platform: str | None = None, queue: str | None = None
) -> dict[str, str]:
    attributes = {APPEAL_ID: appeal_id, PLATFORM: platform, QUEUE: queue}
    return {name: value for name, value in attributes.items() if value}


def annotate(
    appeal_id: str | None = None, *, platform: str | None = None, queue: str | None = None
) -> None:
    """Tag the current span with the appeal it handles."""
    trace.get_current_span().set_attributes(
        appeal_attributes(appeal_id, platform=platform, queue=queue)
    )


def current_traceparent() -> str:
    """The W3C ``traceparent`` of the current span ('' outside any trace), to store with a case."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(TRACEPARENT, "")


def context_of(traceparent: str) -> Context | None:
    """The trace context a stored ``traceparent`` names, or None when there is none."""
    if not traceparent:
        return None
    context = propagate.extract({TRACEPARENT: traceparent})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


@contextmanager
def appeal_span(
    name: str,
    traceparent: str,
    *,
    appeal_id: str,
    platform: str | None = None,
    queue: str | None = None,
) -> Iterator[Span]:
    """A span in the appeal's own trace for work triggered outside it (a human action, a timer).

    The span's parent is the appeal's stored context; the span that triggered the work (the
    agent's RPC, the sweep) is kept as a link, so both traces lead to each other. Without a
    stored context (cases from before traces were stored) the span simply continues the current
    trace.
    """
    triggering = trace.get_current_span().get_span_context()
    parent = context_of(traceparent)
    if parent is not None and triggering.is_valid:
        appeal_trace = trace.get_current_span(parent).get_span_context().trace_id
        if triggering.trace_id == appeal_trace:
            parent = None  # already in the appeal's trace: an ordinary child span
    links = [Link(triggering)] if parent is not None and triggering.is_valid else []
    with tracer.start_as_current_span(
        name,
        context=parent,
        kind=SpanKind.INTERNAL,
        links=links,
        attributes=appeal_attributes(appeal_id, platform=platform, queue=queue),
    ) as span:
        yield span


# --- gRPC ---------------------------------------------------------------------------------------


class GrpcTelemetry(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """A SERVER span per RPC (continuing the caller's ``traceparent`` metadata) and the
    ``rpc.server.call.duration`` histogram, for unary and streaming methods alike."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        full_method = handler_call_details.method  # "/package.Service/Method"
        service, _, method = full_method.lstrip("/").partition("/")
        metadata = {
            key: value
            for key, value in (handler_call_details.invocation_metadata or ())
            if isinstance(value, str)
        }
        wrapped: dict[str, Any] = {}
        for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            behaviour = getattr(handler, kind)
            if behaviour is not None:
                wrapped[kind] = _traced_behaviour(behaviour, service, method, metadata)
        return handler._replace(**wrapped)


def _traced_behaviour(
    behaviour: Callable[..., Any], service: str, method: str, metadata: Mapping[str, str]
) -> Callable[..., Any]:
    attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}

    @contextmanager
    def rpc_span(context: grpc.aio.ServicerContext[Any, Any]) -> Iterator[None]:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        with tracer.start_as_current_span(
            f"{service}/{method}",
            context=propagate.extract(dict(metadata)),
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield
            except BaseException:
                code = _status_of(context, default=grpc.StatusCode.UNKNOWN)
                raise
            else:
                code = _status_of(context, default=grpc.StatusCode.OK)
            finally:
                span.set_attribute("rpc.grpc.status_code", code.value[0])
                if code in _SERVER_ERRORS:
                    span.set_status(Status(StatusCode.ERROR, code.name))
                _rpc_duration.record(
                    time.perf_counter() - started,
                    {**attributes, "rpc.grpc.status_code": code.value[0]},
                )

    if inspect.isasyncgenfunction(behaviour):

        async def streaming(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            with rpc_span(context):
                stream: AsyncIterator[Any] = behaviour(request, context)
                async for response in stream:
                    yield response

        return streaming

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        with rpc_span(context):
            return await behaviour(request, context)

    return unary


@contextmanager
def grpc_client_call(service: str, method: str) -> Iterator[list[tuple[str, str]]]:
    """A CLIENT span around one outgoing RPC; yields the metadata that carries its context."""
    with tracer.start_as_current_span(
        f"{service}/{method}",
        kind=SpanKind.CLIENT,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
    ):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        yield list(carrier.items())


# Status codes that mean the server failed (OTel's RPC conventions): the rest are the caller's.
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def _status_of(
    context: grpc.aio.ServicerContext[Any, Any], *, default: grpc.StatusCode
) -> grpc.StatusCode:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):
        return next((status for status in grpc.StatusCode if status.value[0] == code), default)
    return default


# --- Document store -----------------------------------------------------------------------------


@dataclass
class _Command:
    span: Span
    started: float
    attributes: dict[str, str]


class StoreTelemetry(monitoring.CommandListener):
    """CLIENT spans and ``db.client.operation.duration`` for every store command.

    PyMongo's async client calls listeners inside the awaiting task, so the span parents on
    whatever span handles the message or request. Command bodies are never recorded: they hold
    personal data.
    """

    def __init__(self) -> None:
        self._pending: dict[tuple[int, int], _Command] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        collection = event.command.get(event.command_name)
        attributes = {"db.system.name": "mongodb", "db.operation.name": event.command_name}
        if isinstance(collection, str):
            attributes["db.collection.name"] = collection
        # Commands outside any span (start-up, background sweeps) are timed but not traced:
        # a root span per sweep query would bury the appeals' traces. Nor are those of a trace
        # that is not sampled: the span would record nothing, and under load most traces are
        # not (TRACE_STARTS_PER_S), while a store command is the commonest span there is.
        span: Span = trace.INVALID_SPAN
        if trace.get_current_span().is_recording():
            span = tracer.start_span(
                " ".join(filter(None, (event.command_name, attributes.get("db.collection.name")))),
                kind=SpanKind.CLIENT,
                attributes={**attributes, "db.namespace": event.database_name},
            )
        key = (event.request_id, event.operation_id or 0)
        self._pending[key] = _Command(span, time.perf_counter(), attributes)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._finish(event, error_type=None)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        failure = event.failure
        code_name = failure.get("codeName") if isinstance(failure, Mapping) else None
        self._finish(event, error_type=str(code_name or "CommandFailed"))

    def _finish(
        self,
        event: monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent,
        *,
        error_type: str | None,
    ) -> None:
        command = self._pending.pop((event.request_id, event.operation_id or 0), None)
        if command is None:
            return
        attributes = dict(command.attributes)
        if error_type is not None:
            command.span.set_status(Status(StatusCode.ERROR, error_type))
            command.span.set_attribute("error.type", error_type)
            attributes["error.type"] = error_type
        command.span.end()
        _db_duration.record(time.perf_counter() - command.started, attributes)

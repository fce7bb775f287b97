"""gRPC pieces every service shares: the server component (with reflection and health) and
error/auth mapping."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from appeals_runtime.auth import PermissionDenied, Principal, TokenVerifier, Unauthenticated
from appeals_runtime.errors import (
    Conflict,
    NotFound,
    TooManyRequests,
    TransientError,
    Unprocessable,
    ValidationFailed,
)
from appeals_runtime.readiness import ReadinessCheck, all_ready, check_readiness
from appeals_runtime.tracing import GrpcTelemetry

log = logging.getLogger(__name__)

ResponseT = TypeVar("ResponseT")


# How often the health service re-runs the readiness checks (what probes and `Watch` see).
HEALTH_REFRESH_S = 5.0


@dataclass(frozen=True)
class Registration:
    """One gRPC service of ours: its full name (served by reflection, reported by health) and
    how to add its servicer to a server."""

    service: str
    add: Callable[[grpc.aio.Server], None]


class GrpcServer:
    """Runs a ``grpc.aio`` server as a component of the service runtime, serving every service
    one of ``registrations`` adds to it (e.g. routing's desk and its Referrals API on one port),
    and beside them the two standard services generic clients expect:

    * server reflection (``grpc.reflection.v1alpha``), so grpcurl and other generic
      clients can list and call the services without our ``.proto`` files;
    * ``grpc.health.v1.Health``, for Kubernetes ``grpc`` probes and load balancers: the overall
      status (service ``""``) and each of ours is SERVING while every readiness check passes
      (the same checks as ``/readyz``, re-run every ``health_refresh_s``), NOT_SERVING
      otherwise and from the moment the server starts stopping.
    """

    def __init__(
        self,
        *registrations: Registration,
        host: str,
        port: int,
        readiness: Mapping[str, ReadinessCheck] | None = None,
        health_refresh_s: float = HEALTH_REFRESH_S,
        name: str = "grpc",
    ) -> None:
        self.name = name
        self._server = grpc.aio.server(interceptors=[GrpcTelemetry()])
        for registration in registrations:
            registration.add(self._server)
        self._services = [registration.service for registration in registrations]
        self._readiness = dict(readiness or {})
        self._health_refresh_s = health_refresh_s
        self._stopped = False
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            [*self._services, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server
        )
        self._address = f"{host}:{port}"
        if self._server.add_insecure_port(self._address) == 0:
            raise RuntimeError(f"gRPC server {name} cannot listen on {self._address}")

    async def run(self) -> None:
        await self._report(await self._ready())  # before the first call can ask
        if self._stopped:
            return  # stopped before it started: starting now would serve forever
        await self._server.start()
        log.info("gRPC server listening", extra={"address": self._address})
        following = asyncio.create_task(self._follow_readiness())
        try:
            await self._server.wait_for_termination()
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following

    async def stop(self) -> None:
        self._stopped = True
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace=5)

    async def _follow_readiness(self) -> None:
        while True:
            await asyncio.sleep(self._health_refresh_s)
            await self._report(await self._ready())

    async def _ready(self) -> bool:
        return all_ready(await check_readiness(self._readiness))

    async def _report(self, ready: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if ready
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", *self._services):
            await self._health.set(service, status)


def principal(context: grpc.aio.ServicerContext[Any, Any], verifier: TokenVerifier) -> Principal:
    metadata = dict(context.invocation_metadata() or ())
    authorization = metadata.get("authorization")
    return verifier.verify_header(authorization if isinstance(authorization, str) else None)


def _invalid_argument_status(error: ValidationFailed) -> grpc.Status:
    details = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in error.violations
        ]
    )
    packed = any_pb2.Any()
    packed.Pack(details)
    status = status_pb2.Status(
        code=code_pb2.INVALID_ARGUMENT, message=str(error)[:1000], details=[packed]
    )
    return rpc_status.to_status(status)


async def guarded(
    context: grpc.aio.ServicerContext[Any, Any], call: Callable[[], Awaitable[ResponseT]]
) -> ResponseT:
    """Run ``call`` and turn the pipeline's typed errors into the matching gRPC status."""
    try:
        return await call()
    except ValidationFailed as error:
        await context.abort_with_status(_invalid_argument_status(error))
    except Unauthenticated as error:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(error))
    except PermissionDenied as error:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(error))
    except NotFound as error:
        await context.abort(grpc.StatusCode.NOT_FOUND, str(error))
    except (Conflict, Unprocessable) as error:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
    except TooManyRequests as error:
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error))
    except TransientError as error:
        await context.abort(
            grpc.StatusCode.UNAVAILABLE, f"{error} Nothing was accepted; retry later."
        )
    raise AssertionError("unreachable: abort raises")  # pragma: no cover

"""gRPC pieces every service shares: the server component and error/auth mapping."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
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
from appeals_runtime.tracing import GrpcTelemetry

log = logging.getLogger(__name__)

ResponseT = TypeVar("ResponseT")


class GrpcServer:
    """Runs a ``grpc.aio`` server as a component of the service runtime, serving every service
    one of ``registrations`` adds to it (e.g. routing's desk and its Referrals API on one port)."""

    def __init__(
        self,
        *registrations: Callable[[grpc.aio.Server], None],
        host: str,
        port: int,
        name: str = "grpc",
    ) -> None:
        self.name = name
        self._server = grpc.aio.server(interceptors=[GrpcTelemetry()])
        for register in registrations:
            register(self._server)
        self._address = f"{host}:{port}"
        if self._server.add_insecure_port(self._address) == 0:
            raise RuntimeError(f"gRPC server {name} cannot listen on {self._address}")

    async def run(self) -> None:
        await self._server.start()
        log.info("gRPC server listening", extra={"address": self._address})
        await self._server.wait_for_termination()

    async def stop(self) -> None:
        await self._server.stop(grace=5)


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

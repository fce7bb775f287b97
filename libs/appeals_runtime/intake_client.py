"""How the pipeline's own services read an appellant's particulars from intake.

Intake alone keeps personal data (see :mod:`appeals.facts`). Routing (a reviewer
reading the statement) and notifications (addressing a message) call
``appeals.v1.Intake/GetAppealParticulars`` when they need it, under their own service token, and
store no copy (notifications holds the addressing part in memory for a couple of minutes:
``services.notifications.held_particulars``).

Intake being down, slow or refusing the credentials is a :class:`TransientError`: the caller's
retry machinery (consumer backoff, the notifications retry topic, an agent's next Claim) tries
again later, so nothing is lost and nothing crashes.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import grpc
import jwt
from pydantic import Field, FilePath, field_validator

from appeals.v1 import intake_pb2, intake_pb2_grpc
from appeals_runtime import tracing
from appeals_runtime.auth import Role, Scope
from appeals_runtime.errors import NotFound, TransientError
from appeals_runtime.settings import ServiceSettings

# Answers that say "this appeal is not there", as opposed to "intake cannot answer now".
_ABSENT = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
# gRPC waits up to 120 s between reconnects by default; after an intake restart the callers'
# own retries (a few seconds apart) would keep failing fast that long. A few seconds suffice.
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 3000),
]


class ParticularsUnavailable(TransientError):  # noqa: N818 - reads naturally at raise sites
    """Intake did not give the particulars now (down, slow, credentials refused): retry later."""


class ParticularsSource(Protocol):
    async def get(self, appeal_id: str) -> intake_pb2.AppealParticulars:
        """The appellant's particulars; :class:`NotFound` when intake knows no such appeal,
        :class:`ParticularsUnavailable` when it cannot say now."""
        ...


class IntakeClientSettings(ServiceSettings):
    """Settings of a service that reads particulars. Each service names its own token file
    variable (its own identity) by overriding ``intake_token_file``'s alias."""

    intake_grpc_target: str = Field(
        default="127.0.0.1:50051", min_length=1, validation_alias="INTAKE_GRPC_TARGET"
    )
    intake_grpc_timeout_s: float = Field(
        default=5.0, gt=0, validation_alias="INTAKE_GRPC_TIMEOUT_S"
    )
    intake_token_file: FilePath

    @field_validator("intake_token_file")
    @classmethod
    def _holds_a_service_token(cls, path: Path) -> Path:
        # Fail at start-up, naming the variable, rather than on the first appellant.
        problem = service_token_problem(path.read_text().strip())
        if problem is not None:
            raise ValueError(f"{path} {problem}")
        return path


def service_token_problem(token: str) -> str | None:
    """Why ``token`` cannot be a service's particulars token, or None. The signature is intake's
    to check; this catches the wrong file, role or scope, and expiry, before anything runs."""
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as error:
        return f"holds no JWT: {error}"
    if claims.get("role") != Role.SERVICE:
        return f"holds a {claims.get('role')!r} token, not a {Role.SERVICE!r} one"
    if Scope.READ_PARTICULARS not in str(claims.get("scope", "")).split():
        return f"holds a token without the {Scope.READ_PARTICULARS} scope"
    expires = claims.get("exp")
    if not isinstance(expires, int) or expires <= time.time():
        return "holds an expired token (or one without exp)"
    return None


class ServiceToken:
    """A token in a file, read again whenever the file changes: tokens are rotated in place
    (a mounted secret, a sidecar), and a long-running service must pick up the new one."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._token = ""

    def current(self) -> str:
        stat = self._path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._token = self._path.read_text().strip()
            self._stamp = stamp
        return self._token


class IntakeParticulars:
    """The gRPC client of ``GetAppealParticulars``; use it as an async context manager."""

    def __init__(self, target: str, token: ServiceToken, *, timeout_s: float) -> None:
        self._target = target
        self._token = token
        self._timeout_s = timeout_s
        self._channel: grpc.aio.Channel | None = None

    @classmethod
    def from_settings(cls, settings: IntakeClientSettings) -> IntakeParticulars:
        return cls(
            settings.intake_grpc_target,
            ServiceToken(Path(settings.intake_token_file)),
            timeout_s=settings.intake_grpc_timeout_s,
        )

    async def __aenter__(self) -> IntakeParticulars:
        self._channel = grpc.aio.insecure_channel(self._target, options=_CHANNEL_OPTIONS)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def get(self, appeal_id: str) -> intake_pb2.AppealParticulars:
        if self._channel is None:
            raise RuntimeError("IntakeParticulars is used outside its `async with` block")
        stub = intake_pb2_grpc.IntakeStub(self._channel)
        try:
            token = self._token.current()
            with tracing.grpc_client_call("appeals.v1.Intake", "GetAppealParticulars") as context:
                response: intake_pb2.GetAppealParticularsResponse = await stub.GetAppealParticulars(
                    intake_pb2.GetAppealParticularsRequest(appeal_id=appeal_id),
                    metadata=(("authorization", f"Bearer {token}"), *context),
                    timeout=self._timeout_s,
                )
        except OSError as error:  # the token file went missing during a rotation
            raise ParticularsUnavailable(f"service token unreadable: {error}") from error
        except grpc.aio.AioRpcError as error:
            if error.code() in _ABSENT:
                raise NotFound(f"intake knows no appeal {appeal_id!r}") from error
            raise ParticularsUnavailable(
                f"intake at {self._target} answered {error.code().name}: {error.details()}"
            ) from error
        return response.particulars

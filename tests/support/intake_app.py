"""Intake's real app in-process, on the test session's real broker and store."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from appeals_devstack import devkeys
from appeals_devstack.processes import free_port
from appeals_runtime import admission, store
from appeals_runtime.auth import TokenVerifier
from appeals_runtime.grpc_server import GrpcServer
from appeals_runtime.kafka.producer import EventProducer
from appeals_runtime.rate_limits import Limit, RateLimiter
from services.intake import api, eligibility, grpc_api, repository
from services.intake.service import AppealIntake, IntakePolicy


@dataclass
class IntakeUnderTest:
    client: httpx.AsyncClient
    intake: AppealIntake
    repository: repository.IntakeRepository
    signing_key: Path
    verifier: TokenVerifier

    def token(self, role: str = "surface", platforms: tuple[str, ...] = ("instagram",)) -> str:
        return devkeys.mint_token(
            self.signing_key, role=role, subject=f"{role}-tests", platforms=list(platforms)
        )

    def headers(self, *, key: str | None = None, role: str = "surface",
                platforms: tuple[str, ...] = ("instagram",)) -> dict[str, str]:  # fmt: skip
        return {
            "Authorization": f"Bearer {self.token(role, platforms)}",
            "Idempotency-Key": key or uuid.uuid4().hex,
        }

    async def submit(self, body: dict[str, Any], **headers: Any) -> httpx.Response:
        return await self.client.post("/v1/appeals", json=body, headers=self.headers(**headers))


async def start_intake(
    db: store.Database,
    producer: EventProducer,
    key_dir: Path,
    *,
    limits: dict[str, Limit] | None = None,
    clock: Callable[[], datetime] | None = None,
    policy_overrides: dict[str, Any] | None = None,
    max_requests: int = admission.DEFAULT_LIMIT,
) -> IntakeUnderTest:
    await store.ensure_indexes(db, repository.INDEXES)
    private, jwks = devkeys.ensure(key_dir)
    verifier = devkeys.dev_verifier(jwks)
    repo = repository.IntakeRepository(db)
    policy = IntakePolicy(
        rules=eligibility.load_rules(),
        limiter=RateLimiter(limits or {"appellant": Limit(1000, 0)}),
        pseudonym_key=b"test-pseudonym-key",
        **(policy_overrides or {}),
    )
    intake = (
        AppealIntake(repo, producer, policy, clock=clock)
        if clock
        else AppealIntake(repo, producer, policy)
    )
    app = api.create_app(intake, verifier, {}, max_requests=max_requests)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake")
    return IntakeUnderTest(client, intake, repo, private, verifier)


@contextlib.asynccontextmanager
async def serving_grpc(under_test: IntakeUnderTest, port: int | None = None) -> AsyncIterator[str]:
    """Intake's real gRPC servicer on ``port`` (a free one by default); yields its target."""
    port = port or free_port()
    server = GrpcServer(
        grpc_api.register(grpc_api.IntakeServicer(under_test.intake, under_test.verifier)),
        host="127.0.0.1",
        port=port,
    )
    task = asyncio.create_task(server.run())
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop()
        await task

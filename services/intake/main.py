"""Wires the intake service together and runs it: nothing else lives here."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from appeals import topics
from appeals_runtime.auth import TokenVerifier
from appeals_runtime.grpc_server import GrpcServer
from appeals_runtime.http import HttpServer
from appeals_runtime.kafka.consumer import ConsumerRunner
from appeals_runtime.kafka.producer import EventProducer
from appeals_runtime.rate_limits import RateLimiter
from appeals_runtime.service import (
    Component,
    Periodic,
    ServiceContext,
    run_components,
    run_service,
    service_context,
)
from appeals_runtime.settings import load_settings
from services.intake import api, eligibility, grpc_api, repository
from services.intake.config import REQUESTS_CONSUMER_GROUP, STATUS_CONSUMER_GROUP, IntakeSettings
from services.intake.consumer import EVENTS, RequestEvents, StatusProjection
from services.intake.service import AppealIntake, IntakePolicy

SERVICE_NAME = "intake"
KEY_SWEEP_INTERVAL_S = 600.0
# How often the expiry of newly reserved idempotency keys is written down (one write per
# minute-bucket, none when nothing was reserved).
KEY_EXPIRY_FLUSH_INTERVAL_S = 1.0

log = logging.getLogger(__name__)


def build(
    repo: repository.IntakeRepository, producer: EventProducer, settings: IntakeSettings
) -> AppealIntake:
    """Intake's use cases over ``repo``, with the rules and limits ``settings`` name."""
    policy = IntakePolicy(
        rules=eligibility.load_rules(settings.eligibility_file),
        limiter=RateLimiter(settings.rate_limits()),
        pseudonym_key=settings.pseudonym_key(),
        key_ttl=timedelta(seconds=settings.idempotency_key_ttl_s),
        in_flight=timedelta(seconds=settings.in_flight_s),
    )
    return AppealIntake(repo, producer, policy, service_name=SERVICE_NAME)


async def serve(settings: IntakeSettings) -> None:
    verifier = TokenVerifier.from_settings(settings)
    async with service_context(SERVICE_NAME, settings, repository.INDEXES) as ctx:
        repo = repository.IntakeRepository(ctx.db)
        await repo.retire_indexes()
        await repo.status_legacy.load(datetime.now(UTC))
        intake = build(repo, ctx.producer, settings)
        try:
            await run_components(_components(settings, ctx, repo, intake, verifier))
        finally:
            # Keys reserved since the last flush would otherwise never be swept.
            try:
                await intake.flush_key_expiries()
            except Exception:
                log.exception("could not write down when the last reserved keys expire")


def _components(
    settings: IntakeSettings,
    ctx: ServiceContext,
    repo: repository.IntakeRepository,
    intake: AppealIntake,
    verifier: TokenVerifier,
) -> list[Component]:
    kafka = settings.kafka_bootstrap_servers
    return [
        HttpServer(
            api.create_app(
                intake,
                verifier,
                ctx.readiness_checks,
                max_body_bytes=settings.max_body_bytes,
                max_requests=settings.max_requests,
            ),
            host=settings.bind_host,
            port=settings.http_port,
        ),
        GrpcServer(
            grpc_api.register(
                grpc_api.IntakeServicer(intake, verifier, max_submits=settings.max_requests)
            ),
            host=settings.bind_host,
            port=settings.grpc_port,
            readiness=ctx.readiness_checks,
        ),
        ConsumerRunner(
            name="intake-status",
            bootstrap_servers=kafka,
            group_id=STATUS_CONSUMER_GROUP,
            topics=[topics.APPEAL_LIFECYCLE],
            handler=StatusProjection(repo, intake.erasures, intake.acknowledged_here).handle,
            producer=ctx.producer,
            skip=lambda message: EVENTS.ignores(message.payload),
        ),
        ConsumerRunner(
            name="intake-requests",
            bootstrap_servers=kafka,
            group_id=REQUESTS_CONSUMER_GROUP,
            topics=[topics.APPEAL_REQUESTS],
            handler=RequestEvents(intake, verifier, ctx.producer).handle,
            producer=ctx.producer,
        ),
        ctx.dead_letter_probe([topics.APPEAL_LIFECYCLE, topics.APPEAL_REQUESTS]),
        # FerretDB has no TTL indexes: expired idempotency keys are swept here, by the
        # expiry buckets the flush writes (see appeals_runtime.expiries).
        Periodic(
            "idempotency-key-expiries", KEY_EXPIRY_FLUSH_INTERVAL_S, intake.flush_key_expiries
        ),
        Periodic("idempotency-key-sweeper", KEY_SWEEP_INTERVAL_S, intake.sweep_expired_keys),
    ]


def main() -> None:
    run_service(serve(load_settings(IntakeSettings)))


if __name__ == "__main__":
    main()

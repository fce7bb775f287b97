"""Wires the live-help service together and runs it: nothing else lives here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from appeals import topics
from appeals_runtime import store
from appeals_runtime.auth import TokenVerifier
from appeals_runtime.http import HttpServer
from appeals_runtime.kafka.producer import EventProducer
from appeals_runtime.rate_limits import RateLimiter
from appeals_runtime.service import Periodic, run_components, run_service, service_context
from appeals_runtime.settings import load_settings
from services.help import api, chat_repository, repository
from services.help.accounts import ApiDirectory, Directories, FileDirectory
from services.help.chats import Chats
from services.help.config import HelpSettings
from services.help.consumer import lifecycle_consumer
from services.help.erasure import ChatErasures
from services.help.erasure_api import erasure_router
from services.help.intake_client import IntakeClient
from services.help.notifications_client import CodeMessenger
from services.help.retention import TranscriptRetention
from services.help.service import Keys, Verifications

SERVICE_NAME = "help"
# When new verifications expire is written down about once a second (one write per minute
# bucket); what expired is deleted every minute (see appeals_runtime.expiries).
EXPIRY_FLUSH_INTERVAL_S = 1.0
SWEEP_INTERVAL_S = 60.0
# Transcripts past their retention are looked for every ten minutes (idle: one read by _id).
RETENTION_SWEEP_INTERVAL_S = 600.0


@dataclass(frozen=True)
class HelpParts:
    verifications: Verifications
    chats: Chats
    retention: TranscriptRetention
    erasures: ChatErasures


def build(
    settings: HelpSettings,
    db: store.Database,
    producer: EventProducer,
    http: httpx.AsyncClient,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> HelpParts:
    """Verifications and chats, sharing one account directory, one set of keys and one
    limiter (each limit has keys of its own); the chats' retention and erasure."""
    apis = settings.accounts_apis()
    directory = Directories(
        ApiDirectory(http, apis) if apis else None,
        FileDirectory(settings.accounts_file) if settings.accounts_file else None,
    )
    keys = Keys.derive(settings.secret_key())
    limiter = RateLimiter(settings.limits())
    verifications = Verifications(
        repository.HelpRepository(db),
        directory,
        CodeMessenger(http, settings.notifications_url, settings.notifications_token()),
        keys,
        limiter,
        code_ttl=timedelta(seconds=settings.code_ttl_s),
        attempts=settings.code_attempts,
        session_ttl=timedelta(seconds=settings.session_ttl_s),
        clock=clock,
    )
    chat_store = chat_repository.ChatRepository(db, keys.transcripts)
    chats = Chats(
        chat_store,
        directory,
        IntakeClient(
            http, settings.intake_url, settings.intake_token(), timeout_s=settings.intake_timeout_s
        ),
        producer,
        keys,
        limiter,
        first_answer_sla=timedelta(seconds=settings.first_answer_sla_s),
        max_chars=settings.message_max_chars,
        clock=clock,
    )
    retention = TranscriptRetention(
        chat_store, retention_days=settings.transcript_retention_days, clock=clock
    )
    return HelpParts(
        verifications, chats, retention, ChatErasures(chat_store, chats.person, clock=clock)
    )


async def serve(settings: HelpSettings) -> None:
    async with (
        service_context(SERVICE_NAME, settings, indexes=repository.INDEXES) as ctx,
        httpx.AsyncClient(timeout=settings.accounts_timeout_s) as http,
    ):
        parts = build(settings, ctx.db, ctx.producer, http)
        verifications = parts.verifications
        verifier = TokenVerifier.from_settings(settings)
        app = api.create_app(
            verifications,
            readiness_checks=ctx.readiness_checks,
            chats=parts.chats,
            verifier=verifier,
        )
        app.include_router(erasure_router(parts.erasures, verifier))
        await run_components(
            [
                HttpServer(app, host=settings.bind_host, port=settings.http_port),
                Periodic("help-expiries", EXPIRY_FLUSH_INTERVAL_S, verifications.flush_expiries),
                Periodic("help-sweeper", SWEEP_INTERVAL_S, verifications.sweep_expired),
                Periodic("help-retention", RETENTION_SWEEP_INTERVAL_S, parts.retention.sweep),
                ctx.dead_letter_probe([topics.APPEAL_LIFECYCLE]),
                lifecycle_consumer(
                    parts.erasures,
                    parts.chats,
                    bootstrap_servers=settings.kafka_bootstrap_servers,
                    group=settings.consumer_group,
                    producer=ctx.producer,
                ),
            ]
        )


def main() -> None:
    run_service(serve(load_settings(HelpSettings)))


if __name__ == "__main__":
    main()

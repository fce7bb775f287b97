"""Wires the notifications service together and runs it: nothing else lives here."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from appeals import platforms, topics
from appeals_runtime.auth import TokenVerifier
from appeals_runtime.http import HttpServer
from appeals_runtime.intake_client import IntakeParticulars, ParticularsSource
from appeals_runtime.kafka.producer import EventProducer
from appeals_runtime.service import run_components, run_service, service_context
from appeals_runtime.settings import load_settings
from services.notifications import repository
from services.notifications.api import create_app
from services.notifications.channels import (
    Channel,
    ChannelDirectory,
    EmailChannel,
    HttpProvider,
    Provider,
    RecordingSink,
    SmtpServer,
    WebhookChannel,
)
from services.notifications.channels.platforms import adapter_for
from services.notifications.codes import CodeSender
from services.notifications.config import NotificationsSettings
from services.notifications.consumer import lifecycle_consumer, retry_consumer
from services.notifications.held_particulars import HeldParticulars
from services.notifications.messages import MessageRenderer, Redress
from services.notifications.retries import RetryQueue
from services.notifications.service import Clock, Notifier
from services.notifications.timing import Backoff, Limits, QuietHours

SERVICE_NAME = "notifications"


def utc_now() -> datetime:
    return datetime.now(UTC)


def channels_from(
    settings: NotificationsSettings,
    renderer: MessageRenderer,
    http: httpx.AsyncClient,
    clock: Clock,
) -> list[Channel]:
    def seconds() -> float:  # webhook timestamps and email dates read the same clock
        return clock().timestamp()

    channels: list[Channel] = []
    for platform in platforms.PLATFORMS:
        channel_type = adapter_for(platform)
        url, token = settings.provider(channel_type.name)
        provider: Provider = RecordingSink()
        if url is not None and token is not None:
            provider = HttpProvider(
                http, url, token.get_secret_value(), classify=channel_type.classify_errors
            )
        channels.append(channel_type(provider))
    if settings.smtp_host is not None and settings.email_from is not None:
        server = SmtpServer(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.email_from,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            timeout_s=settings.smtp_timeout_s,
        )
        channels.append(EmailChannel(server, renderer.html, clock=seconds))
    if settings.webhook_url is not None:
        secret = settings.webhook_secret.get_secret_value().encode()
        channels.append(WebhookChannel(http, settings.webhook_url, secret, clock=seconds))
    return channels


def renderer_from(settings: NotificationsSettings) -> MessageRenderer:
    return MessageRenderer(
        redress=Redress(
            dispute_settlement_url=settings.dispute_settlement_url,
            oversight_board_url=settings.oversight_board_url,
        )
    )


def directory_from(
    settings: NotificationsSettings,
    renderer: MessageRenderer,
    http: httpx.AsyncClient,
    clock: Clock,
) -> ChannelDirectory:
    return ChannelDirectory(
        channels_from(settings, renderer, http, clock),
        platform_channels=settings.platform_channels,
        fallbacks=settings.fallback_channels,
    )


def build(
    settings: NotificationsSettings,
    notifications: repository.NotificationsRepository,
    producer: EventProducer,
    http: httpx.AsyncClient,
    particulars: ParticularsSource,
    *,
    clock: Clock = utc_now,
) -> Notifier:
    renderer = renderer_from(settings)
    window = settings.quiet_hours_window()
    return Notifier(
        notifications,
        renderer,
        directory_from(settings, renderer, http, clock),
        producer,
        RetryQueue(producer, group=settings.consumer_group),
        particulars,
        limits=Limits(
            daily_limit=settings.daily_limit,
            quiet_hours=QuietHours(*window) if window else None,
        ),
        backoff=Backoff(
            initial_s=settings.retry_initial_backoff_s,
            max_s=settings.retry_max_backoff_s,
            max_attempts=settings.retry_max_attempts,
        ),
        clock=clock,
    )


async def serve(settings: NotificationsSettings) -> None:
    verifier = TokenVerifier.from_settings(settings)
    async with (
        service_context(SERVICE_NAME, settings, indexes=repository.INDEXES) as ctx,
        httpx.AsyncClient(timeout=settings.provider_timeout_s) as http,
        IntakeParticulars.from_settings(settings) as particulars,
    ):
        notifications = repository.NotificationsRepository(ctx.db)
        # Once per store: documents of the shapes before id keys are moved to them (and
        # profiles from before intake became the only holder of contacts lose their copy).
        await notifications.migrate_stored_shapes()
        held = HeldParticulars(
            particulars, hold_s=settings.particulars_hold_s, entries=settings.particulars_held
        )
        notifier = build(settings, notifications, ctx.producer, http, held)
        renderer = renderer_from(settings)
        codes = CodeSender(
            notifications,
            renderer,
            directory_from(settings, renderer, http, utc_now),
            clock=utc_now,
            keep_text=settings.keep_code_text,
        )
        app = create_app(
            notifications, verifier, codes=codes, readiness_checks=ctx.readiness_checks
        )
        await run_components(
            [
                HttpServer(app, host=settings.bind_host, port=settings.http_port),
                ctx.dead_letter_probe([topics.APPEAL_LIFECYCLE, topics.NOTIFICATION_RETRIES]),
                retry_consumer(
                    notifier,
                    bootstrap_servers=settings.kafka_bootstrap_servers,
                    group=settings.retry_consumer_group,
                    owner_group=settings.consumer_group,
                    producer=ctx.producer,
                    clock=utc_now,
                    tick_s=settings.retry_tick_s,
                    concurrency=settings.retry_concurrency,
                    max_waiting=settings.retry_max_waiting,
                ),
                lifecycle_consumer(
                    notifier,
                    bootstrap_servers=settings.kafka_bootstrap_servers,
                    group=settings.consumer_group,
                    producer=ctx.producer,
                    start_from=settings.start_from,
                    on_erased=held.forget,
                ),
            ]
        )


def main() -> None:
    run_service(serve(load_settings(NotificationsSettings)))


if __name__ == "__main__":
    main()

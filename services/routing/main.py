"""Wires the routing service together and runs it: nothing else lives here."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from appeals import topics
from appeals_runtime import store
from appeals_runtime.auth import TokenVerifier
from appeals_runtime.grpc_server import GrpcServer
from appeals_runtime.http import (
    TELEMETRY,
    HttpServer,
    health_router,
    install_problem_handlers,
)
from appeals_runtime.intake_client import IntakeParticulars, ParticularsSource, ServiceToken
from appeals_runtime.kafka.consumer import ConsumerRunner, Handler
from appeals_runtime.kafka.producer import EventProducer
from appeals_runtime.service import (
    Component,
    Periodic,
    run_components,
    run_service,
    service_context,
)
from appeals_runtime.settings import SettingsError, load_settings
from services.routing import grpc_api, referrals_api, repository
from services.routing.board import CaseBoard
from services.routing.chats import ChatDesk, ChatStore, chat_handler
from services.routing.config import CHAT_CONSUMER_GROUP, CONSUMER_GROUP, RoutingSettings
from services.routing.consumer import routing_handler, skips
from services.routing.desk import AgentDesk
from services.routing.explain_api import explain_router
from services.routing.feed import CaseFeed
from services.routing.help_client import HelpChats
from services.routing.ledger import CaseLedger
from services.routing.ownership import Ownership
from services.routing.policy_file import PolicyError, PolicySource
from services.routing.referrals import ReferralDesk, ReferralWatch
from services.routing.restores import RestoreResults
from services.routing.router import Router
from services.routing.timers import CaseTimers

SERVICE_NAME = "routing"


@dataclass(frozen=True)
class RoutingParts:
    """One routing instance's objects (the tests assemble several in one process)."""

    repository: repository.RoutingRepository
    board: CaseBoard
    ownership: Ownership
    ledger: CaseLedger
    desk: AgentDesk
    referrals: ReferralDesk
    referral_watch: ReferralWatch
    timers: CaseTimers
    handler: Handler
    # Keeps the board in step with other instances; None when assembled without a broker.
    feed: CaseFeed | None


def assemble(
    db: store.Database,
    producer: EventProducer,
    policies: PolicySource,
    particulars: ParticularsSource,
    *,
    lease: timedelta,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    bootstrap_servers: str | None = None,
) -> RoutingParts:
    repo = repository.RoutingRepository(db)
    board = CaseBoard()
    ownership = Ownership()
    ledger = CaseLedger(repo, producer, board, service_name=SERVICE_NAME)
    feed = None
    if bootstrap_servers:
        feed = CaseFeed(bootstrap_servers, board, ledger, repo, ownership, client_id=SERVICE_NAME)
    desk = AgentDesk(ledger, repo, policies, particulars, board, lease=lease, clock=clock)
    return RoutingParts(
        repository=repo,
        board=board,
        ownership=ownership,
        ledger=ledger,
        desk=desk,
        referrals=ReferralDesk(ledger, repo, policies, desk, clock=clock),
        referral_watch=ReferralWatch(repo, policies, clock=clock),
        timers=CaseTimers(ledger, repo, policies, board, ownership, clock=clock),
        handler=routing_handler(
            Router(ledger, repo, policies),
            RestoreResults(producer, service_name=SERVICE_NAME),
            feed,
        ),
        feed=feed,
    )


def assemble_chats(
    parts: RoutingParts,
    db: store.Database,
    help_chats: HelpChats,
    *,
    capacity: int,
    offer_ttl: timedelta,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ChatDesk:
    """Live-help chats on the instance's desk (only when live help is configured)."""
    return ChatDesk(
        ChatStore(db),
        help_chats,
        parts.desk.agents,
        parts.desk,
        capacity=capacity,
        offer_ttl=offer_ttl,
        clock=clock,
    )


@contextlib.asynccontextmanager
async def help_connection(settings: RoutingSettings) -> AsyncIterator[HelpChats | None]:
    """Help's internal chat API, or None when ROUTING_HELP_TOKEN_FILE is not set."""
    if settings.help_token_file is None:
        yield None
        return
    async with httpx.AsyncClient() as http:
        yield HelpChats(http, settings.help_url, ServiceToken(settings.help_token_file))


def load_policies(settings: RoutingSettings) -> PolicySource:
    try:
        return PolicySource.load(settings.policy_file)
    except PolicyError as error:
        print(f"ROUTING_POLICY_FILE: {error}", file=sys.stderr)
        raise SettingsError(2) from error


async def serve(settings: RoutingSettings) -> None:
    verifier = TokenVerifier.from_settings(settings)
    policies = load_policies(settings)
    async with (
        service_context(SERVICE_NAME, settings, repository.INDEXES) as ctx,
        IntakeParticulars.from_settings(settings) as particulars,
        help_connection(settings) as help_chats,
    ):
        parts = assemble(
            ctx.db,
            ctx.producer,
            policies,
            particulars,
            lease=timedelta(seconds=settings.claim_lease_s),
            bootstrap_servers=settings.kafka_bootstrap_servers,
        )
        assert parts.feed is not None
        consumer = ConsumerRunner(
            name="routing",
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=CONSUMER_GROUP,
            topics=[topics.APPEAL_LIFECYCLE, topics.RESTORE_RESULTS],
            handler=parts.handler,
            producer=ctx.producer,
            skip=skips,
        )
        parts.ownership.follow(consumer, topics.APPEAL_LIFECYCLE.name)
        app = FastAPI(title="Appeals routing", telemetry=TELEMETRY)
        app.state.verifier = verifier
        install_problem_handlers(app)
        app.include_router(health_router(ctx.readiness_checks))
        app.include_router(referrals_api.rest_router(parts.referrals))
        app.include_router(explain_router(policies))
        chats = None
        chat_components: list[Component] = []
        consumed: list[topics.Topic[Any]] = [topics.APPEAL_LIFECYCLE, topics.RESTORE_RESULTS]
        if help_chats is not None:
            chats = assemble_chats(
                parts,
                ctx.db,
                help_chats,
                capacity=settings.chat_capacity,
                offer_ttl=timedelta(seconds=settings.chat_offer_s),
            )
            consumed.append(topics.HELP_CHATS)
            chat_components = [
                ConsumerRunner(
                    name="routing-chats",
                    bootstrap_servers=settings.kafka_bootstrap_servers,
                    group_id=CHAT_CONSUMER_GROUP,
                    topics=[topics.HELP_CHATS],
                    handler=chat_handler(ChatStore(ctx.db)),
                    producer=ctx.producer,
                ),
                Periodic("routing-chats-waiting", settings.sweep_s, chats.observe),
            ]
        desk_servicer = grpc_api.AgentDeskServicer(
            parts.desk, verifier, poll_s=settings.offer_poll_s, chats=chats
        )
        referrals_servicer = referrals_api.ReferralsServicer(parts.referrals, verifier)
        await run_components(
            [
                HttpServer(app, host=settings.bind_host, port=settings.http_port),
                # First the board: the desk serves from it, the timers sweep it.
                parts.feed,
                GrpcServer(
                    grpc_api.register(desk_servicer),
                    referrals_api.register(referrals_servicer),
                    host=settings.bind_host,
                    port=settings.grpc_port,
                    readiness=ctx.readiness_checks,
                ),
                consumer,
                ctx.dead_letter_probe(consumed),
                Periodic("routing-timers", settings.sweep_s, parts.timers.sweep),
                Periodic(
                    "routing-referrals", settings.referral_check_s, parts.referral_watch.refresh
                ),
                Periodic("routing-policy-reload", settings.policy_reload_s, policies.poll),
                *chat_components,
            ]
        )


def main() -> None:
    run_service(serve(load_settings(RoutingSettings)))


if __name__ == "__main__":
    main()

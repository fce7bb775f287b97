"""Shared pieces of the notifications integration tests (this module holds no tests).

Real servers the tests start: an SMTP server (aiosmtpd) and an HTTP receiver on
``asyncio.start_server`` that checks webhook signatures itself (its own HMAC, not the service's
code) and can answer as scripted (a flaky surface, a WhatsApp API that does not know a number).
A :class:`Service` wires the notifications service's own pieces, as ``main`` does, around the
session's real broker and store, with consumer groups and a database private to one test, and
handles only that test's appeals (the lifecycle topic is shared by the whole session).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from appeals import events, topics
from appeals.facts import submission_facts
from appeals.v1 import appeal_pb2, events_pb2
from appeals_devstack import devkeys
from appeals_devstack.processes import free_port
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.intake_client import ParticularsSource
from appeals_runtime.kafka import headers as h
from appeals_runtime.kafka.consumer import ConsumerRunner, InboundMessage
from appeals_runtime.kafka.producer import EventProducer
from services.notifications import repository
from services.notifications.config import NotificationsSettings
from services.notifications.consumer import lifecycle_handler, retry_consumer
from services.notifications.main import build
from tests.support.kafka import from_the_start
from tests.support.particulars import APPELLANTS

LifecycleEvent = events_pb2.AppealEvent
WEBHOOK_SECRET = "integration-test-webhook-secret-0123456789"


class ManualClock:
    """A clock the test moves: quiet hours and daily limits without waiting for them."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class WallClockFrom(ManualClock):
    """Real time, shifted: retries with real backoffs still fall due."""

    def __init__(self, now: datetime) -> None:
        super().__init__(now)
        self._offset = now - datetime.now(UTC)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> None:
        self._offset += delta


# --- a real SMTP server -------------------------------------------------------------------------


class _Mailbox:
    """aiosmtpd handler: keeps every message; refuses addresses the test names."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse: dict[str, str] = {}

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted"


@dataclass
class SmtpReceiver:
    port: int
    mailbox: _Mailbox
    controller: Controller

    @property
    def messages(self) -> list[EmailMessage]:
        return self.mailbox.messages

    def refuse(self, address: str, answer: str) -> None:
        self.mailbox.refuse[address] = answer

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


@contextlib.contextmanager
def smtp_receiver() -> Any:
    mailbox = _Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpReceiver(port, mailbox, controller)
    finally:
        controller.stop()


def smtp_env(port: int) -> dict[str, str]:
    return {
        "NOTIFICATIONS_SMTP_HOST": "127.0.0.1",
        "NOTIFICATIONS_SMTP_PORT": str(port),
        "NOTIFICATIONS_SMTP_SECURITY": "none",
        "NOTIFICATIONS_EMAIL_FROM": "Appeals <appeals@example.org>",
    }


# --- a real HTTP receiver that checks webhook signatures ----------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_valid: bool

    def json(self) -> Any:
        return json.loads(self.body)


Answer = tuple[int, dict[str, str], bytes]


@dataclass
class HttpReceiver:
    port: int
    secret: bytes
    requests: list[Received] = field(default_factory=list)
    # Answers for the next requests, in order; afterwards 200.
    script: list[Answer] = field(default_factory=list)
    # Or a function of the request, when the answer depends on it.
    answer: Callable[[Received], Answer] | None = None
    # When given, the surface is back (answers past the script) only once this is set.
    back: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def verify(self, headers: dict[str, str], body: bytes) -> bool:
        """The surface's side of the contract, written independently of the service."""
        header = headers.get("x-appeals-signature", "")
        fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
        if "t" not in fields or "v1" not in fields:
            return False
        if abs(time.time() - int(fields["t"])) > 300:  # replay window
            return False
        signed = fields["t"].encode() + b"." + body
        expected = hmac.new(self.secret, signed, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, fields["v1"])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await reader.readline()).decode()
            headers: dict[str, str] = {}
            while (line := (await reader.readline()).decode()) not in ("\r\n", "\n", ""):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            received = Received(
                request_line.split(" ")[1], headers, body, self.verify(headers, body)
            )
            self.requests.append(received)
            if self.answer is not None:
                status, extra, content = self.answer(received)
            elif self.script:
                status, extra, content = self.script.pop(0)
            else:
                if self.back is not None:
                    await self.back.wait()
                status, extra, content = 200, {}, b"{}"
            if not received.signature_valid and self.answer is None:
                status, extra, content = 401, {}, b"bad signature"
            head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(content)}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in extra.items())
            writer.write(head.encode() + b"Connection: close\r\n\r\n" + content)
            await writer.drain()
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def http_receiver(secret: str = WEBHOOK_SECRET) -> AsyncIterator[HttpReceiver]:
    receiver = HttpReceiver(port=0, secret=secret.encode())
    server = await asyncio.start_server(receiver._serve, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        await server.wait_closed()


# --- lifecycle events ---------------------------------------------------------------------------


def appeal(
    platform: appeal_pb2.Platform.ValueType = appeal_pb2.PLATFORM_FACEBOOK,
    *,
    locale: str = "en-GB",
    user_id: str = "user-1",
    contact: appeal_pb2.Contact | None = None,
) -> appeal_pb2.AppealSubmission:
    """What a surface submits (the particulars of the tests' appellants come from here)."""
    return appeal_pb2.AppealSubmission(
        platform=platform,
        appellant=appeal_pb2.Appellant(user_id=user_id, contact=contact),
        subject=appeal_pb2.Subject(kind=appeal_pb2.SUBJECT_KIND_POST, id="post-1"),
        decision=appeal_pb2.OriginalDecision(
            policy="hate_speech", action="removed", automated=True
        ),
        locale=locale,
        country=locale.rpartition("-")[2].upper(),
    )


def submitted_event(
    appeal_id: str, submission: appeal_pb2.AppealSubmission, *, person: str = ""
) -> LifecycleEvent:
    """The submitted event intake publishes: facts and a pseudonym, no personal data. The
    pseudonym, unless given, stands for the user id on the platform as intake's keyed hash does."""
    return events.new_event(
        event_id=events.derived_event_id(appeal_id, "submitted"),
        appeal_id=appeal_id,
        producer="tests",
        submitted=events_pb2.AppealSubmitted(
            facts=submission_facts(submission),
            channel="rest",
            surface="tests",
            appellant_pseudonym=person
            or f"psn_{submission.platform}_{submission.appellant.user_id}",
        ),
    )


def submitted(
    appeal_id: str,
    platform: appeal_pb2.Platform.ValueType = appeal_pb2.PLATFORM_FACEBOOK,
    *,
    locale: str = "en-GB",
    user_id: str = "user-1",
    contact: appeal_pb2.Contact | None = None,
    person: str = "",
) -> LifecycleEvent:
    """A submitted event, with the appellant's particulars registered with the stand-in for
    intake that the in-process service reads them from."""
    submission = appeal(platform, locale=locale, user_id=user_id, contact=contact)
    APPELLANTS.remember(appeal_id, submission)
    return submitted_event(appeal_id, submission, person=person)


def claimed(appeal_id: str, n: int = 1) -> LifecycleEvent:
    return events.new_event(
        event_id=events.derived_event_id(appeal_id, "claimed", str(n)),
        appeal_id=appeal_id,
        producer="tests",
        claimed=events_pb2.CaseClaimed(agent_id=f"agent-{n}", queue="q"),
    )


def decided(
    appeal_id: str, outcome: appeal_pb2.Outcome.ValueType = appeal_pb2.OUTCOME_UPHELD
) -> LifecycleEvent:
    return events.new_event(
        event_id=events.derived_event_id(appeal_id, "decided"),
        appeal_id=appeal_id,
        causation_id=events.derived_event_id(appeal_id, "submitted"),
        producer="tests",
        decided=events_pb2.AppealDecided(
            agent_id="agent-1",
            outcome=outcome,
            rationale="The post attacks people for their religion.",
            policy_cited="hate_speech",
        ),
    )


def inbound(event: LifecycleEvent) -> InboundMessage[LifecycleEvent]:
    """``event`` as the lifecycle consumer hands it to the handler."""
    return InboundMessage(
        topic=topics.APPEAL_LIFECYCLE.name,
        partition=0,
        offset=0,
        key=event.appeal_id,
        payload=event,
        headers={},
        timestamp_ms=0,
    )


def new_appeal_id(label: str = "") -> str:
    return f"ap_{uuid.uuid4().hex[:12]}{label}"


async def lifecycle_events(
    bootstrap_servers: str,
    appeal_ids: Iterable[str],
    *,
    until: Callable[[list[LifecycleEvent]], bool],
    timeout_s: float = 20,
) -> list[LifecycleEvent]:
    """Our appeals' events on the shared lifecycle topic, read from the start until ``until``."""
    return [
        topics.APPEAL_LIFECYCLE.decode(record.value)
        for record in await topic_records(
            bootstrap_servers,
            topics.APPEAL_LIFECYCLE.name,
            appeal_ids,
            until=lambda found: until([topics.APPEAL_LIFECYCLE.decode(r.value) for r in found]),
            timeout_s=timeout_s,
        )
    ]


async def topic_records(
    bootstrap_servers: str,
    topic: str,
    appeal_ids: Iterable[str],
    *,
    until: Callable[[list[Any]], bool],
    timeout_s: float = 20,
) -> list[Any]:
    """Records keyed by our appeals on ``topic``, read from the start until ``until``."""
    wanted = {appeal_id.encode() for appeal_id in appeal_ids}
    consumer = from_the_start(bootstrap_servers, topic)
    await consumer.start()
    found: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not until(found) and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                found.extend(record for record in records if record.key in wanted)
    finally:
        await consumer.stop()
    return found


def dlq_headers(record: Any) -> dict[str, str]:
    return {name: value.decode() for name, value in h.as_dict(record.headers).items()}


async def eventually(
    check: Callable[[], Any], what: str, *, timeout_s: float = 20, every_s: float = 0.05
) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(every_s)


# --- the service's own pieces, private to one test ----------------------------------------------


def private_settings(jwks_file: str, **env: str) -> NotificationsSettings:
    run = uuid.uuid4().hex[:8]
    keys = Path(jwks_file).parent.parent
    values = {
        "auth_jwks_file": jwks_file,
        # The in-process service reads particulars from APPELLANTS; the token only has to be one.
        "NOTIFICATIONS_INTAKE_TOKEN_FILE": str(devkeys.service_token_file(keys, "notifications")),
        "NOTIFICATIONS_CONSUMER_GROUP": f"notifications-test-{run}",
        "NOTIFICATIONS_RETRY_CONSUMER_GROUP": f"notifications-retries-test-{run}",
        "NOTIFICATIONS_RETRY_INITIAL_BACKOFF_S": "0.05",
        "NOTIFICATIONS_RETRY_MAX_BACKOFF_S": "0.2",
        "NOTIFICATIONS_RETRY_TICK_S": "0.05",
        "NOTIFICATIONS_QUIET_HOURS": "",
        **env,
    }
    # As the environment would give them: JSON for mappings and lists.
    parsed: dict[str, Any] = {
        k: json.loads(v) if v.startswith(("{", "[")) else v for k, v in values.items()
    }
    return NotificationsSettings(**parsed)


@dataclass
class Service:
    settings: NotificationsSettings
    notifications: repository.NotificationsRepository
    lifecycle: ConsumerRunner
    retries: ConsumerRunner
    http: httpx.AsyncClient
    appeal_ids: set[str]
    handled: list[str] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.lifecycle.run()),
            asyncio.create_task(self.retries.run()),
        ]
        await asyncio.gather(self.lifecycle.started.wait(), self.retries.started.wait())

    async def stop(self) -> None:
        await self.lifecycle.stop()
        await self.retries.stop()
        await asyncio.gather(*self._tasks)
        await self.http.aclose()

    async def delivered(self, appeal_id: str) -> list[str]:
        return [d.kind for d in await self.notifications.deliveries(appeal_id)]


async def notifications_service(
    infra: Infrastructure,
    db: store.Database,
    producer: EventProducer,
    settings: NotificationsSettings,
    appeal_ids: set[str],
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    particulars: ParticularsSource = APPELLANTS,
) -> Service:
    """The service as ``main`` wires it (channels, renderer, policy from settings), handling only
    ``appeal_ids`` (add to the set to take on more)."""
    await store.ensure_indexes(db, repository.INDEXES)
    notifications = repository.NotificationsRepository(db)
    http = httpx.AsyncClient(timeout=5)
    notifier = build(settings, notifications, producer, http, particulars, clock=clock)
    on_lifecycle = lifecycle_handler(notifier, group=settings.consumer_group)
    service: Service

    async def ours(message: InboundMessage[LifecycleEvent]) -> None:
        if message.payload.appeal_id in appeal_ids:
            await on_lifecycle(message)
            if message.payload.producer != "notifications":  # not our own notified events
                service.handled.append(message.payload.event_id)

    service = Service(
        settings=settings,
        notifications=notifications,
        lifecycle=ConsumerRunner(
            name="notifications-test",
            bootstrap_servers=infra.kafka_bootstrap_servers,
            group_id=settings.consumer_group,
            topics=[topics.APPEAL_LIFECYCLE],
            handler=ours,
            producer=producer,
        ),
        retries=retry_consumer(
            notifier,
            bootstrap_servers=infra.kafka_bootstrap_servers,
            group=settings.retry_consumer_group,
            owner_group=settings.consumer_group,
            producer=producer,
            clock=clock,
            tick_s=settings.retry_tick_s,
            concurrency=settings.retry_concurrency,
            max_waiting=settings.retry_max_waiting,
        ),
        http=http,
        appeal_ids=appeal_ids,
    )
    return service

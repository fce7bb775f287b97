"""Where reconciliation learns which appeals intake acknowledged (see reconciliation.py).

:class:`TopicAcknowledgements` reads them back from Kafka: intake publishes an appeal's submitted
event (and, for requests that came over Kafka, an accepted request outcome) before it answers, so
those two topics are the record of every acknowledgement, for as long as the topics retain it. It
reads with no consumer group (nothing is committed, no other consumer is disturbed), from the
offsets at the window's start up to the end offsets it found when it began.

:class:`IntakeAcknowledgements` reads intake's own records instead (``GET /v1/appeals`` with a
window of reception time, paged, with an ops token): complete for as long as intake keeps them,
whatever the topics still retain. :class:`Either` takes both, an appeal acknowledged where
either says so.

:class:`IntakeLookup` asks intake itself (``GET /v1/appeals/{id}`` with an ops token) about single
appeals, to confirm those the topics no longer retain.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from appeals import events, topics
from services.audit.exports.reconciliation import Acknowledged, AcknowledgementSource, Window

# Producer clocks and broker timestamps disagree a little: seek this much before the window.
SEEK_SLACK = timedelta(minutes=5)
POLL_TIMEOUT_MS = 500


class TopicAcknowledgements:
    def __init__(self, bootstrap_servers: str) -> None:
        self._bootstrap_servers = bootstrap_servers

    async def acknowledged(self, window: Window) -> list[Acknowledged]:
        # Subscribed without a group, the consumer is given every partition of both topics and
        # commits nothing: no other consumer notices it.
        consumer = AIOKafkaConsumer(
            *READERS,
            bootstrap_servers=self._bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            client_id="audit-reconciliation",
        )
        await consumer.start()
        try:
            return await self._read(consumer, window)
        finally:
            await consumer.stop()

    async def _read(self, consumer: AIOKafkaConsumer, window: Window) -> list[Acknowledged]:
        partitions = sorted(consumer.assignment())
        since_ms = int((window.since - SEEK_SLACK).timestamp() * 1000)
        starts = await consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            start = starts.get(tp)
            consumer.seek(tp, start.offset if start is not None else ends[tp])
        remaining = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
        found: list[Acknowledged] = []
        while remaining:
            batches: dict[Any, list[Any]] = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < ends[tp] and record.value is not None:
                        ack = READERS[tp.topic](record.value)
                        if ack is not None:
                            found.append(ack)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return found


def _from_lifecycle(raw: bytes) -> Acknowledged | None:
    event = topics.APPEAL_LIFECYCLE.decode(raw)
    if events.event_type(event) != "submitted" or not event.appeal_id:
        return None
    return Acknowledged(event.appeal_id, events.occurred_at(event), "submitted event")


def _from_outcome(raw: bytes) -> Acknowledged | None:
    outcome = topics.APPEAL_REQUEST_OUTCOMES.decode(raw)
    if outcome.WhichOneof("result") != "accepted" or not outcome.accepted.appeal_id:
        return None
    at = (
        outcome.decided_at.ToDatetime(tzinfo=UTC)
        if outcome.HasField("decided_at")
        else datetime.now(UTC)
    )
    return Acknowledged(outcome.accepted.appeal_id, at, "request outcome")


READERS: dict[str, Callable[[bytes], Acknowledged | None]] = {
    topics.APPEAL_LIFECYCLE.name: _from_lifecycle,
    topics.APPEAL_REQUEST_OUTCOMES.name: _from_outcome,
}


# Appeals per page of intake's listing.
INTAKE_PAGE = 2000


class _IntakeReader:
    """Calls intake's REST API with an ops token (a client of its own unless one is given)."""

    def __init__(
        self, base_url: str, token: str, *, client: httpx.AsyncClient | None = None
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._client = client

    @contextlib.asynccontextmanager
    async def _session(self, timeout_s: float) -> AsyncIterator[httpx.AsyncClient]:
        if self._client is not None:
            yield self._client
            return
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            yield client

    async def _get(
        self, client: httpx.AsyncClient, path: str, params: dict[str, str] | None = None
    ) -> httpx.Response:
        return await client.get(f"{self._base_url}{path}", params=params, headers=self._headers)


class IntakeAcknowledgements(_IntakeReader):
    """Intake's records of the appeals it acknowledged, by reception time, page by page."""

    async def acknowledged(self, window: Window) -> list[Acknowledged]:
        found: list[Acknowledged] = []
        cursor: str | None = None
        async with self._session(timeout_s=30) as client:
            while True:
                params = {
                    "received_after": window.since.isoformat(),
                    "received_before": window.until.isoformat(),
                    "limit": str(INTAKE_PAGE),
                    **({"cursor": cursor} if cursor else {}),
                }
                response = await self._get(client, "/v1/appeals", params)
                response.raise_for_status()
                page = response.json()
                found += [
                    Acknowledged(
                        item["appeal_id"], datetime.fromisoformat(item["received_at"]), "intake"
                    )
                    for item in page["appeals"]
                ]
                cursor = page.get("next_cursor")
                if not cursor:
                    return found


class Either:
    """Acknowledged where any of ``sources`` says so (the topics and intake's records)."""

    def __init__(self, *sources: AcknowledgementSource) -> None:
        self._sources = sources

    async def acknowledged(self, window: Window) -> list[Acknowledged]:
        found: list[Acknowledged] = []
        for source in self._sources:
            found += await source.acknowledged(window)
        return found


class IntakeLookup(_IntakeReader):
    """Does intake know this appeal? ``GET /v1/appeals/{id}``: 200 yes, 404 no."""

    async def __call__(self, appeal_id: str) -> bool:
        async with self._session(timeout_s=10) as client:
            response = await self._get(client, f"/v1/appeals/{appeal_id}")
        if response.status_code == 404:
            return False
        response.raise_for_status()
        return True


class ReconciliationSources:
    """What the audit service reconciles its log against when asked over its API: the topics,
    read with its own broker connection, and intake's records, read with the asking operator's
    own token (the audit service holds no credentials for intake)."""

    def __init__(self, bootstrap_servers: str, intake_url: str | None) -> None:
        self._bootstrap_servers = bootstrap_servers
        self.intake_url = intake_url.rstrip("/") if intake_url else None

    def for_caller(
        self, token: str | None, *, with_intake: bool = True
    ) -> tuple[AcknowledgementSource, IntakeLookup | None]:
        topics_read = TopicAcknowledgements(self._bootstrap_servers)
        if not with_intake or self.intake_url is None or not token:
            return topics_read, None
        return (
            Either(topics_read, IntakeAcknowledgements(self.intake_url, token)),
            IntakeLookup(self.intake_url, token),
        )

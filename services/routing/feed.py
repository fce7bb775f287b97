"""Fills the board when an instance starts, and keeps it in step with the other instances.

Every routing instance serves every case on its desk, but each records only the changes its own
agents, timers and partitions make. What the others change reaches this instance as their
events on the lifecycle topic: the feed reads the partitions this instance's consumer does not
own (outside any consumer group, from where the topic ended at start; the consumer hands over
what it reads of the others), and for a case whose
version (the ``appeals.case.version`` header, which only routing's ledger sets) is newer than
the board's reads the case by ``_id`` and puts it on the board. Headers and key are enough to
decide: nothing is decoded, and this instance's own events cost nothing.

Start-up order matters: the feed is positioned at the end of the topic first, then the board is
filled from the live ``open_cases`` collection, so a change made in between is read afterwards
(the board ignores a version older than the one it holds).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from appeals import topics
from appeals_runtime.kafka import headers as h
from appeals_runtime.kafka.consumer import FETCH_MAX_WAIT_MS
from services.routing.board import CaseBoard
from services.routing.ledger import CaseLedger
from services.routing.ownership import EVERY_PARTITION, Ownership
from services.routing.repository import RoutingRepository

log = logging.getLogger(__name__)

# A case's view is saved right after its events are published: a reader may be a moment early.
REFRESH_ATTEMPTS = 20
REFRESH_DELAY_S = 0.05
CONCURRENT_REFRESHES = 16
OPEN_CASES_UPGRADE = "open-cases-v1"
FETCH_PACING_S = 0.02


async def fill_board(repository: RoutingRepository, board: CaseBoard) -> int:
    """Put every open case on the board (the live working set, read once); returns how many."""
    await _list_open_cases_of_an_older_store(repository)
    appeal_ids = [appeal_id async for appeal_id in repository.open_case_ids()]
    for state in await repository.views(appeal_ids):
        board.put(state)
    log.info("board filled", extra={"open_cases": len(board)})
    return len(board)


async def _list_open_cases_of_an_older_store(repository: RoutingRepository) -> None:
    """Stores written before ``open_cases`` existed hold open cases only in their views: list
    them once (a scan of every view, done one time per store)."""
    if await repository.upgraded(OPEN_CASES_UPGRADE):
        return
    async for state in repository.views_in_open_statuses():
        await repository.opened(state.appeal_id, state.routing.received_at)
    await repository.mark_upgraded(OPEN_CASES_UPGRADE, datetime.now(UTC))


class CaseFeed:
    name = "routing-case-feed"

    def __init__(
        self,
        bootstrap_servers: str,
        board: CaseBoard,
        ledger: CaseLedger,
        repository: RoutingRepository,
        ownership: Ownership,
        *,
        client_id: str,
        topic_name: str = topics.APPEAL_LIFECYCLE.name,
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._board = board
        self._ownership = ownership
        self._ledger = ledger
        self._repository = repository
        self._client_id = client_id
        self._topic = topic_name
        self._stopping = asyncio.Event()
        self._wanted: dict[str, int] = {}  # case → newest version announced, refresh pending
        self._refreshes: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(CONCURRENT_REFRESHES)
        self.started = asyncio.Event()

    async def run(self) -> None:
        # Subscribed outside any group: every partition of the topic is assigned to this reader.
        consumer = AIOKafkaConsumer(
            self._topic,
            bootstrap_servers=self._bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            client_id=f"{self._client_id}-case-feed",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        await consumer.start()
        try:
            partitions = await self._assignment(consumer)
            if partitions:
                await consumer.seek_to_end(*partitions)
                for tp in partitions:
                    await consumer.position(tp)  # resolved now, before the board is filled
            await fill_board(self._repository, self._board)
            self.started.set()
            while not self._stopping.is_set():
                self._leave_owned_partitions_to_the_consumer(consumer)
                batches = await consumer.getmany(timeout_ms=1000, max_records=500)
                for records in batches.values():
                    for record in records:
                        self.consider(record.key, h.as_dict(record.headers))
                if batches:  # let records gather: one fetch for several (see the runner)
                    await asyncio.sleep(FETCH_PACING_S)
        finally:
            for task in self._refreshes:
                task.cancel()
            await asyncio.gather(*self._refreshes, return_exceptions=True)
            await consumer.stop()

    async def stop(self) -> None:
        self._stopping.set()

    async def _assignment(self, consumer: AIOKafkaConsumer) -> set[TopicPartition]:
        """The topic's partitions, once the reader learnt them (polling, which returns nothing
        before the first seek, keeps the metadata coming)."""
        while not self._stopping.is_set():
            assigned = consumer.assignment()
            if assigned:
                return set(assigned)
            await consumer.getmany(timeout_ms=200)
        return set()

    def _leave_owned_partitions_to_the_consumer(self, consumer: AIOKafkaConsumer) -> None:
        """Read only the partitions this instance's consumer does not own: it hands what it
        reads of its own to :meth:`consider`. A paused partition keeps its position, so when the
        consumer loses it the feed reads on from where it paused (what the consumer read
        meanwhile is read again and skipped: the board knows those versions)."""
        owned = self._ownership.partitions()
        if owned == EVERY_PARTITION or self._ownership.topic != self._topic:
            return  # no consumer reads this topic here: the feed reads everything
        paused = consumer.paused()
        for tp in consumer.assignment():
            if tp.partition in owned and tp not in paused:
                consumer.pause(tp)
            elif tp.partition not in owned and tp in paused:
                consumer.resume(tp)

    def consider(self, key: bytes | str | None, headers: Mapping[str, bytes]) -> None:
        """An event on the lifecycle topic, read by the feed or by this instance's consumer:
        if it announces a case version the board lacks, read that case."""
        announced = headers.get(h.CASE_VERSION)
        if announced is None or key is None:
            return  # not a case change: only routing's ledger sets the header
        appeal_id = key.decode(errors="replace") if isinstance(key, bytes) else key
        try:
            version = int(announced)
        except ValueError:
            version = 0
        if version and self._board.knows(appeal_id, version):
            return  # this instance wrote it, or already read it
        if appeal_id in self._wanted:
            self._wanted[appeal_id] = max(self._wanted[appeal_id], version)
            return
        self._wanted[appeal_id] = version
        task = asyncio.create_task(self._refresh(appeal_id))
        self._refreshes.add(task)
        task.add_done_callback(self._refreshes.discard)

    async def _refresh(self, appeal_id: str) -> None:
        async with self._slots:
            try:
                for _ in range(REFRESH_ATTEMPTS):
                    wanted = self._wanted.get(appeal_id, 0)
                    if wanted and self._board.knows(appeal_id, wanted):
                        return
                    state = await self._ledger.state(appeal_id)
                    if state is not None and state.version >= wanted:
                        self._board.put(state)
                        return
                    await asyncio.sleep(REFRESH_DELAY_S)
                log.debug("case not readable yet; its next change refreshes it",
                          extra={"appeal_id": appeal_id})  # fmt: skip
            except Exception as error:  # a store blip: the case's next event tries again
                log.warning("refreshing a case failed", extra={"appeal_id": appeal_id,
                                                               "error": repr(error)})  # fmt: skip
            finally:
                self._wanted.pop(appeal_id, None)

"""Routing's clockwork: expired leases, SLA warnings and breaches, requests for information
left unanswered, orphaned records, metrics.

Work is proportional to what is due, not to what is stored: the board keeps the open cases'
lease expiries and next SLA steps in heaps, and a sweep pops what fell due. Each instance sweeps
the cases of the partitions its consumer owns (every case, when it runs without one), so the
work is shared; should two instances act on the same case anyway (a rebalance in between), each
change still goes through the ledger, and of two identical steps only one record lands.

When this instance starts or takes over partitions, it catches up the open cases of those
partitions with their records: what a dead instance recorded but never announced goes out then.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from appeals_runtime import store
from appeals_runtime.errors import TransientError
from services.routing import case_rules, metrics
from services.routing import policy as routing_policy
from services.routing.board import CaseBoard
from services.routing.ledger import CaseLedger
from services.routing.model import CaseRecord, CaseState, Kind
from services.routing.ownership import Ownership
from services.routing.policy_file import PolicySource
from services.routing.repository import RoutingRepository

log = logging.getLogger(__name__)

# Open cases looked at per query when catching up.
CATCH_UP_BATCH = 500
# How often the agents-online gauge reads the agents collection.
AGENTS_ONLINE_EVERY = timedelta(seconds=30)


@dataclass(frozen=True)
class SweepReport:
    leases_expired: int = 0
    sla_warnings: int = 0
    sla_breaches: int = 0
    # Open cases caught up with their records after a start or a take-over.
    recovered: int = 0


class CaseTimers:
    def __init__(
        self,
        ledger: CaseLedger,
        repository: RoutingRepository,
        policies: PolicySource,
        board: CaseBoard,
        ownership: Ownership,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._ledger = ledger
        self._repository = repository
        self._policies = policies
        self._board = board
        self._ownership = ownership
        self._clock: Callable[[], datetime] = lambda: store.stored_time(clock())
        # Partitions whose cases were caught up; None before the first sweep.
        self._caught_up: frozenset[int] | None = None
        self._agents_online = 0
        self._agents_counted_at: datetime | None = None

    async def sweep(self) -> SweepReport:
        now = self._clock()
        recovered = await self._catch_up_new_partitions()
        expired = await self._expire_leases(now)
        warnings, breaches = await self._sla(now)
        metrics.observe(self._board.queue_stats(), await self._online(now), now)
        return SweepReport(expired, warnings, breaches, recovered)

    async def _catch_up_new_partitions(self) -> int:
        """Catch up the open cases of partitions this instance did not own at the last sweep
        (at the first sweep: all it owns)."""
        owned = self._ownership.partitions()
        if self._caught_up is not None and owned == self._caught_up:
            return 0
        before = self._caught_up
        taken = [
            appeal_id
            for appeal_id in self._board.appeal_ids()
            if self._ownership.owns(appeal_id)
            and (before is None or self._ownership.partition_of(appeal_id) not in before)
        ]
        recovered = await self._catch_up(taken)
        # A sweep pops every due entry but acts only on owned cases: what fell due while
        # another instance owned these (a dead one, until the group noticed) is due again here.
        for appeal_id in taken:
            self._board.rearm(appeal_id)
        self._caught_up = owned
        return recovered

    async def _catch_up(self, appeal_ids: Iterable[str]) -> int:
        """Catch up the cases that have a record after the version the board holds: looked for
        by ``_id``, many cases per query, so a start-up over many open cases stays cheap."""
        recovered = 0
        for appeal_id in await self._behind(list(appeal_ids)):
            before = self._board.version(appeal_id)
            try:
                after = await self._ledger.catch_up(appeal_id)
            except TransientError as error:
                log.warning("catching up a case failed", extra={"appeal_id": appeal_id,
                                                                "error": repr(error)})  # fmt: skip
                continue
            if after is not None and after.version != before:
                recovered += 1
        return recovered

    async def _behind(self, appeal_ids: list[str]) -> list[str]:
        behind = []
        for start in range(0, len(appeal_ids), CATCH_UP_BATCH):
            batch = appeal_ids[start : start + CATCH_UP_BATCH]
            following = {
                appeal_id: (self._board.version(appeal_id) or 0) + 1 for appeal_id in batch
            }
            try:
                found = await self._repository.records_exist(following)
            except TransientError as error:
                log.warning("looking for records to catch up failed", extra={"error": repr(error)})
                continue
            behind += [appeal_id for appeal_id in batch if appeal_id in found]
        return behind

    async def _expire_leases(self, now: datetime) -> int:
        expired = 0
        for appeal_id in self._mine(self._board.due_leases(now)):
            changed = await self._step(appeal_id, lambda s: case_rules.expire_lease(s, now))
            if changed is None:
                continue
            after, record = changed
            expired += 1
            metrics.leases_expired.add(1, {"queue": after.queue})
            log.info("lease expired", extra={"appeal_id": appeal_id, "agent": record.agent_id})
        return expired

    async def _sla(self, now: datetime) -> tuple[int, int]:
        warnings = breaches = 0
        for appeal_id in self._mine(self._board.due_sla(now)):
            changed = await self._step(appeal_id, lambda s: self._sla_step(s, now))
            if changed is None:
                continue
            after, record = changed
            if record.kind == Kind.INFO_LAPSED:
                log.info("no answer to a request for information in time; queued again",
                         extra={"appeal_id": appeal_id, "queue": after.queue})  # fmt: skip
                continue
            # Counted against the queue the case waited in, not the one a breach moved it to.
            labels = {**metrics.case_labels(after), "queue": record.from_queue or after.queue}
            if record.kind == Kind.SLA_WARNED:
                warnings += 1
                metrics.sla_warnings.add(1, labels)
                log.info("SLA warning", extra={"appeal_id": appeal_id, "queue": labels["queue"]})
            else:
                breaches += 1
                metrics.sla_breaches.add(1, labels)
                self._log_breach(record)
        return warnings, breaches

    def _mine(self, appeal_ids: list[str]) -> list[str]:
        return [appeal_id for appeal_id in appeal_ids if self._ownership.owns(appeal_id)]

    async def _step(
        self, appeal_id: str, step: Callable[[CaseState], CaseRecord | None]
    ) -> tuple[CaseState, CaseRecord] | None:
        """One timer step through the ledger; a store failure makes it due again next sweep."""
        try:
            after, record = await self._ledger.change(
                appeal_id, step, known=self._board.get(appeal_id)
            )
        except TransientError as error:
            self._board.rearm(appeal_id)
            log.warning("timer step failed; retrying at the next sweep",
                        extra={"appeal_id": appeal_id, "error": repr(error)})  # fmt: skip
            return None
        return (after, record) if record is not None else None

    def _sla_step(self, case: CaseState, now: datetime) -> CaseRecord | None:
        policy = self._policies.current
        on_breach = policy.sla.on_breach
        placement = (
            routing_policy.place(policy, on_breach.escalate_to, case.placement.attributes)
            if on_breach.escalate_to
            else None
        )
        return case_rules.sla_step(
            case,
            now,
            breach_placement=placement,
            breach_priority=min(case.priority + on_breach.priority_boost, policy.priority.maximum),
        )

    def _log_breach(self, record: CaseRecord) -> None:
        log.warning(
            "SLA breached",
            extra={"appeal_id": record.appeal_id, "queue": record.from_queue,
                   "escalated_to": record.placement.queue if record.placement else None},
        )  # fmt: skip

    async def _online(self, now: datetime) -> int:
        counted = self._agents_counted_at
        if counted is None or not counted <= now < counted + AGENTS_ONLINE_EVERY:
            self._agents_online = await self._repository.agents_online(now)
            self._agents_counted_at = now
        return self._agents_online

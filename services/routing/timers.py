"""Routing's clockwork: expired leases, SLA warnings and breaches, unpublished events, metrics.

Every routing instance runs the same sweep. That is safe because each change goes through the
ledger: of two instances acting on the same case only one record lands, and event ids derive
from the step, so a warning, a breach or a lease expiry is recorded and announced once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from appeals_runtime import store
from services.routing import case_rules, metrics
from services.routing import policy as routing_policy
from services.routing.ledger import CaseLedger
from services.routing.model import CaseRecord, CaseState, Kind
from services.routing.policy_file import PolicySource
from services.routing.repository import RoutingRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepReport:
    leases_expired: int = 0
    sla_warnings: int = 0
    sla_breaches: int = 0
    republished: int = 0


class CaseTimers:
    def __init__(
        self,
        ledger: CaseLedger,
        repository: RoutingRepository,
        policies: PolicySource,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        batch: int = 200,
        # A record unpublished this long after it was written lost its writer.
        republish_after: timedelta = timedelta(seconds=10),
    ) -> None:
        self._ledger = ledger
        self._repository = repository
        self._policies = policies
        self._clock: Callable[[], datetime] = lambda: store.stored_time(clock())
        self._batch = batch
        self._republish_after = republish_after

    async def sweep(self) -> SweepReport:
        now = self._clock()
        expired = await self._expire_leases(now)
        warnings, breaches = await self._sla(now)
        republished = await self._republish(now)
        metrics.observe(
            await self._repository.queue_stats(), await self._repository.agents_online(now), now
        )
        return SweepReport(expired, warnings, breaches, republished)

    async def _expire_leases(self, now: datetime) -> int:
        expired = 0
        for appeal_id in await self._repository.lease_expired(now, self._batch):
            after, record = await self._ledger.change(
                appeal_id, lambda s: case_rules.expire_lease(s, now)
            )
            if record is None:
                # The view was behind the records; ``after`` was just folded from them.
                await self._repository.save_view(after)
                continue
            expired += 1
            metrics.leases_expired.add(1, {"queue": after.queue})
            log.info("lease expired", extra={"appeal_id": appeal_id, "agent": record.agent_id})
        return expired

    async def _sla(self, now: datetime) -> tuple[int, int]:
        warnings = breaches = 0
        for appeal_id in await self._repository.sla_due(now, self._batch):
            after, record = await self._ledger.change(appeal_id, lambda s: self._sla_step(s, now))
            if record is None:
                await self._repository.save_view(after)  # as above: the view was behind
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

    async def _republish(self, now: datetime) -> int:
        records = await self._repository.unpublished(now - self._republish_after, self._batch)
        for record in records:
            await self._ledger.republish(record)
        return len(records)

"""Choosing which cases to offer an agent, and reserving them so no one else is offered them.

An offer reserves a case for one agent's stream for the policy's ``offer_ttl`` (a unique insert,
see the repository): two routing instances serving two agents never offer the same case at once.
An agent is offered what its skills (relaxed by how long the case has waited, never below the
mandatory ones) and its free capacity allow, highest priority first, then oldest. An offer that
lapses unclaimed goes to someone else first: the agent who let it lapse waits one more TTL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.routing import case_rules, metrics
from services.routing import policy as routing_policy
from services.routing.ledger import CaseLedger
from services.routing.model import AgentProfile, CaseState, Offer, Presence
from services.routing.policy_file import PolicySource
from services.routing.repository import RoutingRepository

# Read this many candidates per wanted offer: some are reserved or need other skills.
CANDIDATES_PER_OFFER = 4
MIN_CANDIDATES = 50


@dataclass(frozen=True)
class Offered:
    offer: Offer
    case: CaseState


class OfferBook:
    def __init__(
        self, ledger: CaseLedger, repository: RoutingRepository, policies: PolicySource
    ) -> None:
        self._ledger = ledger
        self._repository = repository
        self._policies = policies

    def can_take(self, profile: AgentProfile, case: CaseState, now: datetime) -> bool:
        """Independent of the case, and skilled for what it still requires after waiting."""
        if not case_rules.may_review(case, profile.agent_id):
            return False
        policy = self._policies.current
        required = routing_policy.effective_requirements(
            policy, case.placement.requirements, now - case.waiting_since
        )
        return routing_policy.qualifies(policy, profile.skills, required)

    async def window(self, profile: AgentProfile, now: datetime) -> int:
        """How many more cases the agent may be offered right now."""
        if profile.presence_at(now) == Presence.AWAY:
            return 0
        unregistered = self._policies.current.agents.unregistered
        held = await self._repository.held_count(profile.agent_id, now)
        reserved = len(await self._repository.active_offers(profile.agent_id, now))
        if profile.registered:
            return profile.capacity - held - reserved
        if unregistered.skills == "none" or held >= profile.capacity:
            return 0
        return unregistered.offer_window - reserved

    async def next_offers(
        self, profile: AgentProfile, queues: list[str] | None, stream_id: str, now: datetime
    ) -> list[Offered]:
        # Open cases first: an idle desk then costs one query per poll, not five.
        candidates = await self._repository.open_cases(queues, now, MIN_CANDIDATES)
        eligible = [case for case in candidates if self.can_take(profile, case, now)]
        if not eligible:
            return []
        wanted = await self.window(profile, now)
        if wanted <= 0:
            return []
        if len(candidates) == MIN_CANDIDATES and wanted * CANDIDATES_PER_OFFER > MIN_CANDIDATES:
            candidates = await self._repository.open_cases(
                queues, now, wanted * CANDIDATES_PER_OFFER
            )
            eligible = [case for case in candidates if self.can_take(profile, case, now)]
        ttl = self._policies.current.agents.offer_ttl
        latest = await self._repository.latest_offers(case.appeal_id for case in eligible)
        offered: list[Offered] = []
        for case in eligible:
            if len(offered) >= wanted:
                break
            last = latest.get(case.appeal_id)
            if last is not None and last.active(now):
                continue  # reserved for someone (perhaps this agent's other stream)
            if (
                last is not None
                and last.agent_id == profile.agent_id
                and now < last.expires_at + ttl
            ):
                continue  # this agent let it lapse a moment ago: others first
            offer = Offer(
                appeal_id=case.appeal_id,
                number=last.number + 1 if last else 1,
                agent_id=profile.agent_id,
                stream_id=stream_id,
                offered_at=now,
                expires_at=now + ttl,
            )
            if not await self._repository.insert_offer(offer):
                continue  # another stream reserved it first
            current = await self._ledger.verify(case)
            if (
                current is None
                or not current.is_open(now)
                or not self.can_take(profile, current, now)
            ):
                await self._repository.withdraw_offers(appeal_id=case.appeal_id)
                continue  # the view was behind the records; it is fixed now
            metrics.offers_made.add(1, {"queue": current.queue})
            offered.append(Offered(offer, current))
        return offered

    async def offered_to(self, appeal_id: str, now: datetime) -> str | None:
        """The agent a case is reserved for right now, if any."""
        latest = (await self._repository.latest_offers([appeal_id])).get(appeal_id)
        return latest.agent_id if latest is not None and latest.active(now) else None

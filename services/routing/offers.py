"""Choosing which cases to offer an agent, and reserving them so no one else is offered them.

An offer reserves a case for one agent's stream for the policy's ``offer_ttl`` (a unique insert
of ``<appeal id>#o<n>``, see the repository): two routing instances serving two agents never
offer the same case at once. An agent is offered what its skills (relaxed by how long the case
has waited, never below the mandatory ones) and its free capacity allow, highest priority first,
then oldest. An offer that lapses unclaimed goes to someone else first: the agent who let it
lapse waits one more TTL.

Candidates come from the board (memory), so a poll costs no store read until an offer is made.
The board remembers the newest offer of each case it made or saw; an offer made meanwhile by
another instance is found when this one tries the same number (the insert fails) or, for a
claim, by reading the next numbers by ``_id``. The offers this instance's streams hold are
tracked here too, so a closing stream withdraws them without a query.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from services.routing import case_rules, metrics
from services.routing import policy as routing_policy
from services.routing.board import CaseBoard
from services.routing.ledger import CaseLedger
from services.routing.model import AgentProfile, CaseState, Offer, Presence
from services.routing.policy_file import PolicySource
from services.routing.repository import RoutingRepository

# Look at this many candidates per wanted offer: some are reserved or need other skills.
CANDIDATES_PER_OFFER = 4
MIN_CANDIDATES = 50


@dataclass(frozen=True)
class Offered:
    offer: Offer
    case: CaseState


class OfferBook:
    def __init__(
        self,
        ledger: CaseLedger,
        repository: RoutingRepository,
        policies: PolicySource,
        board: CaseBoard,
    ) -> None:
        self._ledger = ledger
        self._repository = repository
        self._policies = policies
        self._board = board
        # Offers made by this instance's streams, per agent and case: what the agent has
        # reserved here, and what a closing stream withdraws.
        self._by_agent: dict[str, dict[str, Offer]] = {}
        # Cases a stream of this instance is reserving right now: another stream's poll passes
        # them by instead of racing it to the store.
        self._reserving: set[str] = set()

    def can_take(self, profile: AgentProfile, case: CaseState, now: datetime) -> bool:
        """Independent of the case, and skilled for what it still requires after waiting."""
        if not case_rules.may_review(case, profile.agent_id):
            return False
        policy = self._policies.current
        required = routing_policy.effective_requirements(
            policy, case.placement.requirements, now - case.waiting_since
        )
        return routing_policy.qualifies(policy, profile.skills, required)

    def window(self, profile: AgentProfile, now: datetime) -> int:
        """How many more cases the agent may be offered right now."""
        if profile.presence_at(now) == Presence.AWAY:
            return 0
        unregistered = self._policies.current.agents.unregistered
        held = self._board.held(profile.agent_id, now)
        reserved = self._reserved(profile.agent_id, now)
        if profile.registered:
            return profile.capacity - held - reserved
        if unregistered.skills == "none" or held >= profile.capacity:
            return 0
        return unregistered.offer_window - reserved

    async def next_offers(
        self, profile: AgentProfile, queues: list[str] | None, stream_id: str, now: datetime
    ) -> list[Offered]:
        wanted = self.window(profile, now)
        if wanted <= 0:
            return []
        limit = max(MIN_CANDIDATES, wanted * CANDIDATES_PER_OFFER)
        offered: list[Offered] = []
        for case in self._board.offerable(queues, now, limit):
            if len(offered) >= wanted:
                break
            if not self.can_take(profile, case, now):
                continue
            offer = await self._reserve(case, profile, stream_id, now)
            if offer is None:
                continue
            current = await self._ledger.verify(case)
            if (
                current is None
                or not current.is_open(now)
                or not self.can_take(profile, current, now)
            ):
                await self._withdraw(offer)
                continue  # the board was behind the store; it has just learnt better
            metrics.offers_made.add(1, {"queue": current.queue})
            offered.append(Offered(offer, current))
        return offered

    async def _reserve(
        self, case: CaseState, profile: AgentProfile, stream_id: str, now: datetime
    ) -> Offer | None:
        """Reserve ``case`` for the agent's stream, unless someone holds it or the agent just let
        it lapse. A number already taken means another instance offered it: learn that offer
        and judge again (once: racing it twice means it is contended right now)."""
        if case.appeal_id in self._reserving:
            return None
        self._reserving.add(case.appeal_id)
        try:
            return await self._reserve_for(case, profile, stream_id, now)
        finally:
            self._reserving.discard(case.appeal_id)

    async def _reserve_for(
        self, case: CaseState, profile: AgentProfile, stream_id: str, now: datetime
    ) -> Offer | None:
        ttl = self._policies.current.agents.offer_ttl
        last = self._board.latest_offer(case.appeal_id)
        for attempt in range(2):
            if last is not None and last.active(now):
                return None  # reserved for someone (perhaps this agent's other stream)
            if (
                last is not None
                and last.agent_id == profile.agent_id
                and now < last.expires_at + ttl
            ):
                return None  # this agent let it lapse a moment ago: others first
            offer = Offer(
                appeal_id=case.appeal_id,
                number=last.number + 1 if last else 1,
                agent_id=profile.agent_id,
                stream_id=stream_id,
                offered_at=now,
                expires_at=now + ttl,
            )
            if await self._repository.insert_offer(offer):
                self._board.offered(offer)
                self._by_agent.setdefault(offer.agent_id, {})[case.appeal_id] = offer
                return offer
            if attempt == 0:
                last = await self.latest(case.appeal_id)
        return None

    async def latest(self, appeal_id: str) -> Offer | None:
        """The newest offer of a case: what the board knows, and any made since (by ``_id``)."""
        known = self._board.latest_offer(appeal_id)
        number = known.number if known is not None else 0
        newest = known
        while (following := await self._repository.offer(appeal_id, number + 1)) is not None:
            newest, number = following, following.number
        if newest is not None and newest is not known:
            self._board.offered(newest)
        return newest

    async def offered_to(self, appeal_id: str, now: datetime) -> str | None:
        """The agent a case is reserved for right now, if any."""
        latest = await self.latest(appeal_id)
        return latest.agent_id if latest is not None and latest.active(now) else None

    async def withdraw_case(self, appeal_id: str) -> None:
        """The case turned out not offerable: its reservation ends, for every instance."""
        latest = await self.latest(appeal_id)
        if latest is not None and not latest.withdrawn:
            await self._withdraw(latest)

    def claimed(self, appeal_id: str) -> None:
        """The case was claimed: its reservation ends here. Nothing is written: a claimed case
        is offered by no instance (its state says so), and should it be released before the
        offer lapses, other instances wait out the offer's TTL at most."""
        latest = self._board.latest_offer(appeal_id)
        if latest is not None and not latest.withdrawn:
            self._board.offered(replace(latest, withdrawn=True))
            self._forget(latest)

    async def withdraw_stream(self, agent_id: str, stream_id: str) -> None:
        """The stream closed: what it reserved goes back at once, not when it lapses."""
        for offer in list(self._by_agent.get(agent_id, {}).values()):
            if offer.stream_id == stream_id:
                await self._withdraw(offer)

    async def _withdraw(self, offer: Offer) -> None:
        await self._repository.withdraw_offer(offer.appeal_id, offer.number)
        self._board.offered(replace(offer, withdrawn=True))
        self._forget(offer)

    def _forget(self, offer: Offer) -> None:
        held = self._by_agent.get(offer.agent_id)
        if held is not None and offer.appeal_id in held:
            del held[offer.appeal_id]
            if not held:
                del self._by_agent[offer.agent_id]

    def _reserved(self, agent_id: str, now: datetime) -> int:
        """Offers this instance's streams hold for ``agent_id`` that are still active (the
        newest offer of their case, not lapsed)."""
        count = 0
        for offer in list(self._by_agent.get(agent_id, {}).values()):
            latest = self._board.latest_offer(offer.appeal_id)
            if latest is not None and latest.number == offer.number and latest.active(now):
                count += 1
            else:
                self._forget(offer)  # lapsed, superseded or its case closed
        return count

"""Agents as routing knows them: their skills and capacity (registered through the desk) and
their presence (online while a case stream is open, away when they say so, else offline)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from appeals import vocabulary
from appeals_runtime.auth import Principal, Role, Scope
from appeals_runtime.errors import FieldViolation, ValidationFailed
from services.routing import policy as routing_policy
from services.routing.model import AgentProfile, Presence
from services.routing.policy_file import PolicySource
from services.routing.policy_schema import RoutingPolicy
from services.routing.repository import RoutingRepository

MAX_CAPACITY = 50
# How old a profile a case stream's poll may use.
PROFILE_FRESH_S = 2.0

log = logging.getLogger(__name__)


def require_agent(principal: Principal) -> None:
    principal.require(Scope.WORK_CASES, role=Role.AGENT)


class AgentRegistry:
    def __init__(
        self,
        repository: RoutingRepository,
        policies: PolicySource,
        *,
        presence_ttl: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._repository = repository
        self._policies = policies
        self._presence_ttl = presence_ttl
        self._clock = clock
        # Profiles read lately, by agent: (when, profile).
        self._recent: dict[str, tuple[float, AgentProfile]] = {}

    async def register(
        self, agent: Principal, skills: routing_policy.AgentSkills, capacity: int
    ) -> AgentProfile:
        require_agent(agent)
        policy = self._policies.current
        skills = _validated_skills(policy, skills)
        if not 0 <= capacity <= MAX_CAPACITY:
            raise ValidationFailed(
                [FieldViolation("profile.capacity", f"must be between 0 and {MAX_CAPACITY}")]
            )
        profile = AgentProfile(
            agent.subject, skills, capacity or policy.agents.default_capacity, registered=True
        )
        await self._repository.save_agent(profile, self._clock())
        self._recent.pop(agent.subject, None)
        log.info("agent registered", extra={"agent": agent.subject, "capacity": profile.capacity})
        return await self.profile(agent)

    async def recent_profile(self, agent: Principal) -> AgentProfile:
        """The profile as read at most ``PROFILE_FRESH_S`` ago: a case stream asks on every poll,
        and a change through this instance is seen at once (another instance's within that
        time)."""
        cached = self._recent.get(agent.subject)
        if cached is not None and time.monotonic() - cached[0] < PROFILE_FRESH_S:
            return cached[1]
        return await self.profile(agent)

    async def profile(self, agent: Principal) -> AgentProfile:
        """The registered profile, or what the policy gives agents that never registered."""
        profile = await self._read_profile(agent)
        self._recent[agent.subject] = (time.monotonic(), profile)
        return profile

    async def _read_profile(self, agent: Principal) -> AgentProfile:
        stored = await self._repository.agent(agent.subject)
        if stored is not None and stored.registered:
            return stored
        unregistered = self._policies.current.agents.unregistered
        skills = (
            routing_policy.AgentSkills.everything()
            if unregistered.skills == "all"
            else routing_policy.AgentSkills()
        )
        return AgentProfile(
            agent.subject,
            skills,
            unregistered.capacity,
            registered=False,
            presence=stored.presence if stored else Presence.OFFLINE,
            presence_until=stored.presence_until if stored else None,
        )

    async def set_presence(self, agent: Principal, presence: Presence) -> Presence:
        require_agent(agent)
        now = self._clock()
        until = now + self._presence_ttl if presence == Presence.ONLINE else None
        await self._repository.set_presence(agent.subject, presence, until, now)
        self._recent.pop(agent.subject, None)
        return presence

    async def keep_online(self, agent: Principal) -> None:
        """Online while a stream renews it; an away agent stays away (as read lately: going
        away through this instance is seen at once, through another within seconds)."""
        profile = await self.recent_profile(agent)
        if profile.presence != Presence.AWAY:
            now = self._clock()
            await self._repository.set_presence(
                agent.subject, Presence.ONLINE, now + self._presence_ttl, now
            )
            self._recent.pop(agent.subject, None)

    async def went_offline(self, agent: Principal) -> None:
        profile = await self.profile(agent)
        if profile.presence != Presence.AWAY:
            await self._repository.set_presence(
                agent.subject, Presence.OFFLINE, None, self._clock()
            )
            self._recent.pop(agent.subject, None)


def _validated_skills(
    policy: RoutingPolicy, skills: routing_policy.AgentSkills
) -> routing_policy.AgentSkills:
    violations = []
    any_ = routing_policy.ANY
    unknown_languages = skills.languages - set(policy.languages.reviewed) - {any_}
    if unknown_languages:
        violations.append(
            FieldViolation(
                "profile.languages", f"not review languages: {sorted(unknown_languages)}"
            )
        )
    unknown_platforms = skills.platforms - set(vocabulary.PLATFORMS) - {any_}
    if unknown_platforms:
        violations.append(
            FieldViolation("profile.platforms", f"unknown platforms: {sorted(unknown_platforms)}")
        )
    areas = {*policy.policy_areas.values(), policy.default_policy_area, any_}
    if skills.policy_areas - areas:
        violations.append(
            FieldViolation(
                "profile.policy_areas",
                f"unknown policy areas: {sorted(skills.policy_areas - areas)}",
            )
        )
    seniority = skills.seniority or policy.seniority_levels[0]
    if seniority not in policy.seniority_levels:
        violations.append(
            FieldViolation("profile.seniority", f"must be one of {policy.seniority_levels}")
        )
    if violations:
        raise ValidationFailed(violations)
    return replace(skills, seniority=seniority)

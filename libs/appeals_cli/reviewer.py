"""A terminal reviewer on the agent desk: registers its skills, streams cases, claims one at a
time (renewing the claim while the person reads), then decides, escalates, transfers or releases
it, by hand or by the demo's rule."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc

from appeals import vocabulary
from appeals.v1 import agent_desk_pb2, agent_desk_pb2_grpc, appeal_pb2

# Words in a statement that, in the demo rule, suggest the original decision missed context.
_CONTEXT_WORDS = re.compile(
    r"\b(quote|quoting|news|satire|joke|mistake|not me|context|art)\b", re.I
)


@dataclass(frozen=True)
class Verdict:
    outcome: int
    rationale: str
    policy_cited: str
    # The facts the decision rests on (statement of reasons, DSA Art. 17): required of every
    # registered reviewer, and never the appellant's own words or personal data.
    facts: str


def case_facts(case: agent_desk_pb2.CaseOffer) -> str:
    """The facts of a case as the desk shows them, without personal data."""
    f = case.facts
    how = "automatically" if f.decision.automated else "by a person"
    return (
        f"The {vocabulary.platform_name(f.platform)} "
        f"{vocabulary.subject_kind_name(f.subject.kind)} was {f.decision.action or 'actioned'} "
        f"{how} under the {f.decision.policy} policy."
    )


def automatic_verdict(case: agent_desk_pb2.CaseOffer) -> Verdict:
    """The demo's stand-in reviewer: overturn when the statement gives context the original
    decision could have missed, uphold otherwise. For demos and tests only: real decisions are
    made by people. ``case`` is a claimed case: only a claim carries the statement."""
    policy = case.facts.decision.policy
    if _CONTEXT_WORDS.search(case.statement):
        return Verdict(
            appeal_pb2.OUTCOME_OVERTURNED,
            "The content reports on or quotes the material in a way our policy allows.",
            policy,
            case_facts(case) + " The appellant's statement gives context the decision missed.",
        )
    return Verdict(
        appeal_pb2.OUTCOME_UPHELD,
        f"The content violates our {policy.replace('_', ' ')} policy as written.",
        policy,
        case_facts(case),
    )


def describe(case: agent_desk_pb2.CaseOffer) -> str:
    f = case.facts
    return (
        f"{case.appeal_id}  queue={case.queue}  priority={case.priority}\n"
        f"  {vocabulary.platform_name(f.platform)} {vocabulary.subject_kind_name(f.subject.kind)}"
        f" {f.subject.id}: {f.decision.action} under {f.decision.policy}"
        f" ({'automated' if f.decision.automated else 'by a person'})\n"
        f"  statement ({f.locale}): {case.statement}"
        + "".join(f"\n  attached: {a.media_type} {a.uri}" for a in case.attachments)
        + "".join(
            f"\n  asked: {i.question}\n  answered: {i.answer}"
            + "".join(f"\n    attached: {a.media_type} {a.uri}" for a in i.attachments)
            for i in case.information
        )
    )


@dataclass(frozen=True)
class Escalation:
    """Send the case up: to a senior reviewer, to legal, or out to the Oversight Board or a
    certified out-of-court dispute settlement body (``body``)."""

    target: int  # agent_desk_pb2.EscalationTarget
    reason: str
    # For a referral: the question the body is asked.
    question: str = ""
    # For an out-of-court referral: the certified body's id in the routing policy.
    body: str = ""


@dataclass(frozen=True)
class Transfer:
    """Move the case to another queue the routing policy defines."""

    queue: str
    reason: str


@dataclass(frozen=True)
class AskAppellant:
    """Ask the appellant for more; the case waits for the answer off the desk."""

    question: str


# What a reviewer does with a claimed case; None gives it back to its queue.
Choice = Verdict | Escalation | Transfer | AskAppellant | None

_OUTCOMES = {
    "u": appeal_pb2.OUTCOME_UPHELD,
    "o": appeal_pb2.OUTCOME_OVERTURNED,
    "p": appeal_pb2.OUTCOME_PARTIALLY_OVERTURNED,
}
_TARGETS = {
    "senior": agent_desk_pb2.ESCALATION_TARGET_SENIOR,
    "legal": agent_desk_pb2.ESCALATION_TARGET_LEGAL,
    "board": agent_desk_pb2.ESCALATION_TARGET_OVERSIGHT_BOARD,
    "ods": agent_desk_pb2.ESCALATION_TARGET_OUT_OF_COURT,
}


def ask_person(case: agent_desk_pb2.CaseOffer, read: Callable[[str], str] = input) -> Choice:
    """The terminal reviewer's questions about one claimed case, and what they chose."""
    print(describe(case))
    answer = (
        read(
            "  [u]phold, [o]verturn, [p]artially overturn, [e]scalate, [t]ransfer, "
            "ask for [i]nformation, [r]elease? "
        )
        .strip()
        .lower()
    )
    if answer in _OUTCOMES:
        rationale = read("  rationale: ").strip() or "See the policy cited."
        facts = read(f"  facts [{case_facts(case)}]: ").strip() or case_facts(case)
        return Verdict(_OUTCOMES[answer], rationale, case.facts.decision.policy, facts)
    if answer == "e":
        return _escalation(read)
    if answer == "i":
        question = read("  what do you need from the appellant: ").strip()
        return AskAppellant(question) if question else None
    if answer == "t":
        queue = read("  to queue: ").strip()
        if not queue:
            return None
        return Transfer(queue, read("  reason: ").strip() or "Another queue's skills fit.")
    return None


def _escalation(read: Callable[[str], str]) -> Escalation | None:
    target = (
        read("  to [senior], legal, board or ods (out-of-court body)? ").strip().lower() or "senior"
    )
    if target not in _TARGETS:
        print(f"  no escalation target {target!r}; the case goes back to its queue")
        return None
    body = read("  which certified body: ").strip() if target == "ods" else ""
    reason = read("  reason: ").strip() or "Needs a second look."
    referral = target in ("board", "ods")
    question = read("  question for the body: ").strip() if referral else ""
    return Escalation(_TARGETS[target], reason, question, body)


def skills_profile(
    languages: list[str],
    *,
    platforms: list[str] | None = None,
    policy_areas: list[str] | None = None,
    seniority: str = "experienced",
    capacity: int = 1,
) -> agent_desk_pb2.AgentProfile:
    """What a reviewer registers: the languages it reads (never "any" by default), the
    platforms and policy areas it is trained for ("*": any), its seniority and how many cases
    it works at once (a terminal reviewer: one)."""
    return agent_desk_pb2.AgentProfile(
        languages=languages,
        platforms=platforms or ["*"],
        policy_areas=policy_areas or ["*"],
        seniority=seniority,
        capacity=capacity,
    )


def heartbeat_interval(claimed: agent_desk_pb2.ClaimResponse, now: datetime) -> float:
    """How often to renew a claim: three times per lease, so that one lost heartbeat (a
    network blip) never costs the reviewer the case; at least once a second."""
    left = (claimed.lease_expires_at.ToDatetime(tzinfo=UTC) - now).total_seconds()
    return max(1.0, left / 3)


@contextlib.asynccontextmanager
async def keeping_the_claim(
    desk: agent_desk_pb2_grpc.AgentDeskStub,
    appeal_id: str,
    metadata: tuple[tuple[str, str], ...],
    *,
    every_s: float,
    say: Callable[[str], None],
) -> AsyncIterator[None]:
    """Renew the claim on ``appeal_id`` every ``every_s`` while the block runs: a person may
    take longer than one lease to read a case and write the reasons."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await desk.Heartbeat(
                    agent_desk_pb2.HeartbeatRequest(appeal_id=appeal_id), metadata=metadata
                )
            except grpc.aio.AioRpcError as error:
                if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    continue  # the desk is restarting: the next beat may reach it in time
                say(f"lost the claim on {appeal_id}: {error.details()}")
                return

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def review(
    target: str,
    token: str,
    *,
    auto: bool,
    count: int | None,
    say: Callable[[str], None] = print,
    pause_s: float = 0.0,
    heartbeat_s: float | None = None,
    profile: agent_desk_pb2.AgentProfile | None = None,
    ask: Callable[[agent_desk_pb2.CaseOffer], Choice] = ask_person,
) -> int:
    """Work cases until ``count`` are decided (or forever); returns how many were decided.

    With ``profile`` the reviewer registers its skills first (the shipped policy offers nothing
    to an agent that has not). While a case is claimed its claim is renewed every
    ``heartbeat_s`` (by default three times per lease), however long the reviewer takes."""
    metadata = (("authorization", f"Bearer {token}"),)
    decided = 0
    async with grpc.aio.insecure_channel(target) as channel:
        desk = agent_desk_pb2_grpc.AgentDeskStub(channel)
        if profile is not None:
            await desk.RegisterAgent(
                agent_desk_pb2.RegisterAgentRequest(profile=profile), metadata=metadata
            )
        # The desk offers cases of the token's queues.
        stream = desk.StreamCases(agent_desk_pb2.StreamCasesRequest(), metadata=metadata)
        async for offer in stream:
            try:
                claimed = await desk.Claim(
                    agent_desk_pb2.ClaimRequest(appeal_id=offer.appeal_id), metadata=metadata
                )
            except grpc.aio.AioRpcError as error:
                if error.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                    continue  # a colleague was faster
                raise
            every_s = heartbeat_s or heartbeat_interval(claimed, datetime.now(UTC))
            async with keeping_the_claim(desk, offer.appeal_id, metadata, every_s=every_s, say=say):
                verdict = (
                    automatic_verdict(claimed.case)
                    if auto
                    else await asyncio.to_thread(ask, claimed.case)
                )
                if pause_s:
                    await asyncio.sleep(pause_s)
            if not isinstance(verdict, Verdict):
                await _pass_on(desk, offer.appeal_id, verdict, metadata, say)
                continue
            try:
                await desk.Decide(
                    agent_desk_pb2.DecideRequest(
                        appeal_id=offer.appeal_id,
                        outcome=verdict.outcome,  # type: ignore[arg-type]
                        rationale=verdict.rationale,
                        policy_cited=verdict.policy_cited,
                        facts=verdict.facts,
                    ),
                    metadata=metadata,
                )
            except grpc.aio.AioRpcError as error:
                if error.code() not in (
                    grpc.StatusCode.FAILED_PRECONDITION,
                    grpc.StatusCode.INVALID_ARGUMENT,
                ):
                    raise
                # The claim was lost (the desk unreachable for a whole lease) or the decision
                # was refused: say why and go on with the next case.
                say(f"not decided {offer.appeal_id}: {error.details()}")
                continue
            decided += 1
            outcome = vocabulary.outcome_name(verdict.outcome)
            say(f"decided {offer.appeal_id}: {outcome} ({offer.queue})")
            if count is not None and decided >= count:
                stream.cancel()
                break
    sys.stdout.flush()
    return decided


async def _pass_on(
    desk: agent_desk_pb2_grpc.AgentDeskStub,
    appeal_id: str,
    choice: Escalation | Transfer | AskAppellant | None,
    metadata: tuple[tuple[str, str], ...],
    say: Callable[[str], None],
) -> None:
    """Escalate, transfer, ask about or release a claimed case; a refusal is said, never
    raised."""
    try:
        if isinstance(choice, AskAppellant):
            asked = await desk.RequestInformation(
                agent_desk_pb2.RequestInformationRequest(
                    appeal_id=appeal_id, question=choice.question
                ),
                metadata=metadata,
            )
            due = asked.respond_by.ToDatetime().date().isoformat()
            say(f"asked the appellant of {appeal_id}; their answer is due by {due}")
        elif isinstance(choice, Escalation):
            escalated = await desk.Escalate(
                agent_desk_pb2.EscalateRequest(
                    appeal_id=appeal_id, target=choice.target,  # type: ignore[arg-type]
                    reason=choice.reason, question=choice.question, body=choice.body,
                ),
                metadata=metadata,
            )  # fmt: skip
            say(f"escalated {appeal_id} to {escalated.queue or 'an external body (referral)'}")
        elif isinstance(choice, Transfer):
            moved = await desk.Transfer(
                agent_desk_pb2.TransferRequest(
                    appeal_id=appeal_id, to_queue=choice.queue, reason=choice.reason
                ),
                metadata=metadata,
            )
            say(f"transferred {appeal_id} to {moved.queue}")
        else:
            await desk.Release(
                agent_desk_pb2.ReleaseRequest(appeal_id=appeal_id, reason="skipped"),
                metadata=metadata,
            )
    except grpc.aio.AioRpcError as error:
        if error.code() not in (
            grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.PERMISSION_DENIED,
        ):
            raise
        say(f"could not pass on {appeal_id}: {error.details()}; released it")
        if choice is not None:
            # Held on to, the claim would keep the case from everyone until its lease lapsed.
            await _pass_on(desk, appeal_id, None, metadata, say)

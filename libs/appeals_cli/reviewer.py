"""A terminal reviewer on the agent desk: streams cases, claims, decides (by hand or by rule)."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from appeals.v1 import agent_desk_pb2, agent_desk_pb2_grpc, appeal_pb2
from appeals_runtime import vocabulary

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
    )


def _ask(case: agent_desk_pb2.CaseOffer) -> Verdict | None:
    print(describe(case))
    answer = input("  [u]phold, [o]verturn, [r]elease? ").strip().lower()
    if answer not in ("u", "o"):
        return None
    rationale = input("  rationale: ").strip() or "See the policy cited."
    facts = input(f"  facts [{case_facts(case)}]: ").strip() or case_facts(case)
    outcome = appeal_pb2.OUTCOME_UPHELD if answer == "u" else appeal_pb2.OUTCOME_OVERTURNED
    return Verdict(outcome, rationale, case.facts.decision.policy, facts)


async def review(
    target: str,
    token: str,
    *,
    auto: bool,
    count: int | None,
    say: Callable[[str], None] = print,
    pause_s: float = 0.0,
) -> int:
    """Work cases until ``count`` are decided (or forever); returns how many were decided."""
    metadata = (("authorization", f"Bearer {token}"),)
    decided = 0
    async with grpc.aio.insecure_channel(target) as channel:
        desk = agent_desk_pb2_grpc.AgentDeskStub(channel)
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
            verdict = (
                automatic_verdict(claimed.case)
                if auto
                else await asyncio.to_thread(_ask, claimed.case)
            )
            if pause_s:
                await asyncio.sleep(pause_s)
            if verdict is None:
                await desk.Release(
                    agent_desk_pb2.ReleaseRequest(appeal_id=offer.appeal_id, reason="skipped"),
                    metadata=metadata,
                )
                continue
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
            decided += 1
            outcome = vocabulary.outcome_name(verdict.outcome)
            say(f"decided {offer.appeal_id}: {outcome} ({offer.queue})")
            if count is not None and decided >= count:
                stream.cancel()
                break
    sys.stdout.flush()
    return decided

"""What the routing policy does with one appeal, and why: the matched rule, the queue and what
it requires, when the requirements relax, the priority with its reasons, the due times and
whether a second review is needed. Pure; served by ``POST /v1/routing/explanations`` (an
operator checks a policy edit before routing reloads it: ``appeals route --explain``)."""

from __future__ import annotations

from typing import Any

from appeals import vocabulary
from services.routing import policy
from services.routing.policy import DEFAULT_RULE, AppealFacts
from services.routing.policy_schema import RoutingPolicy


def explain(rules: RoutingPolicy, facts: AppealFacts) -> dict[str, Any]:
    """Everything routing would decide about the appeal, with the reasons."""
    decision = policy.route(rules, facts)
    requirements = decision.placement.requirements
    submission = facts.submission
    return {
        "appeal": (
            f"{vocabulary.platform_name(submission.platform)} "
            f"{vocabulary.subject_kind_name(submission.subject.kind)} "
            f"({submission.decision.action} under {submission.decision.policy}), "
            f"locale {submission.locale or '-'}, country {submission.country or '-'}"
        ),
        "rule": decision.rule,
        # False when no rule matched and the default queue took the appeal.
        "rule_matched": decision.rule != DEFAULT_RULE,
        "rules_checked": [rule.name for rule in rules.rules],
        "queue": decision.queue,
        "requires": requirements.describe(),
        "relaxes": [
            {"after": policy.describe_span(after), "skills": skills}
            for after, skills in policy.relaxation_schedule(rules, requirements)
        ],
        "priority": decision.priority,
        "priority_reasons": list(decision.reasons),
        "received_at": facts.received_at.isoformat(),
        "due_at": decision.sla.due_at.isoformat(),
        "warn_at": decision.sla.warn_at.isoformat(),
        "sla_reasons": list(decision.sla.reasons),
        "second_review": decision.second_review,
        "second_review_reason": decision.second_review_reason,
    }

"""`appeals route --explain FILE`: what the routing policy does with one appeal, and why.

FILE is an appeal as POSTed to intake's /v1/appeals. Nothing is sent anywhere: the policy file
(the one routing runs with, unless --policy names another) is evaluated locally, so a policy edit
can be checked before routing reloads it.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.routing.policy import AppealFacts
    from services.routing.policy_schema import RoutingPolicy

# The routing and intake modules are imported where used, so other commands never load them.


def add_parser(commands: Any) -> None:
    route = commands.add_parser(
        "route", help="explain how the routing policy places an appeal (no pipeline needed)"
    )
    route.add_argument(
        "--explain", metavar="FILE", required=True, help="appeal JSON body, as for POST /v1/appeals"
    )
    route.add_argument(
        "--policy", type=Path, help="routing policy YAML (default: the one routing ships with)"
    )
    route.add_argument("--received-at", help="RFC 3339 arrival time (default: now)")
    route.add_argument(
        "--ban-evasion", action="store_true", help="as if intake suspected ban evasion"
    )
    route.add_argument(
        "--repeat", action="store_true", help="as if the same decision was appealed before"
    )
    route.add_argument("--json", action="store_true", help="print JSON instead of text")
    route.set_defaults(handler=_explain_command)


def _explain_command(args: argparse.Namespace) -> int:
    from appeals.facts import submission_facts
    from services.intake.schemas import AppealIn
    from services.routing.policy import AppealFacts
    from services.routing.policy_file import DEFAULT_POLICY_FILE, PolicyError, load_policy

    try:
        rules = load_policy(args.policy or DEFAULT_POLICY_FILE)
    except PolicyError as error:
        print(error, file=sys.stderr)
        return 2
    try:
        body = json.loads(Path(args.explain).read_text(encoding="utf-8"))
        # Routing sees what leaves intake: the facts, not the appellant's personal data.
        submission = submission_facts(AppealIn.model_validate(body).to_proto())
    except (OSError, ValueError) as error:
        print(f"{args.explain}: {_describe(error)}", file=sys.stderr)
        return 2
    received = datetime.fromisoformat(args.received_at) if args.received_at else datetime.now(UTC)
    facts = AppealFacts(
        submission,
        received.astimezone(UTC),
        ban_evasion_suspected=args.ban_evasion,
        repeat_appeal=args.repeat,
    )
    explained = explain(rules, facts)
    print(json.dumps(explained, indent=2) if args.json else render(explained))
    return 0


def _describe(error: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        return "not an appeal body:\n" + "\n".join(
            f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
    return str(error)


def explain(rules: RoutingPolicy, facts: AppealFacts) -> dict[str, Any]:
    """Everything routing would decide about the appeal, with the reasons."""
    from appeals import vocabulary
    from services.routing import policy

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


def render(explained: dict[str, Any]) -> str:
    from services.routing.policy import DEFAULT_RULE

    rule = explained["rule"]
    checked = explained["rules_checked"]
    if rule == DEFAULT_RULE:
        why = f"no rule matched (checked {', '.join(checked) or 'none'}): the default queue"
    else:
        why = f"rule {checked.index(rule) + 1} of {len(checked)} matched first"
    relaxes = "; ".join(
        f"after {r['after']}: {', '.join(r['skills'])}" for r in explained["relaxes"]
    )
    second = (
        f"required: {explained['second_review_reason']}"
        if explained["second_review"]
        else "not required"
    )
    lines = [
        f"appeal         {explained['appeal']}",
        f"rule           {rule} ({why})",
        f"queue          {explained['queue']}",
        f"requires       {', '.join(explained['requires']) or 'nothing'}",
        f"relaxes        {relaxes or 'never'}",
        f"priority       {explained['priority']}",
        *(f"                 {reason}" for reason in explained["priority_reasons"]),
        f"due            {explained['due_at']} ({'; '.join(explained['sla_reasons'])})",
        f"warning at     {explained['warn_at']}",
        f"second review  {second}",
    ]
    return "\n".join(lines)

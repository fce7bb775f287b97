"""`appeals route --explain FILE`: what the routing policy does with one appeal, and why.

FILE is an appeal as POSTed to intake's /v1/appeals. Routing answers (``POST
/v1/routing/explanations`` with an ops token; nothing is routed, stored or sent) with the policy
it runs, or with the one ``--policy`` names, so a policy edit can be checked before routing
reloads it. Needs routing running (``make run``); ``--routing-url`` names another.

Only the facts of the appeal go to routing, as intake would pass them on (no user id, contact
or statement): the conversion below is the contracts' own, field by field.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from appeals import vocabulary
from appeals_cli.answers import moment, problem

DEFAULT_ROUTING_URL = os.environ.get("APPEALS_ROUTING_URL", "http://127.0.0.1:8081")


class NotAnAppealError(ValueError):
    pass


def add_parser(commands: Any) -> None:
    route = commands.add_parser(
        "route", help="explain how the routing policy places an appeal (asks routing)"
    )
    route.add_argument(
        "--explain", metavar="FILE", required=True, help="appeal JSON body, as for POST /v1/appeals"
    )
    route.add_argument(
        "--policy", type=Path, help="routing policy YAML to try (default: the one routing runs)"
    )
    route.add_argument("--received-at", help="RFC 3339 arrival time (default: now)")
    route.add_argument(
        "--ban-evasion", action="store_true", help="as if intake suspected ban evasion"
    )
    route.add_argument(
        "--repeat", action="store_true", help="as if the same decision was appealed before"
    )
    route.add_argument("--json", action="store_true", help="print JSON instead of text")
    route.add_argument("--routing-url", default=DEFAULT_ROUTING_URL, help="routing's base URL")
    route.add_argument("--token", help="ops token (default: a local DEV-ONLY one)")
    route.set_defaults(handler=_explain_command)


def _explain_command(args: argparse.Namespace) -> int:
    try:
        body = json.loads(Path(args.explain).read_text(encoding="utf-8"))
        request: dict[str, Any] = {
            "submission": submission_facts(body),
            "ban_evasion_suspected": args.ban_evasion,
            "repeat_appeal": args.repeat,
        }
        if args.received_at:
            request["received_at"] = moment(args.received_at)
        if args.policy:
            request["policy"] = args.policy.read_text(encoding="utf-8")
    except OSError as error:  # the appeal or the policy file
        print(error, file=sys.stderr)
        return 2
    except ValueError as error:  # not JSON, or not an appeal body
        print(f"{args.explain}: {error}", file=sys.stderr)
        return 2
    token = args.token
    if token is None:
        from appeals_cli import tokens

        token = tokens.ops_token("route-explain")
    try:
        response = httpx.post(
            f"{args.routing_url.rstrip('/')}/v1/routing/explanations",
            json=request,
            headers={"Authorization": f"Bearer {token}"},
            timeout=15,
        )
    except httpx.HTTPError as error:
        print(f"cannot reach routing at {args.routing_url}: {error}", file=sys.stderr)
        return 2
    if response.status_code != 200:
        print(problem(response, "routing"), file=sys.stderr)
        return 2
    explained = response.json()
    print(json.dumps(explained, indent=2) if args.json else render(explained))
    return 0


def submission_facts(body: Any) -> dict[str, Any]:
    """The appeal body's facts as ``appeals.v1.SubmissionFacts`` in protobuf's JSON mapping: what
    intake passes on to routing (no user id, contact, statement or attachments)."""
    if not isinstance(body, dict):
        raise NotAnAppealError("not an appeal body: a JSON object is expected")
    platform = body.get("platform")
    if platform not in vocabulary.PLATFORMS:
        raise NotAnAppealError(f"platform: must be one of {_choices(vocabulary.PLATFORMS)}")
    appellant = body.get("appellant") or {}
    role = appellant.get("role", "affected_user")
    if role not in vocabulary.APPELLANT_ROLES:
        raise NotAnAppealError(
            f"appellant.role: must be one of {_choices(vocabulary.APPELLANT_ROLES)}"
        )
    subject = body.get("subject") or {}
    kind = subject.get("kind")
    if kind not in vocabulary.SUBJECT_KINDS:
        raise NotAnAppealError(f"subject.kind: must be one of {_choices(vocabulary.SUBJECT_KINDS)}")
    decision = body.get("decision") or {}
    signals = body.get("signals") or {}
    facts: dict[str, Any] = {
        "platform": vocabulary.PLATFORMS[platform],
        "locale": body.get("locale", ""),
        "country": body.get("country", ""),
        "appellantRole": vocabulary.APPELLANT_ROLES[role],
        "subject": {
            "kind": vocabulary.SUBJECT_KINDS[kind],
            "id": str(subject.get("id", "")),
            "contentHash": subject.get("content_hash", ""),
            "contentDate": subject.get("content_date") or "",
        },
        "decision": {
            "id": decision.get("id", ""),
            "policy": decision.get("policy", ""),
            "action": decision.get("action", ""),
            "automated": bool(decision.get("automated", False)),
            "nonAppealableReason": decision.get("non_appealable_reason", ""),
            "decidedBy": decision.get("decided_by", ""),
        },
        "signals": {
            "accountReach": str(signals.get("account_reach", 0)),
            "vulnerableUser": bool(signals.get("vulnerable_user", False)),
        },
    }
    for name, field in (("decided_at", "decidedAt"), ("notified_at", "notifiedAt")):
        if decision.get(name):
            facts["decision"][field] = moment(str(decision[name]))
    if signals.get("legal_deadline"):
        facts["signals"]["legalDeadline"] = moment(str(signals["legal_deadline"]))
    return facts


def _choices(names: dict[str, int]) -> str:
    return ", ".join(sorted(names))


def render(explained: dict[str, Any]) -> str:
    rule = explained["rule"]
    checked = explained["rules_checked"]
    if not explained["rule_matched"]:
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

"""`appeals`: the command line of the appeals pipeline.

  appeals submit [--file appeal.json | flags]    submit an appeal over REST
  appeals status APPEAL_ID                       show an appeal and its status
  appeals erase --platform P --user-id U         forget an appellant (GDPR Art. 17)
  appeals agent NAME --languages en,de [--auto] [--count N]   review cases from the agent desk
  appeals token surface PLATFORM | agent NAME | ops | service NAME | auditor
                                                 mint a local dev token (last line)
  appeals demo                                   appeals from all four products + reviewers,
                                                 and locked-out people chatting with them
  appeals route --explain appeal.json            how the routing policy places an appeal, why
  appeals audit verify | proof | check-proof | export | report | reconcile | ...

Tokens are minted with the local dev key that `make run` creates (LOCAL USE ONLY).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from appeals import vocabulary
from appeals_cli import audit, chatters, demo, reviewer, route, tokens

DEFAULT_INTAKE_URL = os.environ.get("APPEALS_INTAKE_URL", "http://127.0.0.1:8080")
DEFAULT_DESK = os.environ.get("APPEALS_AGENT_DESK", "127.0.0.1:50052")
DEFAULT_HELP_URL = os.environ.get("APPEALS_HELP_URL", "http://127.0.0.1:8085")


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _submit(args: argparse.Namespace) -> int:
    if args.file:
        body = json.loads(Path(args.file).read_text())
    else:
        body = {
            "platform": args.platform,
            "appellant": {"user_id": args.user},
            "subject": {"kind": args.kind, "id": args.subject_id},
            "decision": {
                "id": args.decision_id,
                "policy": args.policy,
                "action": args.action,
                "automated": args.automated,
                "decided_at": args.decided_at or datetime.now(UTC).isoformat(),
                "decided_by": args.decided_by,
            },
            "statement": args.statement,
            "locale": args.locale,
            "country": args.country,
        }
    token = args.token or tokens.surface_token(body.get("platform", "facebook"))
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": args.idempotency_key}
    response = httpx.post(f"{args.url}/v1/appeals", json=body, headers=headers, timeout=15)
    _print_json(response.json())
    return 0 if response.is_success else 1


def _status(args: argparse.Namespace) -> int:
    token = args.token or tokens.ops_token()
    response = httpx.get(
        f"{args.url}/v1/appeals/{args.appeal_id}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    _print_json(response.json())
    return 0 if response.is_success else 1


def _erase(args: argparse.Namespace) -> int:
    """Forget an appellant at intake, as their platform's surface relays their request."""
    token = args.token or tokens.surface_token(args.platform)
    response = httpx.post(
        f"{args.url}/v1/erasures",
        json={"platform": args.platform, "user_id": args.user_id},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    _print_json(response.json())
    return 0 if response.is_success else 1


def _agent(args: argparse.Namespace) -> int:
    queues = args.queues.split(",") if args.queues else None
    # --auto decides by the demo rule: an automated assistant, never counted as human review.
    token = args.token or tokens.agent_token(args.name, queues, assistant=args.auto)
    profile = reviewer.skills_profile(
        _listed(args.languages),
        platforms=_listed(args.platforms),
        policy_areas=_listed(args.policy_areas),
        seniority=args.seniority,
        capacity=args.capacity,
    )
    decided = asyncio.run(
        reviewer.review(args.desk, token, auto=args.auto, count=args.count, profile=profile)
    )
    print(f"{args.name} decided {decided} case(s)")
    return 0


def _listed(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _token(args: argparse.Namespace) -> int:
    if args.role == "surface":
        token = tokens.surface_token(args.name)
    elif args.role == "agent":
        token = tokens.agent_token(args.name, args.queues.split(",") if args.queues else None)
    elif args.role == "service":
        token = tokens.service_token(args.name or "ops-tooling")
    elif args.role == "referral_body":
        token = tokens.referral_body_token(args.name)
    elif args.role == "auditor":
        token = tokens.auditor_token(args.name or "auditor")
    else:
        token = tokens.ops_token(args.name or "ops")
    print(
        f"# local dev {args.role} token (valid 12 h, for this checkout's pipeline only)",
        file=sys.stderr,
    )
    print(token)
    return 0


def _demo(args: argparse.Namespace) -> int:
    chats = chatters.ChatOptions(
        count=args.chats, every_s=args.chat_every, help_url=args.help_url,
        accounts=tuple(_listed(args.chat_accounts or "")),
    )  # fmt: skip
    try:
        if chats.count > 0:
            chatters.chosen_accounts(chatters.sample_accounts(chats.accounts_file), chats.accounts)
    except (OSError, ValueError) as error:
        raise SystemExit(f"appeals demo: the chats' sample accounts: {error}") from error
    asyncio.run(
        demo.run_demo(
            args.url, args.desk, appeals=args.appeals, reviewers=args.reviewers, rate=args.rate,
            seed=args.seed, chats=chats if args.chats > 0 else None,
        )
    )  # fmt: skip
    return 0


def _token_parser(commands: Any) -> None:
    token = commands.add_parser(
        "token", help="mint a local dev token (printed alone on the last line)"
    )
    token.add_argument(
        "role", choices=["surface", "agent", "ops", "service", "referral_body", "auditor"]
    )
    token.add_argument(
        "name",
        nargs="?",
        help="platform (surface), reviewer id (agent), operator or auditor id, internal service "
        "name, or the body a referral_body token speaks for (oversight_board, ods:<id>)",
    )
    token.add_argument("--queues", help="agent only: comma-separated queues (default: all)")
    token.set_defaults(handler=_token)


def _erase_parser(commands: Any) -> argparse.ArgumentParser:
    erase: argparse.ArgumentParser = commands.add_parser(
        "erase", help="forget an appellant: erase their particulars on every appeal (GDPR Art. 17)"
    )
    erase.add_argument("--platform", required=True, choices=sorted(vocabulary.PLATFORMS))
    erase.add_argument("--user-id", required=True, help="the appellant's user id on the platform")
    erase.set_defaults(handler=_erase)
    return erase


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="appeals", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    submit = commands.add_parser("submit", help="submit an appeal over REST")
    submit.add_argument("--file", help="JSON body (see README); flags are ignored when given")
    submit.add_argument("--platform", choices=vocabulary.PLATFORMS, default="instagram")
    submit.add_argument("--user", default="17841400000000001", help="appellant's platform user id")
    submit.add_argument(
        "--kind", default="post", help="what was actioned: post, account, avatar, ..."
    )
    submit.add_argument("--subject-id", default="3141592653589793")
    submit.add_argument("--decision-id", default=f"dec-{uuid.uuid4().hex[:6]}")
    submit.add_argument("--policy", default="hate_speech")
    submit.add_argument("--action", default="removed")
    submit.add_argument("--automated", action=argparse.BooleanOptionalAction, default=True)
    submit.add_argument(
        "--decided-by", default="classifier:hate-speech-v7",
        help="who made the original decision (a reviewer id or a classifier name)",
    )  # fmt: skip
    submit.add_argument(
        "--decided-at", help="RFC 3339 time of the original decision (default: now)"
    )
    submit.add_argument(
        "--statement", default="This was a quote from a news article, not hate speech."
    )
    submit.add_argument("--locale", default="en-US")
    submit.add_argument("--country", default="US")
    submit.add_argument("--idempotency-key", default=uuid.uuid4().hex)
    submit.set_defaults(handler=_submit)

    status = commands.add_parser("status", help="show an appeal and its status")
    status.add_argument("appeal_id")
    status.set_defaults(handler=_status)

    erase = _erase_parser(commands)
    agent = commands.add_parser("agent", help="review cases from the agent desk")
    agent.add_argument("name", help="the reviewer's id")
    agent.add_argument("--auto", action="store_true", help="decide by the demo rule, no prompts")
    agent.add_argument("--count", type=int, help="stop after deciding this many cases")
    agent.add_argument("--queues", help="comma-separated queues the reviewer works (default: all)")
    agent.add_argument(
        "--languages", required=True,
        help="comma-separated languages the reviewer reads (ISO 639-1, e.g. en,de): the desk "
        "offers only cases in them",
    )  # fmt: skip
    agent.add_argument("--platforms", default="*", help="comma-separated platforms (default: any)")
    agent.add_argument(
        "--policy-areas", default="*", help="comma-separated policy areas (default: any)"
    )
    agent.add_argument(
        "--seniority",
        default="experienced",
        help="junior, experienced or senior (default: experienced)",
    )
    agent.add_argument("--capacity", type=int, default=1, help="cases worked at once (default: 1)")
    agent.set_defaults(handler=_agent)

    _token_parser(commands)

    run_demo = commands.add_parser(
        "demo", help="appeals from all four products and simulated reviewers"
    )
    run_demo.add_argument("--appeals", type=int, default=12)
    run_demo.add_argument("--reviewers", type=int, default=3)
    run_demo.add_argument("--rate", type=float, default=3.0, help="appeals per second")
    run_demo.add_argument("--seed", type=int)
    run_demo.add_argument(
        "--chats", type=int, default=4,
        help="locked-out people (live help's DEV-ONLY sample accounts) who verify with a code "
        "and chat with the reviewers (default: 4; 0: none). Live help allows about one code per "
        "account every 12 minutes; a chat it refuses is skipped, and said so",
    )  # fmt: skip
    run_demo.add_argument(
        "--chat-every", type=float, default=15.0, metavar="SECONDS",
        help="seconds between two people opening a chat (default: 15)",
    )  # fmt: skip
    run_demo.add_argument(
        "--chat-accounts", metavar="NAMES",
        help="comma-separated sample accounts who chat, by handle, phone, email or user id "
        "(default: all of services/help/dev_accounts.yaml, in turn)",
    )  # fmt: skip
    run_demo.add_argument(
        "--help-url", default=DEFAULT_HELP_URL,
        help="live help base URL (the codes are read from notifications' DEV-ONLY records in "
        "the store at MONGODB_URL, database MONGODB_DATABASE, as the services find it)",
    )  # fmt: skip
    run_demo.set_defaults(handler=_demo)

    audit.add_parser(commands)  # appeals audit verify | proof | check-proof | export | ...

    route.add_parser(commands)  # appeals route --explain FILE

    for sub in (submit, status, erase, agent, run_demo):
        sub.add_argument("--token", help="bearer token (default: a local dev token)")
    for sub in (submit, status, erase, run_demo):
        sub.add_argument("--url", default=DEFAULT_INTAKE_URL, help="intake base URL")
    for sub in (agent, run_demo):
        sub.add_argument("--desk", default=DEFAULT_DESK, help="agent desk gRPC host:port")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (
        args.command == "token"
        and args.role in ("surface", "agent", "referral_body")
        and not args.name
    ):
        what = {"surface": "platform", "agent": "reviewer", "referral_body": "body"}[args.role]
        raise SystemExit(f"appeals token {args.role}: name the {what}")
    try:
        return int(args.handler(args))
    except httpx.HTTPError as error:
        raise SystemExit(
            f"cannot reach intake: {error}. Is the pipeline running (make run)?"
        ) from error


if __name__ == "__main__":
    sys.exit(main())

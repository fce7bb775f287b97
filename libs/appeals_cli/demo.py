"""`appeals demo`: a realistic stream of appeals from all four products and a small simulated
reviewer team, so a fresh `make run` shows the pipeline moving end to end.

The simulated reviewers register their skills, renew their claims while they work, and do what
reviewers do, by a fixed rule per kind of case (:func:`demo_choice`): most cases are upheld or
overturned (the demo rule of ``appeals agent --auto``), bullying cases are partially overturned,
harassment in VR goes up to a senior reviewer, a group said to document events moves to the
specialists' queue, and an impersonation case asks the appellant for proof, which the demo then
answers as the person would, through intake.

Alongside, every so often a locked-out person from live help's DEVELOPMENT-ONLY sample accounts
verifies with a code and chats with the same reviewers, who take chats on the desk too
(:mod:`appeals_cli.chatters` for the person, :mod:`appeals_cli.chat_agent` for the agent)."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from appeals import vocabulary
from appeals.v1 import agent_desk_pb2, appeal_pb2
from appeals_cli import chat_agent, chatters, reviewer, tokens

_DECIDED = re.compile(r"decided (ap_\w+): (\w+)")
_ASKED = re.compile(r"asked the appellant of (ap_\w+)")
# How long the simulated person takes to answer a request for information.
ANSWER_AFTER_S = 2.0


@dataclass(frozen=True)
class Sample:
    platform: str
    kind: str
    policy: str
    action: str
    automated: bool
    locale: str
    country: str
    statement: str


SAMPLES = (
    Sample("instagram", "post", "hate_speech", "removed", True, "de-DE", "DE",
           "Das war ein Zitat aus einem news-Artikel, keine Hassrede."),
    Sample("facebook", "account", "fake_account", "disabled", True, "en-US", "US",
           "This is my real account; I have used it for twelve years. It was a mistake."),
    Sample("whatsapp", "account", "spam", "banned", True, "pt-BR", "BR",
           "Eu só mando mensagens para a minha família e para o grupo da escola."),
    Sample("horizon", "avatar", "harassment", "restricted", False, "en-GB", "GB",
           "My avatar was restricted after a joke between friends in our own world."),
    Sample("instagram", "reel", "violence", "removed", True, "es-ES", "ES",
           "Es un clip de news sobre la guerra, para informar."),
    Sample("facebook", "post", "misinformation", "removed", False, "fr-FR", "FR",
           "C'est de la satire, clairement indiquée comme telle."),
    Sample("horizon", "vr_world", "sexual_content", "removed", True, "en-US", "US",
           "The world is a museum of classical sculpture."),
    Sample("whatsapp", "message", "spam", "removed", True, "hi-IN", "IN",
           "मैंने केवल अपने परिवार को संदेश भेजा था।"),
    Sample("facebook", "group", "dangerous_organizations", "removed", True, "ar-EG", "EG",
           "مجموعتنا لتوثيق الأحداث وليست لدعم أي منظمة."),
    Sample("instagram", "story", "bullying", "removed", True, "id-ID", "ID",
           "Itu hanya candaan dengan teman sekelas saya."),
    Sample("instagram", "comment", "hate_speech", "removed", True, "en-IE", "IE",
           "I was quoting the slur to condemn it, not using it."),
    Sample("facebook", "page", "impersonation", "disabled", False, "it-IT", "IT",
           "Sono il titolare del ristorante; la pagina è nostra."),
)  # fmt: skip

# The demo's reviewers register as readers of exactly the samples' languages, senior (so the
# escalation queues are worked too): the desk checks the mandatory language skill for them as
# for anyone, and a case in another language waits for a reviewer who reads it.
DEMO_REVIEWER = reviewer.skills_profile(
    sorted({sample.locale.split("-")[0] for sample in SAMPLES}), seniority="senior", capacity=1
)


def demo_choice(case: agent_desk_pb2.CaseOffer) -> reviewer.Choice:
    """What a demo reviewer does with a claimed case. Every path ends in a decision: a case
    escalated, transferred or answered is decided by whoever claims it next."""
    policy = case.facts.decision.policy
    if policy == "impersonation" and not case.information:
        return reviewer.AskAppellant("Please send a document that shows you run the restaurant.")
    if policy == "harassment" and not case.queue.startswith("senior."):
        return reviewer.Escalation(
            agent_desk_pb2.ESCALATION_TARGET_SENIOR,
            "A joke between friends or harassment: the context needs a senior reviewer's call.",
        )
    platform, *area, language = case.queue.split(".")
    if policy == "dangerous_organizations" and len(area) == 1:  # a standard queue
        return reviewer.Transfer(
            f"{platform}.specialist.{area[0]}.{language}",
            "Documentation of events: a specialist in this area should decide.",
        )
    if policy == "bullying":
        return reviewer.Verdict(
            appeal_pb2.OUTCOME_PARTIALLY_OVERTURNED,
            "The story may stay up; the classmate's name in it is removed.",
            policy,
            reviewer.case_facts(case) + " Part of it names a minor; the rest is allowed.",
        )
    return reviewer.automatic_verdict(case)


def choice_with_chats(
    chats: chat_agent.ChatBoard,
) -> Callable[[agent_desk_pb2.CaseOffer], reviewer.Choice]:
    """The demo reviewers' rule, and a chat's appeal held until its chat reached the decision,
    then decided by the chat rule (:func:`appeals_cli.chat_agent.chat_verdict`)."""

    def choose(case: agent_desk_pb2.CaseOffer) -> reviewer.Choice:
        if chats.from_a_chat(case):
            return chats.verdict_after_chat(case)
        return demo_choice(case)

    return choose


async def answer_later(intake_url: str, appeal_id: str, platform: str) -> None:
    """The simulated person answers a reviewer's request for information, a moment later."""
    await asyncio.sleep(ANSWER_AFTER_S)
    async with httpx.AsyncClient(base_url=intake_url, timeout=15) as client:
        licence = {
            "media_type": "application/pdf",
            "size_bytes": 48213,
            "uri": f"https://cdn.example/demo/{appeal_id}/licence.pdf",
        }
        response = await client.post(
            f"/v1/appeals/{appeal_id}/information",
            json={
                "answer": "Attached: the restaurant's trade licence in my name.",
                "attachments": [licence],
            },
            headers={"Authorization": f"Bearer {tokens.surface_token(platform)}"},
        )
    print(f"appellant of {appeal_id} answered: {response.status_code}", flush=True)


def appeal_body(sample: Sample, rng: random.Random) -> dict[str, Any]:
    decided_at = datetime.now(UTC) - timedelta(hours=rng.randint(1, 240))
    return {
        "platform": sample.platform,
        "appellant": {"user_id": str(rng.randint(10**15, 10**17))},
        "subject": {"kind": sample.kind, "id": str(rng.randint(10**15, 10**18))},
        "decision": {
            "id": f"dec-{uuid.uuid4().hex[:8]}",
            "policy": sample.policy,
            "action": sample.action,
            "automated": sample.automated,
            "decided_at": decided_at.isoformat(),
            # Never one of the demo's reviewers: they may not review their own decisions.
            "decided_by": f"classifier:{sample.policy}" if sample.automated else "moderator-7",
        },
        "statement": sample.statement,
        "locale": sample.locale,
        "country": sample.country,
    }


async def _submit_all(
    intake_url: str, count: int, rate: float, seed: int | None, platforms: dict[str, str]
) -> list[tuple[str, str]]:
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    submitted = []
    surface_tokens = {p: tokens.surface_token(p) for p in vocabulary.PLATFORMS}
    async with httpx.AsyncClient(base_url=intake_url, timeout=15) as client:
        for sample in itertools.islice(itertools.cycle(SAMPLES), count):
            response = await client.post(
                "/v1/appeals",
                json=appeal_body(sample, rng),
                headers={
                    "Authorization": f"Bearer {surface_tokens[sample.platform]}",
                    "Idempotency-Key": uuid.uuid4().hex,
                },
            )
            response.raise_for_status()
            appeal_id = response.json()["appeal_id"]
            submitted.append((appeal_id, sample.platform))
            platforms[appeal_id] = sample.platform
            print(
                f"submitted {appeal_id}  {sample.platform} {sample.kind} ({sample.policy})",
                flush=True,
            )
            await asyncio.sleep(1 / rate)
    return submitted


async def run_demo(
    intake_url: str,
    desk_target: str,
    *,
    appeals: int,
    reviewers: int,
    rate: float,
    seed: int | None = None,
    chats: chatters.ChatOptions | None = None,
) -> None:
    team = [f"reviewer-{i + 1}" for i in range(reviewers)]
    # The reviewers work every open case (earlier runs may have left some), and with ``chats``
    # every chat offered to them; the demo ends when each appeal it submitted is decided and
    # each chat it opened has ended.
    decided: set[str] = set()
    ours: set[str] = set()
    platforms: dict[str, str] = {}
    answers: list[asyncio.Task[None]] = []
    done = asyncio.Event()
    # What the reviewers' case and chat sides share (which appeals come from chats).
    chat_board = chat_agent.ChatBoard(
        (a.platform, a.user_id) for a in chatters.sample_accounts(chats.accounts_file)
    ) if chats is not None and chats.count > 0 else chat_agent.ChatBoard()  # fmt: skip

    def check_done() -> None:
        if len(ours) == appeals and ours <= decided:
            done.set()

    def count(line: str) -> None:
        found = _DECIDED.search(line)
        if found:
            decided.add(found.group(1))
            chat_board.decided(found.group(1), found.group(2))
        asked = _ASKED.search(line)
        if asked and asked.group(1) in platforms:  # one of ours (not an earlier run's)
            appeal_id = asked.group(1)
            answers.append(
                asyncio.create_task(answer_later(intake_url, appeal_id, platforms[appeal_id]))
            )
        print(line, flush=True)
        check_done()

    def reporter(name: str) -> Callable[[str], None]:
        return lambda line: count(f"{name}: {line}")

    workers = [
        asyncio.create_task(
            reviewer.review(desk_target, tokens.agent_token(name, assistant=True), auto=False,
                            ask=choice_with_chats(chat_board), count=None, say=reporter(name),
                            pause_s=0.3, profile=DEMO_REVIEWER)
        )
        for name in team
    ]  # fmt: skip
    no_chats = asyncio.Event()  # the desk takes no chats: the people stop asking
    chatting: list[asyncio.Task[None]] = []
    people: asyncio.Task[list[chatters.ChatResult]] | None = None

    def agents_take_chats() -> None:  # once live help answers: the chats are on
        chatting.extend(
            asyncio.create_task(
                _agent_takes_chats(desk_target, name, chat_board, reporter(name), no_chats)
            )
            for name in team
        )

    if chats is not None and chats.count > 0:
        people = asyncio.create_task(
            chatters.run_chats(chats, say=count, reachable=agents_take_chats, opened=chat_board.on)
        )
    chatted: list[chatters.ChatResult] = []
    try:
        submitted = await _submit_all(intake_url, appeals, rate, seed, platforms)
        ours.update(appeal_id for appeal_id, _ in submitted)
        check_done()
        try:
            await asyncio.wait_for(done.wait(), timeout=60 + appeals * 2)
        except TimeoutError:
            print(f"only {len(ours & decided)} of {appeals} decided in time; is routing running?")
        if people is not None:
            chatted = await _chats_ended(people, no_chats)
            await chat_board.put_down(10.0)  # the agents' last words (closing the chats)
    finally:
        chat_board.close()  # no reviewer waits for a chat any longer
        for task in [*workers, *answers, *chatting]:
            task.cancel()
        await asyncio.gather(*workers, *answers, *chatting, return_exceptions=True)
    await asyncio.sleep(1.0)  # let the last decisions reach intake's status view
    await _print_tables(intake_url, submitted, chatted)


async def _print_tables(
    intake_url: str, submitted: list[tuple[str, str]], chatted: list[chatters.ChatResult]
) -> None:
    headers = {"Authorization": f"Bearer {tokens.ops_token()}"}
    async with httpx.AsyncClient(base_url=intake_url, timeout=10, headers=headers) as client:
        print("\nappeal                          platform   status     outcome")
        for appeal_id, platform in submitted:
            view = (await client.get(f"/v1/appeals/{appeal_id}")).json()
            print(f"{appeal_id}  {platform:<10} {view['status']:<10} {view.get('outcome') or ''}")
    if chatted:
        print("\n".join(chatters.chat_table(chatted)))


async def _chats_ended(
    people: asyncio.Task[list[chatters.ChatResult]], no_chats: asyncio.Event
) -> list[chatters.ChatResult]:
    """The chats' results once every one ended, or none once the desk turned out to take no
    chats (the people's open chats are then closed by them)."""
    refused = asyncio.create_task(no_chats.wait())
    await asyncio.wait({people, refused}, return_when=asyncio.FIRST_COMPLETED)
    refused.cancel()
    if not people.done():
        people.cancel()
    (ended,) = await asyncio.gather(people, return_exceptions=True)
    if isinstance(ended, list):
        return ended
    if not isinstance(ended, asyncio.CancelledError):
        print(f"the chats stopped: {ended!r}; the appeals go on")
    return []


async def _agent_takes_chats(
    desk_target: str,
    name: str,
    chat_board: chat_agent.ChatBoard,
    say: Callable[[str], None],
    no_chats: asyncio.Event,
) -> None:
    """One reviewer on the chat side of the desk, with its own token; the desk's "no chats
    here" is said once, however many agents heard it."""
    token = tokens.agent_token(name, assistant=True)
    try:
        await chat_agent.serve_chats(
            desk_target, token, name, chat_board, profile=DEMO_REVIEWER, say=say
        )
    except chat_agent.ChatsUnavailable as why:
        if not no_chats.is_set():
            no_chats.set()
            print(f"no chats in this demo: the agent desk takes none ({why}); the appeals go on")

"""`appeals demo`'s chats: which sample accounts chat about what, what people and agents write in
each language, the demo rule for a chat's appeal, and how the reviewers' case side waits for a
chat to reach the decision."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from appeals.v1 import agent_desk_pb2, appeal_pb2, chat_pb2
from appeals_cli import chat_agent, chatters
from appeals_cli.main import build_parser
from appeals_cli.reviewer import Verdict
from appeals_devstack.processes import free_port


def account(name: str, *, appealable: bool = True, language: str = "en") -> chatters.SampleAccount:
    return chatters.SampleAccount("instagram", f"ig-{name}", name, language, appealable)


def test_the_sample_accounts_are_read_as_a_locked_out_person_names_them() -> None:
    accounts = chatters.sample_accounts()
    assert [(a.label, a.language, a.appealable) for a in accounts] == [
        ("lena.k@instagram", "de", True),
        ("amara.okafor@facebook", "en", True),
        ("+5511955500002@whatsapp", "pt", True),
        ("noor_vr@horizon", "ar", True),
        ("sofia.ruiz@facebook", "es", True),
    ]
    # Named by handle, phone, email or user id, however the @ and case are typed.
    found = chatters.chosen_accounts(accounts, ["wa-dev-rafael", "@Lena.K", "noor@example.org"])
    assert [a.user_id for a in found] == ["wa-dev-rafael", "ig-dev-lena", "hz-dev-noor"]
    assert chatters.chosen_accounts(accounts, []) == accounts
    with pytest.raises(ValueError, match=r"no sample account 'nobody' \(there are lena.k, "):
        chatters.chosen_accounts(accounts, ["nobody"])


def test_accounts_help_cannot_name_are_left_out_and_those_without_a_decision_get_feature_help(
    tmp_path: Path,
) -> None:
    path = tmp_path / "accounts.yaml"
    path.write_text(
        "accounts:\n"
        "  - {platform: facebook, user_id: fb-1, email: a@example.org, locale: fr-FR}\n"
        "  - {platform: horizon, user_id: hz-1, locale: en-US}\n"
    )
    (only,) = chatters.sample_accounts(path)
    assert (only.name, only.language, only.appealable) == ("a@example.org", "fr", False)
    assert [c.topic for c in chatters.chat_plan([only], 2)] == ["feature_help"] * 2


def test_the_plan_takes_the_accounts_in_turn_and_every_fourth_chat_is_about_a_feature() -> None:
    lena, amara = account("lena"), account("amara")
    plan = chatters.chat_plan([lena, amara], 8)
    assert [p.account for p in plan] == [lena, amara] * 4
    assert [p.topic for p in plan] == (["account_access"] * 3 + ["feature_help"]) * 2
    assert chatters.chat_plan([], 3) == []
    assert chatters.chat_plan([lena], 0) == []


@pytest.mark.parametrize("topic", ["account_access", "feature_help"])
def test_people_and_agents_write_in_each_sample_accounts_language(topic: str) -> None:
    english = {
        "first": chatters.words(chatters.FIRST_WORDS, topic, "en", feature="Reels"),
        "reply": chatters.words(chatters.REPLIES, topic, "en"),
        "greeting": chat_agent.agent_says(chat_agent.GREETINGS, topic, "en", "reviewer-1"),
    }
    for sample in chatters.sample_accounts():
        said = {
            "first": chatters.words(chatters.FIRST_WORDS, topic, sample.language, feature="Reels"),
            "reply": chatters.words(chatters.REPLIES, topic, sample.language),
            "greeting": chat_agent.agent_says(
                chat_agent.GREETINGS, topic, sample.language, "reviewer-1"
            ),
        }
        if sample.language != "en":
            assert all(said[k] != english[k] for k in said), (sample.language, said)
        assert "reviewer-1" in said["greeting"]
        if topic == "feature_help":
            assert "Reels" in said["first"]
    # A language without texts: English.
    assert chatters.words(chatters.REPLIES, topic, "sw") == english["reply"]


def test_every_resolution_has_closing_words_in_every_language() -> None:
    languages = set(chat_agent.GREETINGS["account_access"])
    for code in {*chat_agent.RESOLUTIONS.values(), chat_agent.IN_REVIEW, chat_agent.EXPLAINED}:
        assert set(chat_agent.CLOSING[code]) == languages, code
    assert {*chatters.FIRST_WORDS["account_access"]} == languages


def chat_case(policy: str, *, automated: bool, appeal_id: str = "ap_1") -> agent_desk_pb2.CaseOffer:
    case = agent_desk_pb2.CaseOffer(appeal_id=appeal_id, queue="whatsapp.integrity.pt")
    case.facts.platform = appeal_pb2.PLATFORM_WHATSAPP
    case.facts.subject.kind = appeal_pb2.SUBJECT_KIND_ACCOUNT
    case.facts.subject.id = "wa-dev-rafael"
    case.facts.decision.policy = policy
    case.facts.decision.action = "account_banned"
    case.facts.decision.automated = automated
    return case


def test_the_chat_rule_restores_access_after_a_lock_or_a_machine_decision_only() -> None:
    restored = chat_agent.chat_verdict(chat_case("spam", automated=True), "ch_1")
    assert (restored.outcome, restored.policy_cited) == (appeal_pb2.OUTCOME_OVERTURNED, "spam")
    assert "live chat ch_1" in restored.facts and "one-time code" in restored.facts
    assert restored.facts.startswith("The whatsapp account was account_banned automatically")
    locked = chat_agent.chat_verdict(chat_case("compromised_account", automated=False), "ch_2")
    assert locked.outcome == appeal_pb2.OUTCOME_OVERTURNED
    upheld = chat_agent.chat_verdict(chat_case("harassment", automated=False), "")
    assert upheld.outcome == appeal_pb2.OUTCOME_UPHELD
    assert "with live help" in upheld.facts
    assert [chat_agent.resolution(o) for o in ("overturned", "upheld", None)] == [
        "access_restored",
        "upheld",
        "appeal_in_review",
    ]


def in_a_reviewer_thread(
    board: chat_agent.ChatBoard, case: agent_desk_pb2.CaseOffer
) -> tuple[threading.Thread, list[Verdict]]:
    given: list[Verdict] = []
    thread = threading.Thread(target=lambda: given.append(board.verdict_after_chat(case)))
    thread.start()
    return thread, given


def test_a_reviewer_holding_a_chats_appeal_decides_once_the_chat_reached_the_decision() -> None:
    board = chat_agent.ChatBoard([("whatsapp", "wa-dev-rafael")], wait_s=30, unknown_wait_s=30)
    case = chat_case("spam", automated=True)
    other = chat_case("spam", automated=True, appeal_id="ap_2")
    other.facts.subject.id = "someone-else"
    assert board.from_a_chat(case) and not board.from_a_chat(other)
    thread, given = in_a_reviewer_thread(board, case)
    board.note("ap_1", "ch_9")  # the chat turns up after the case was claimed
    thread.join(0.2)
    assert thread.is_alive() and board.held_by_a_reviewer("ap_1")
    board.ready("ap_1")
    thread.join(5)
    assert not thread.is_alive()
    assert given[0].outcome == appeal_pb2.OUTCOME_OVERTURNED and "ch_9" in given[0].facts
    board.note("ap_2", "ch_10")
    assert board.from_a_chat(other)  # known by its chat


def test_an_appeal_whose_chat_never_turns_up_or_a_demo_that_ends_keeps_nobody_waiting() -> None:
    board = chat_agent.ChatBoard([("whatsapp", "wa-dev-rafael")], wait_s=30, unknown_wait_s=0.1)
    thread, given = in_a_reviewer_thread(board, chat_case("spam", automated=True))
    thread.join(5)
    assert not thread.is_alive() and "with live help" in given[0].facts

    board = chat_agent.ChatBoard(wait_s=30, unknown_wait_s=30)
    board.note("ap_1", "ch_1")
    thread, given = in_a_reviewer_thread(board, chat_case("spam", automated=True))
    thread.join(0.2)
    assert thread.is_alive()
    board.close()
    thread.join(5)
    assert not thread.is_alive() and given


async def test_an_agent_hears_of_a_colleagues_decision() -> None:
    board = chat_agent.ChatBoard()
    assert await board.outcome("ap_1", 0.01) is None
    board.decided("ap_1", "upheld")
    assert await board.outcome("ap_1", 1) == "upheld"
    with board.in_hand("ch_1"):
        with board.in_hand("ch_2"):
            pass
        assert not await board.put_down(0.01)  # an agent still works on ch_1
    assert await board.put_down(1)


def test_the_demo_has_chats_by_default_and_they_can_be_turned_off() -> None:
    parser = build_parser()
    default = parser.parse_args(["demo"])
    assert (default.chats, default.chat_every, default.chat_accounts) == (4, 15.0, None)
    off = parser.parse_args(["demo", "--chats", "0", "--chat-accounts", "lena.k,noor_vr"])
    assert off.chats == 0 and off.chat_accounts == "lena.k,noor_vr"


async def test_live_help_out_of_reach_is_said_in_one_line_and_nothing_is_tried() -> None:
    said: list[str] = []
    options = chatters.ChatOptions(
        count=2, every_s=0, help_url=f"http://127.0.0.1:{free_port()}",
        store_url=f"mongodb://127.0.0.1:{free_port()}/",
    )  # fmt: skip
    assert await chatters.run_chats(options, say=said.append) == []
    assert len(said) == 1 and said[0].startswith("no chats in this demo: live help is not reach")


async def test_a_desk_out_of_reach_takes_no_chats() -> None:
    with pytest.raises(chat_agent.ChatsUnavailable):
        await chat_agent.serve_chats(
            f"127.0.0.1:{free_port()}", "token", "reviewer-1", chat_agent.ChatBoard(),
            profile=agent_desk_pb2.AgentProfile(languages=["en"]),
        )  # fmt: skip


class FakeSession:
    """A ChatSession call: the server's frames as given, then a copy of each message the agent
    sends (as the desk relays the agent's own messages too); the agent's frames are kept."""

    def __init__(
        self,
        frames: AsyncIterator[agent_desk_pb2.ChatClientFrame],
        served: list[agent_desk_pb2.ChatServerFrame],
    ) -> None:
        self.sent: list[agent_desk_pb2.ChatClientFrame] = []
        self._served: asyncio.Queue[agent_desk_pb2.ChatServerFrame] = asyncio.Queue()
        for frame in served:
            self._served.put_nowait(frame)
        self._relay = asyncio.create_task(self._take(frames))

    async def _take(self, frames: AsyncIterator[agent_desk_pb2.ChatClientFrame]) -> None:
        async for frame in frames:
            self.sent.append(frame)
            if frame.HasField("send"):
                party = chat_pb2.CHAT_PARTY_AGENT
                copy = said(party, 10 + len(self.sent), frame.send.text)
                copy.message.client_id = frame.send.client_id
                self._served.put_nowait(copy)

    async def read(self) -> agent_desk_pb2.ChatServerFrame:
        return await self._served.get()

    def cancel(self) -> None:
        self._relay.cancel()


class FakeDesk:
    """The agent desk's chat RPCs and claim/decide, for one account-access chat."""

    def __init__(self, served: list[agent_desk_pb2.ChatServerFrame]) -> None:
        self._served = served
        self.sessions: list[FakeSession] = []
        self.calls: list[object] = []

    async def AcceptChat(self, request: object, metadata: object) -> object:  # noqa: N802
        self.calls.append(request)
        chat = agent_desk_pb2.ChatOffer(
            chat_id="ch_1", platform=appeal_pb2.PLATFORM_WHATSAPP,
            topic=chat_pb2.CHAT_TOPIC_ACCOUNT_ACCESS, language="pt", appeal_id="ap_1",
        )  # fmt: skip
        return agent_desk_pb2.AcceptChatResponse(chat=chat, case_claimed=True)

    def ChatSession(self, frames: Any, metadata: object) -> FakeSession:  # noqa: N802
        self.sessions.append(FakeSession(frames, self._served))
        return self.sessions[-1]

    async def Claim(self, request: object, metadata: object) -> object:  # noqa: N802
        self.calls.append(request)
        return agent_desk_pb2.ClaimResponse(
            appeal_id="ap_1", case=chat_case("spam", automated=True)
        )

    async def Decide(self, request: object, metadata: object) -> object:  # noqa: N802
        self.calls.append(request)
        return agent_desk_pb2.DecideResponse(appeal_id="ap_1")

    async def CloseChat(self, request: object, metadata: object) -> object:  # noqa: N802
        self.calls.append(request)
        return agent_desk_pb2.CloseChatResponse(chat_id="ch_1")


def said(
    party: chat_pb2.ChatParty.ValueType, seq: int, text: str
) -> agent_desk_pb2.ChatServerFrame:
    return agent_desk_pb2.ChatServerFrame(
        message=chat_pb2.ChatMessage(chat_id="ch_1", seq=seq, party=party, text=text)
    )


async def test_an_agent_answers_decides_the_appeal_and_closes_in_the_persons_language() -> None:
    person, system = chat_pb2.CHAT_PARTY_PERSON, chat_pb2.CHAT_PARTY_SYSTEM
    desk = FakeDesk([
        said(person, 1, "Olá"), said(system, 2, "An agent joined the chat."),
        agent_desk_pb2.ChatServerFrame(receipts=chat_pb2.ChatReceipts(person_read=3)),
        said(person, 4, "Sim, são meus."),
    ])  # fmt: skip
    board = chat_agent.ChatBoard()
    lines: list[str] = []
    agent = chat_agent.ChatAgent(
        desk, "token", "reviewer-1", board, say=lines.append,  # type: ignore[arg-type]
        pace=chat_agent.AgentPace(pause_s=0),
    )  # fmt: skip
    offer = agent_desk_pb2.ChatOffer(chat_id="ch_1", appeal_id="ap_1")
    assert await agent.handle(offer) == "access_restored"

    decide = next(c for c in desk.calls if isinstance(c, agent_desk_pb2.DecideRequest))
    assert (decide.appeal_id, decide.outcome) == ("ap_1", appeal_pb2.OUTCOME_OVERTURNED)
    assert "live chat ch_1" in decide.facts
    close = desk.calls[-1]
    assert isinstance(close, agent_desk_pb2.CloseChatRequest)
    assert close.resolution == "access_restored"
    (session,) = desk.sessions
    texts = [f.send.text for f in session.sent if f.HasField("send")]
    assert texts == [
        chat_agent.agent_says(chat_agent.GREETINGS, "account_access", "pt", "reviewer-1"),
        chat_agent.agent_says(chat_agent.CLOSING, "access_restored", "pt", "reviewer-1"),
    ]
    assert session.sent[0].join.chat_id == "ch_1"
    assert [f.read_up_to for f in session.sent if f.HasField("read_up_to")] == [1, 4]
    assert lines == [
        "accepted chat ch_1  whatsapp account_access (pt) for ap_1",
        "answered chat ch_1",
        "decided ap_1: overturned (chat ch_1)",
        "closed chat ch_1: access_restored",
    ]
    assert await board.outcome("ap_1", 0) == "overturned"

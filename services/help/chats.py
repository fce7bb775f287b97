"""Live-help chats: the person's side (public API) and the agent's side as routing relays it
(internal API). The help service owns every chat, its state and its transcript.

States: ``waiting`` (no agent: after the open or a hand-over) → ``assigned`` (an agent took it)
→ ``closed``. What must happen once is a write-once fact in the store (see
:mod:`services.help.chat_repository`): the first agent to take a chat wins and a second one is
answered 409 ``chat_taken`` however many routing instances offered it; a retried step finds its
fact and does the rest again (system messages and events have fixed ids, so nothing doubles).

Every transition is published to ``help.chats.v1`` (:class:`appeals.v1.chat_pb2.ChatEvent`,
never any text) and acknowledged by the broker before the caller is answered 2xx.

Waiting for updates (long-poll, the WebSocket): an in-process notification per chat, set when
this instance writes a message, receipt or state of that chat, and a re-read by ``_id`` at most
once a second for what another instance wrote. Never a scan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
import unicodedata
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from appeals import topics, vocabulary
from appeals.v1 import chat_pb2
from appeals_runtime import store
from appeals_runtime.errors import (
    Conflict,
    FieldViolation,
    NotFound,
    TooManyRequests,
    TransientError,
    Unprocessable,
    ValidationFailed,
)
from appeals_runtime.kafka.producer import EventProducer
from appeals_runtime.rate_limits import RateLimiter
from services.help import metrics
from services.help.accounts import AccountDirectory
from services.help.chat_repository import ChatRepository, StoredMessage
from services.help.intake_client import IntakeClient
from services.help.service import Keys
from services.help.sessions import HelpSession

log = logging.getLogger(__name__)

WAITING, ASSIGNED, CLOSED = "waiting", "assigned", "closed"
PERSON, AGENT, SYSTEM = "person", "agent", "system"

CHAT_ID_PATTERN = r"^ch_[A-Za-z0-9_-]{16,64}$"
CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
AGENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
LANGUAGE = re.compile(r"^[a-z]{2}$")
# "Typing" is what a side said in the last few seconds.
TYPING_S = 5.0
MAX_WAIT_S = 25.0
# How often a waiting request re-reads what another instance may have written.
REREAD_S = 1.0
# A resent message whose first send has not finished yet: how long to wait for it, and after
# how long the first send is taken to have died (the resend then stores the message itself).
RESEND_WAIT_S = 3.0
ABANDONED_SEND_S = 10.0
# How long an open waits for a concurrent open of the same session to finish.
CONCURRENT_OPEN_WAIT_S = 5.0
# Viewers whose last answer is remembered (to answer long-polls only when something changed).
REMEMBERED_VIEWS = 20_000

JOINED_TEXT = "An agent joined the chat."
HANDED_OVER_TEXT = "The agent handed the chat over; another agent will join shortly."
CLOSED_TEXT = "The chat was closed."


def sanitised(text: str, max_chars: int, field: str = "text") -> str:
    """Plain text: control characters other than newline and tab removed, trimmed, 1 to
    ``max_chars`` characters (never interpreted as HTML anywhere: the page sets textContent)."""
    kept = "".join(c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc").strip()
    if not 1 <= len(kept) <= max_chars:
        raise ValidationFailed([FieldViolation(field, f"1 to {max_chars} characters of text")])
    return kept


class Notifier:
    """Per-chat wake-ups for this instance's waiters (long-polls, sockets)."""

    def __init__(self) -> None:
        self._events: weakref.WeakValueDictionary[str, asyncio.Event] = (
            weakref.WeakValueDictionary()
        )

    def event(self, chat_id: str) -> asyncio.Event:
        """Take this before reading, then wait on it: a write after the read sets it."""
        event = self._events.get(chat_id)
        if event is None:
            event = asyncio.Event()
            self._events[chat_id] = event
        return event

    def notify(self, chat_id: str) -> None:
        event = self._events.pop(chat_id, None)
        if event is not None:
            event.set()


@dataclass(frozen=True)
class Updates:
    body: dict[str, Any]
    # Messages, or receipts / state that changed since this viewer's last answer.
    fresh: bool


class Chats:
    def __init__(
        self,
        repository: ChatRepository,
        directory: AccountDirectory,
        intake: IntakeClient,
        producer: EventProducer,
        keys: Keys,
        limiter: RateLimiter,
        *,
        first_answer_sla: timedelta,
        max_chars: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._repository = repository
        self._directory = directory
        self._intake = intake
        self._producer = producer
        self._keys = keys
        self._limiter = limiter
        self._sla = first_answer_sla
        self.max_chars = max_chars
        self._clock: Callable[[], datetime] = lambda: store.stored_time(clock())
        self._notifier = Notifier()
        self._seen: OrderedDict[tuple[str, str], tuple[Any, ...]] = OrderedDict()

    def person(self, platform: str, user_id: str) -> str:
        return self._keys.digest("person", platform, user_id)

    # --- the person ----------------------------------------------------------------------------

    async def open(
        self,
        session: HelpSession,
        *,
        topic: str,
        language: str,
        message: str | None,
        feature: str | None,
        client: str,
    ) -> tuple[dict[str, Any], bool]:
        """The session's chat: a new one (True), or the one it has open already (False)."""
        violations = []
        if topic not in vocabulary.CHAT_TOPICS:
            violations.append(
                FieldViolation("topic", f"one of {', '.join(vocabulary.CHAT_TOPICS)}")
            )
        if not LANGUAGE.match(language):
            violations.append(FieldViolation("language", "an ISO 639-1 code, e.g. en"))
        if feature is not None and not 1 <= len(feature.strip()) <= 64:
            violations.append(FieldViolation("feature", "1 to 64 characters"))
        if violations:
            raise ValidationFailed(violations)
        text = sanitised(message, self.max_chars, "message") if message is not None else None
        open_now = await self._open_chat(session)
        if open_now is not None:
            return self._state(open_now), False
        wait = self._limiter.acquire(
            [("chat_session", session.session_id), ("chat_address", client)]
        )
        if wait is not None:
            raise TooManyRequests("too many chats opened: try again later", retry_after_s=wait)
        account = None
        if topic == "account_access":
            account = await self._directory.by_user_id(session.platform, session.user_id)
            if account is None or account.decision is None:
                raise Unprocessable(
                    "the platform names no decision on this account that could be appealed: "
                    "ask for feature help instead",
                    code="nothing_to_appeal",
                )
        chat_id = "ch_" + secrets.token_urlsafe(18)
        now = self._clock()
        due = now + self._sla
        if not await self._repository.claim_open(session.session_id, chat_id, now):
            return self._state(await self._concurrent_open(session)), False
        try:
            appeal_id = await self._intake.submit(account, chat_id) if account else ""
            person = self.person(session.platform, session.user_id)
            if appeal_id:
                # Whom to forget when intake erases the appeal (``particulars_erased``).
                await self._repository.link_appeal(appeal_id, person, now)
            chat = {
                "_id": chat_id,
                "state": WAITING,
                "platform": session.platform,
                "topic": topic,
                "language": language,
                "feature": (feature or "").strip(),
                "appeal_id": appeal_id,
                "agent_id": "",
                "offered_to": "",
                "person": person,
                "session_id": session.session_id,
                "requested_at": now,
                "first_answer_due_at": due,
                "first_answer_at": None,
                "closed_at": None,
                "closed_by": "",
                "resolution": "",
                "generation": 0,
                "last_seq": 0,
            }
            await self._repository.insert_chat(chat)
            if text is not None:
                await self._append(chat, PERSON, "first", text, "")
            await self._publish(
                chat,
                chat_pb2.CHAT_EVENT_KIND_REQUESTED,
                f"{chat_id}:requested",
                now,
                first_answer_due_at=due,
                verification_id=session.session_id,
            )
        except BaseException:
            # Nothing half-done stays waiting: the session may open again (intake keeps any
            # appeal it took under this chat id; a new open attaches it as the open appeal).
            await _quietly(self._repository.delete_chat(chat_id))
            await _quietly(self._repository.release_open(session.session_id, chat_id))
            raise
        metrics.opened.add(1, {"topic": topic})
        metrics.WAITING.add(1)
        return self._state(chat), True

    async def _open_chat(self, session: HelpSession) -> store.Document | None:
        """The session's chat that is not closed, if any (a closed one frees the session)."""
        chat_id = await self._repository.open_chat_of(session.session_id)
        if chat_id is None:
            return None
        chat = await self._repository.chat(chat_id)
        if chat is not None and chat["state"] != CLOSED:
            return chat
        if chat is not None:
            await self._repository.release_open(session.session_id, chat_id)
        return None

    async def _concurrent_open(self, session: HelpSession) -> store.Document:
        deadline = time.monotonic() + CONCURRENT_OPEN_WAIT_S
        while time.monotonic() < deadline:
            chat = await self._open_chat(session)
            if chat is not None:
                return chat
            await asyncio.sleep(0.2)
        raise TransientError("another request of this session is opening a chat; try again")

    async def for_person(self, session: HelpSession, chat_id: str) -> dict[str, Any]:
        return self._state(await self._persons_chat(session, chat_id))

    async def person_updates(
        self, session: HelpSession, chat_id: str, after: int, wait_s: float
    ) -> Updates:
        chat = await self._persons_chat(session, chat_id)
        return await self._updates(chat, PERSON, session.session_id, after, wait_s)

    async def person_message(
        self, session: HelpSession, chat_id: str, client_id: str, text: str
    ) -> tuple[dict[str, Any], bool]:
        chat = await self._persons_chat(session, chat_id)
        return await self._post(chat, PERSON, client_id, text, "")

    async def person_receipts(
        self, session: HelpSession, chat_id: str, typing: bool, read_up_to: int | None
    ) -> None:
        chat = await self._persons_chat(session, chat_id)
        await self._receipt(chat, PERSON, typing, read_up_to)

    async def person_close(self, session: HelpSession, chat_id: str) -> dict[str, Any]:
        chat = await self._persons_chat(session, chat_id)
        return await self._close(chat, "", "closed_by_person")

    async def _persons_chat(self, session: HelpSession, chat_id: str) -> store.Document:
        chat = await self._repository.chat(chat_id)
        # Another session's chat is "not found": a session learns nothing of other chats.
        if chat is None or chat["session_id"] != session.session_id:
            raise NotFound("no such chat")
        return chat

    # --- the agent (routing's internal API) ----------------------------------------------------

    async def state(self, chat_id: str) -> dict[str, Any]:
        return self._state(await self._chat(chat_id))

    async def assign(self, chat_id: str, agent_id: str) -> dict[str, Any]:
        _agent(agent_id)
        chat = await self._chat(chat_id)
        if chat["state"] == CLOSED:
            raise Conflict("the chat is closed", code="chat_closed")
        generation = chat["generation"]
        claim_id = f"{chat_id}:a:{generation}"
        now = self._clock()
        won = await self._repository.claim(claim_id, agent_id=agent_id, at=now)
        if not won:
            holder = await self._repository.claimed(claim_id)
            if holder is None or holder["agent_id"] != agent_id:
                raise Conflict("another agent took this chat", code="chat_taken")
        # From here every step is idempotent, so a retry of a half-done accept completes it.
        changed = await self._repository.update_chat(
            chat_id,
            {"state": ASSIGNED, "agent_id": agent_id, "offered_to": ""},
            expect={"state": WAITING, "generation": generation},
        )
        if changed:
            metrics.WAITING.add(-1)
        chat = await self._chat(chat_id)
        await self._append(chat, SYSTEM, f"system:joined:{generation}", JOINED_TEXT, agent_id)
        await self._publish(
            chat, chat_pb2.CHAT_EVENT_KIND_AGENT_JOINED, f"{chat_id}:joined:{generation}", now,
            agent_id=agent_id,
        )  # fmt: skip
        return self._state(chat)

    async def hand_over(
        self, chat_id: str, agent_id: str, reason: str, to_agent_id: str | None
    ) -> dict[str, Any]:
        # The reason is checked but not kept: free text may carry personal data, and routing
        # has its own record of why its agent gave the chat back.
        _agent(agent_id)
        if to_agent_id:
            _agent(to_agent_id, "to_agent_id")
        if len(reason) > 500:
            raise ValidationFailed([FieldViolation("reason", "at most 500 characters")])
        chat = await self._chat(chat_id)
        generation = chat["generation"]
        if not await self._holds(chat, agent_id):
            if chat["state"] == WAITING and generation > 0:
                before = await self._repository.claimed(f"{chat_id}:h:{generation - 1}")
                if before is not None and before["agent_id"] == agent_id:
                    return self._state(chat)  # a retry of this agent's hand-over
            raise Conflict("the chat is not assigned to this agent", code="not_assigned_to_you")
        now = self._clock()
        await self._repository.claim(f"{chat_id}:h:{generation}", agent_id=agent_id, at=now)
        due = chat["first_answer_due_at"]
        if due <= now:
            due = now + self._sla
        if await self._repository.update_chat(
            chat_id,
            {"state": WAITING, "agent_id": "", "generation": generation + 1,
             "offered_to": to_agent_id or "", "first_answer_due_at": due},
            expect={"generation": generation},
        ):  # fmt: skip
            metrics.WAITING.add(1)
        chat = await self._chat(chat_id)
        await self._append(
            chat, SYSTEM, f"system:handed_over:{generation}", HANDED_OVER_TEXT, agent_id
        )
        await self._publish(
            chat, chat_pb2.CHAT_EVENT_KIND_HANDED_OVER, f"{chat_id}:handed_over:{generation}",
            now, agent_id=agent_id, first_answer_due_at=due,
        )  # fmt: skip
        return self._state(chat)

    async def agent_close(self, chat_id: str, agent_id: str, resolution: str) -> dict[str, Any]:
        _agent(agent_id)
        if not SNAKE_CASE.match(resolution):
            raise ValidationFailed([FieldViolation("resolution", "snake_case, e.g. explained")])
        chat = await self._chat(chat_id)
        if chat["state"] == CLOSED:
            if chat["closed_by"] == agent_id:
                return self._state(chat)
            raise Conflict("the chat is closed", code="chat_closed")
        if not await self._holds(chat, agent_id):
            raise Conflict("the chat is not assigned to this agent", code="not_assigned_to_you")
        return await self._close(chat, agent_id, resolution)

    async def agent_updates(
        self, chat_id: str, agent_id: str, after: int, wait_s: float
    ) -> Updates:
        _agent(agent_id)
        chat = await self._chat(chat_id)
        closed_by_them = chat["state"] == CLOSED and chat["closed_by"] == agent_id
        if not closed_by_them and not await self._holds(chat, agent_id):
            raise Conflict("the chat is not assigned to this agent", code="not_assigned_to_you")
        return await self._updates(chat, AGENT, agent_id, after, wait_s)

    async def agent_message(
        self, chat_id: str, agent_id: str, client_id: str, text: str
    ) -> tuple[dict[str, Any], bool]:
        _agent(agent_id)
        chat = await self._chat(chat_id)
        if chat["state"] != CLOSED and not await self._holds(chat, agent_id):
            raise Conflict("the chat is not assigned to this agent", code="not_assigned_to_you")
        message, created = await self._post(chat, AGENT, client_id, text, agent_id)
        if chat["first_answer_at"] is None:
            await self._first_answer(chat, agent_id, message["sent_at"])
        return message, created

    async def agent_receipts(
        self, chat_id: str, agent_id: str, typing: bool, read_up_to: int | None
    ) -> None:
        _agent(agent_id)
        chat = await self._chat(chat_id)
        if not await self._holds(chat, agent_id):
            raise Conflict("the chat is not assigned to this agent", code="not_assigned_to_you")
        await self._receipt(chat, AGENT, typing, read_up_to)

    async def forget_person(self, platform: str, user_id: str) -> bool:
        """Crypto-erasure: delete the person's data key, so no transcript of theirs can be read
        again (each message then reads "[erased]"). True when there was a key."""
        return await self._repository.forget_person(self.person(platform, user_id))

    # --- shared steps --------------------------------------------------------------------------

    async def _chat(self, chat_id: str) -> store.Document:
        chat = await self._repository.chat(chat_id)
        if chat is None:
            raise NotFound("no such chat")
        return chat

    async def _holds(self, chat: store.Document, agent_id: str) -> bool:
        """Whether ``agent_id`` is the chat's agent now. The write-once claim decides: the
        chat document may lag a moment behind it."""
        if chat["state"] == CLOSED:
            return False
        if chat["state"] == ASSIGNED:
            return bool(chat["agent_id"] == agent_id)
        holder = await self._repository.claimed(f"{chat['_id']}:a:{chat['generation']}")
        return holder is not None and holder["agent_id"] == agent_id

    async def _close(self, chat: store.Document, agent_id: str, resolution: str) -> dict[str, Any]:
        chat_id = chat["_id"]
        now = self._clock()
        won = await self._repository.claim(
            f"{chat_id}:closed", agent_id=agent_id, resolution=resolution, at=now
        )
        if not won:
            claim = await self._repository.claimed(f"{chat_id}:closed") or {}
            agent_id, resolution = claim.get("agent_id", agent_id), claim.get("resolution", "")
            now = claim.get("at", now)
        # Listed under its close time before anything else, so the retention sweep finds it.
        await self._repository.note_closed(chat_id, now)
        await self._repository.update_chat(
            chat_id,
            {"state": CLOSED, "closed_at": now, "resolution": resolution, "closed_by": agent_id},
        )
        await self._repository.release_open(chat["session_id"], chat_id)
        if won:
            metrics.closed.add(1, {"resolution": resolution})
            metrics.resolution.record(
                (now - chat["requested_at"]).total_seconds(), {"topic": chat["topic"]}
            )
            if chat["state"] == WAITING:
                metrics.WAITING.add(-1)
        chat = await self._chat(chat_id)
        await self._append(chat, SYSTEM, "system:closed", CLOSED_TEXT, agent_id)
        await self._publish(
            chat, chat_pb2.CHAT_EVENT_KIND_CLOSED, f"{chat_id}:closed", now,
            agent_id=agent_id, resolution=resolution,
        )  # fmt: skip
        return self._state(chat)

    async def _first_answer(self, chat: store.Document, agent_id: str, at: datetime) -> None:
        chat_id = chat["_id"]
        if await self._repository.claim(f"{chat_id}:first_answer", agent_id=agent_id, at=at):
            metrics.first_answer.record((at - chat["requested_at"]).total_seconds())
        else:
            claim = await self._repository.claimed(f"{chat_id}:first_answer") or {}
            at, agent_id = claim.get("at", at), claim.get("agent_id", agent_id)
        await self._repository.update_chat(chat_id, {"first_answer_at": at})
        chat = await self._chat(chat_id)
        await self._publish(
            chat, chat_pb2.CHAT_EVENT_KIND_FIRST_ANSWER, f"{chat_id}:first_answer", at,
            agent_id=agent_id,
        )  # fmt: skip
        self._notifier.notify(chat_id)

    async def _post(
        self, chat: store.Document, party: str, client_id: str, text: str, agent_id: str
    ) -> tuple[dict[str, Any], bool]:
        if not CLIENT_ID.match(client_id) or client_id.startswith("system:"):
            raise ValidationFailed([FieldViolation("client_id", "1 to 64 of A-Z a-z 0-9 _ . : -")])
        text = sanitised(text, self.max_chars)
        if chat["state"] == CLOSED:
            raise Conflict("the chat is closed", code="chat_closed")
        wait = self._limiter.acquire([("chat_messages", f"{chat['_id']}:{party}")])
        if wait is not None:
            raise TooManyRequests("too many messages: slow down", retry_after_s=wait)
        return await self._append(chat, party, client_id, text, agent_id)

    async def _append(
        self, chat: store.Document, party: str, client_id: str, text: str, agent_id: str
    ) -> tuple[dict[str, Any], bool]:
        """Store a message once per client id: the message, and whether it is new."""
        chat_id = chat["_id"]
        now = self._clock()
        if not await self._repository.claim_client_id(chat_id, client_id, now):
            stored = await self._resent(chat, client_id)
            if stored is not None:
                return _message(stored), False
        key = await self._repository.person_key(chat["person"], create=True)
        assert key is not None
        stored = await self._repository.append(
            chat_id, key, first_seq=chat.get("last_seq", 0) + 1, party=party, text=text,
            sent_at=now, client_id=client_id, agent_id=agent_id,
        )  # fmt: skip
        await self._repository.note_client_id_seq(chat_id, client_id, stored.seq)
        await self._repository.note_last_seq(chat_id, stored.seq)
        self._notifier.notify(chat_id)
        return _message(stored), True

    async def _resent(self, chat: store.Document, client_id: str) -> StoredMessage | None:
        """The message stored under ``client_id``; None when its first send died before storing
        it (this send then stores it). TransientError while the first send may still finish."""
        chat_id = chat["_id"]
        deadline = time.monotonic() + RESEND_WAIT_S
        while True:
            noted = await self._repository.client_id_seq(chat_id, client_id)
            if noted is not None and noted["seq"]:
                key = await self._repository.person_key(chat["person"], create=False)
                return await self._repository.message(chat_id, noted["seq"], key)
            if noted is not None and self._clock() - noted["at"] > timedelta(
                seconds=ABANDONED_SEND_S
            ):
                return None
            if time.monotonic() >= deadline:
                raise TransientError("this message is still being stored; send it again")
            await asyncio.sleep(0.1)

    async def _receipt(
        self, chat: store.Document, party: str, typing: bool, read_up_to: int | None
    ) -> None:
        highest = {f"{party}_read": read_up_to} if read_up_to else {}
        times = {f"{party}_typing_at": self._clock()} if typing else {}
        await self._repository.note_receipt(chat["_id"], highest=highest, times=times)
        self._notifier.notify(chat["_id"])

    async def _updates(
        self, chat: store.Document, party: str, viewer: str, after: int, wait_s: float
    ) -> Updates:
        chat_id = chat["_id"]
        wait_s = max(0.0, min(MAX_WAIT_S, wait_s))
        deadline = time.monotonic() + wait_s
        seen_key = (chat_id, f"{party}:{viewer}")
        first = True
        while True:
            woken = self._notifier.event(chat_id)
            if not first:
                chat = await self._chat(chat_id)
            first = False
            messages: list[StoredMessage] = []
            if await self._repository.has_message(chat_id, after + 1):
                key = await self._repository.person_key(chat["person"], create=False)
                messages = await self._repository.messages(chat_id, key, after)
            receipts = await self._repository.receipts(chat_id)
            if messages:
                delivered = f"{party}_delivered"
                if messages[-1].seq > receipts.get(delivered, 0):
                    receipts[delivered] = messages[-1].seq
                    await self._repository.note_receipt(
                        chat_id, highest={delivered: messages[-1].seq}, times={}
                    )
                    self._notifier.notify(chat_id)
            state = self._state(chat)
            shown = self._receipts(receipts)
            fingerprint = (tuple(state.values()), tuple(shown.values()))
            fresh = bool(messages) or self._seen.get(seen_key) != fingerprint
            left = deadline - time.monotonic()
            if fresh or left <= 0:
                self._remember(seen_key, fingerprint)
                body = {
                    "state": state,
                    "messages": [_message(m) for m in messages],
                    "receipts": shown,
                }
                return Updates(body, fresh)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), timeout=min(REREAD_S, left))

    def _remember(self, key: tuple[str, str], fingerprint: tuple[Any, ...]) -> None:
        self._seen[key] = fingerprint
        self._seen.move_to_end(key)
        if len(self._seen) > REMEMBERED_VIEWS:
            self._seen.popitem(last=False)

    def _receipts(self, document: store.Document) -> dict[str, Any]:
        now = self._clock()

        def typing(party: str) -> bool:
            at = document.get(f"{party}_typing_at")
            return at is not None and (now - at).total_seconds() < TYPING_S

        return {
            "person_delivered": int(document.get("person_delivered", 0)),
            "person_read": int(document.get("person_read", 0)),
            "agent_delivered": int(document.get("agent_delivered", 0)),
            "agent_read": int(document.get("agent_read", 0)),
            "person_typing": typing(PERSON),
            "agent_typing": typing(AGENT),
        }

    @staticmethod
    def _state(chat: store.Document) -> dict[str, Any]:
        return {
            "chat_id": chat["_id"],
            "state": chat["state"],
            "platform": chat["platform"],
            "topic": chat["topic"],
            "language": chat["language"],
            "appeal_id": chat["appeal_id"],
            "agent_id": chat["agent_id"],
            "offered_to": chat.get("offered_to", ""),
            "requested_at": chat["requested_at"],
            "first_answer_due_at": chat["first_answer_due_at"],
            "first_answer_at": chat["first_answer_at"],
            "closed_at": chat["closed_at"],
            "resolution": chat["resolution"],
        }

    async def _publish(
        self,
        chat: store.Document,
        kind: chat_pb2.ChatEventKind.ValueType,
        event_id: str,
        at: datetime,
        *,
        agent_id: str = "",
        first_answer_due_at: datetime | None = None,
        resolution: str = "",
        verification_id: str = "",
    ) -> None:
        """Publish the event and wait for the broker's acknowledgement. The id is fixed per
        transition, so a retried step publishes a copy consumers drop."""
        event = chat_pb2.ChatEvent(
            event_id=event_id,
            chat_id=chat["_id"],
            kind=kind,
            occurred_at=_timestamp(at),
            platform=vocabulary.PLATFORMS[chat["platform"]],  # type: ignore[arg-type]
            topic=vocabulary.CHAT_TOPICS[chat["topic"]],  # type: ignore[arg-type]
            language=chat["language"],
            appeal_id=chat["appeal_id"],
            agent_id=agent_id,
            resolution=resolution,
            verification_id=verification_id,
            requested_at=_timestamp(chat["requested_at"]),
        )
        if first_answer_due_at is not None:
            event.first_answer_due_at.CopyFrom(_timestamp(first_answer_due_at))
        await self._producer.publish(topics.HELP_CHATS, event)
        self._notifier.notify(chat["_id"])


def _agent(agent_id: str, field: str = "agent_id") -> None:
    if not AGENT_ID.match(agent_id):
        raise ValidationFailed([FieldViolation(field, "an agent id")])


def _message(message: StoredMessage) -> dict[str, Any]:
    return {
        "chat_id": message.chat_id,
        "seq": message.seq,
        "party": message.party,
        "text": message.text,
        "sent_at": message.sent_at,
        "client_id": message.client_id,
        "agent_id": message.agent_id,
    }


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


async def _quietly(step: Any) -> None:
    try:
        await step
    except Exception:
        log.exception("could not undo a half-done chat open")

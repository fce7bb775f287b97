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

from appeals import attachments as attachment_rules
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
from services.help.decisions import decision_text
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


# Removed from what people write: control characters (but newline and tab), and lone
# surrogates, which JSON can spell ("\ud800") but UTF-8 cannot store.
_DROPPED = frozenset(("Cc", "Cs"))
# Keys of an attachment as a client sends it (appeals.v1.Attachment's fields).
ATTACHMENT_FIELDS = ("media_type", "uri", "size_bytes")
_INT64 = 2**63


def sanitised(text: str, max_chars: int, field: str = "text") -> str:
    """Plain text: control characters other than newline and tab removed, and lone surrogates,
    trimmed, 1 to ``max_chars`` characters (never interpreted as HTML anywhere: the page sets
    textContent)."""
    kept = "".join(
        c for c in text if c in "\n\t" or unicodedata.category(c) not in _DROPPED
    ).strip()
    if not 1 <= len(kept) <= max_chars:
        raise ValidationFailed([FieldViolation(field, f"1 to {max_chars} characters of text")])
    return kept


@dataclass(frozen=True)
class _Attachment:
    media_type: str
    uri: str
    size_bytes: int


def attachments_from(value: Any) -> list[dict[str, Any]]:
    """A message's attachments as a client sent them (REST body or WebSocket frame: a JSON list
    of ``{media_type, uri, size_bytes}``), checked as intake checks an appeal's: their shape
    first (as intake's schema does), then the appeals' own rule
    (:func:`appeals.attachments.attachment_violations`), so a chat takes exactly what an appeal
    takes. Every violation names its field (``attachments[1].uri``)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationFailed([FieldViolation("attachments", "a list of attachments")])
    too_many = attachment_rules.count_violations(len(value))
    if too_many:
        # How many is what is wrong, whatever they are: said without looking at each.
        raise ValidationFailed([FieldViolation(*violation) for violation in too_many])
    violations: list[FieldViolation] = []
    parsed: list[_Attachment] = []
    for index, item in enumerate(value):
        where = f"attachments[{index}]"
        if not isinstance(item, dict):
            violations.append(FieldViolation(where, "an object {media_type, uri, size_bytes}"))
            continue
        violations += [
            FieldViolation(f"{where}.{key}", "not a field of an attachment")
            for key in item
            if key not in ATTACHMENT_FIELDS
        ]
        media_type, uri, size = (item.get(key) for key in ATTACHMENT_FIELDS)
        for key, text in (("media_type", media_type), ("uri", uri)):
            if not isinstance(text, str):
                violations.append(FieldViolation(f"{where}.{key}", "is required: a string"))
            elif not _encodable(text):
                violations.append(FieldViolation(f"{where}.{key}", "must be UTF-8 text"))
        if not isinstance(size, int) or isinstance(size, bool):
            violations.append(FieldViolation(f"{where}.size_bytes", "is required: an integer"))
        elif isinstance(media_type, str) and isinstance(uri, str):
            # Beyond int64 a size is out of the rule's range, as the rule then says.
            parsed.append(_Attachment(media_type, uri, size if -_INT64 <= size < _INT64 else 0))
    if not violations:
        violations = [
            FieldViolation(field, description)
            for field, description in attachment_rules.attachment_violations(parsed)
        ]
    if violations:
        raise ValidationFailed(violations)
    return [{"media_type": a.media_type, "uri": a.uri, "size_bytes": a.size_bytes} for a in parsed]


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


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
        feature = _opening(topic, language, feature)
        text = sanitised(message, self.max_chars, "message") if message is not None else None
        open_now = await self._open_chat(session)
        if open_now is not None:
            return self._state(open_now), False
        person = self.person(session.platform, session.user_id)
        # Per session, per account (whatever session: a person may verify again and again) and
        # per client address.
        wait = self._limiter.acquire(
            [("chat_session", session.session_id), ("chat_account", person),
             ("chat_address", client)]
        )  # fmt: skip
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
            if appeal_id:
                # Whom to forget when intake erases the appeal (``particulars_erased``), and
                # where to say its decision (``decided``).
                await self._repository.link_appeal(appeal_id, person, now, chat_id)
            chat = {
                "_id": chat_id,
                "state": WAITING,
                "platform": session.platform,
                "topic": topic,
                "language": language,
                "feature": feature or "",
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
        # A wait ends with the session: the next request is refused (401), none outlives it.
        left = (session.expires_at - self._clock()).total_seconds()
        return await self._updates(
            chat, PERSON, session.session_id, after, max(0.0, min(wait_s, left))
        )

    async def person_message(
        self,
        session: HelpSession,
        chat_id: str,
        client_id: str,
        text: str,
        *,
        attachments: Any = None,
        client: str = "",
    ) -> tuple[dict[str, Any], bool]:
        """``attachments``: as the client sent them (checked by :func:`attachments_from`);
        ``client``: the client's address (the per-address limit)."""
        attached = attachments_from(attachments)
        chat = await self._persons_chat(session, chat_id)
        return await self._post(
            chat, PERSON, client_id, text, "", attachments=attached,
            limits=[("chat_person_messages", chat["person"]), ("chat_address_messages", client)],
        )  # fmt: skip

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
        if not SNAKE_CASE.fullmatch(resolution):
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

    async def announce_decision(self, appeal_id: str, event_id: str, outcome: str) -> int:
        """The appeal was decided (lifecycle ``decided`` event ``event_id``): every chat attached
        to it that is still stored, open or closed, gets a system message saying ``outcome`` (a
        name of ``vocabulary.OUTCOMES``) in the chat's language, for the person and the agent.
        Once per event: the message's client id is the event's, so a redelivered event finds it
        stored (write-once by ``_id``); a later decision (a referral's) is a message of its own.
        Returns how many chats got it now."""
        told = 0
        for chat in await self._repository.chats_of_appeal(appeal_id):
            _, created = await self._append(
                chat, SYSTEM, f"system:decided:{event_id}",
                decision_text(outcome, chat["language"]), "", outcome=outcome,
            )  # fmt: skip
            told += created
        if told:
            log.info(
                "appeal decision shown in its chats",
                extra={"appeal_id": appeal_id, "outcome": outcome, "chats": told},
            )
        return told

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
        self,
        chat: store.Document,
        party: str,
        client_id: str,
        text: str,
        agent_id: str,
        *,
        attachments: list[dict[str, Any]] | None = None,
        limits: list[tuple[str, str]] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Checked before anything is stored, and limited after the checks (a refused message
        costs no token): per chat and side, and the sender's own ``limits``."""
        if not CLIENT_ID.fullmatch(client_id) or client_id.startswith("system:"):
            raise ValidationFailed([FieldViolation("client_id", "1 to 64 of A-Z a-z 0-9 _ . : -")])
        text = sanitised(text, self.max_chars)
        if chat["state"] == CLOSED:
            raise Conflict("the chat is closed", code="chat_closed")
        wait = self._limiter.acquire([("chat_messages", f"{chat['_id']}:{party}"), *(limits or [])])
        if wait is not None:
            raise TooManyRequests("too many messages: slow down", retry_after_s=wait)
        return await self._append(
            chat, party, client_id, text, agent_id, attachments=attachments or []
        )

    async def _append(
        self,
        chat: store.Document,
        party: str,
        client_id: str,
        text: str,
        agent_id: str,
        *,
        attachments: list[dict[str, Any]] | None = None,
        outcome: str = "",
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
            sent_at=now, client_id=client_id, agent_id=agent_id, attachments=attachments or (),
            outcome=outcome,
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


def _opening(topic: str, language: str, feature: str | None) -> str | None:
    """An open's topic, language and feature checked together (every invalid one named); the
    feature as kept."""
    violations = []
    if topic not in vocabulary.CHAT_TOPICS:
        violations.append(FieldViolation("topic", f"one of {', '.join(vocabulary.CHAT_TOPICS)}"))
    if not LANGUAGE.fullmatch(language):
        violations.append(FieldViolation("language", "an ISO 639-1 code, e.g. en"))
    if feature is not None:
        try:
            feature = sanitised(feature, 64, "feature")
        except ValidationFailed as invalid:
            violations += invalid.violations
    if violations:
        raise ValidationFailed(violations)
    return feature


def _agent(agent_id: str, field: str = "agent_id") -> None:
    if not AGENT_ID.fullmatch(agent_id):
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
        "attachments": [dict(attachment) for attachment in message.attachments],
        "outcome": message.outcome,
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

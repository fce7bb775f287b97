"""Live-help chats on the agent desk: the queue of waiting chats, offers to agents, accepting a
chat, and relaying the agent's side of it to the help service, which owns every chat.

Routing keeps two small **live** collections, filled by its consumer of ``help.chats.v1``:

* ``waiting_chats`` (``_id`` = chat id): chats requested or handed over that no agent has yet;
* ``active_chats`` (``_id`` = chat id): chats an agent has joined, with that agent.

A closed chat leaves both, so they hold only what is live, and reading them whole is allowed
(the store scans anything but an ``_id`` lookup; a scan must only cover what is live). Each
instance reads them at most once a second, shared by all of its chat streams: every agent sees
every waiting chat whichever instance consumed its event. An offer reserves a chat for one agent
within this instance only; two instances may offer the same chat, and help's assignment (409 to
the second accept) is what makes a chat exclusive.

Idempotence: every stored chat keeps the id and time of the event that put it there. An event
seen again (same id) or older than what is stored changes nothing; a redelivered suffix of the
partition replays in order and ends where it ended before. Routing's own writes (an accept, a
hand-over: the desk knows at once, before the event comes back) are stamped with routing's
clock, so the event that announced the same change a moment earlier, or an older one read late,
does not undo them. (With the clocks of help and routing apart by more than the time between
two changes of one chat, an event help stamped within that gap after routing's write would be
taken for an older one and skipped; every such change but a close, which is never skipped, is
made through routing's own desk, which writes it itself.) A late copy of an event of a chat
that has since closed (nothing is kept of closed chats) would queue it again: the first accept
then learns from help that it is closed, and routing drops it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from appeals import vocabulary
from appeals.v1 import chat_pb2
from appeals_runtime import store
from appeals_runtime.auth import PermissionDenied, Principal
from appeals_runtime.errors import (
    Conflict,
    FieldViolation,
    InvalidMessage,
    NotFound,
    TransientError,
    Unprocessable,
    ValidationFailed,
)
from appeals_runtime.kafka.consumer import Handler, InboundMessage
from services.routing import metrics
from services.routing.agents import AgentRegistry, require_agent
from services.routing.help_client import HelpChats
from services.routing.model import Presence

WAITING = "waiting_chats"
ACTIVE = "active_chats"

# The live collections are read whole at most this often per instance.
LIVE_REFRESH_S = 1.0
# A session's long poll of help's updates.
UPDATES_WAIT_S = 20
MAX_CHAT_ID_CHARS = 200
MAX_REASON_CHARS = 500
_SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
MAX_RESOLUTION_CHARS = 64


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WaitingChat:
    chat_id: str
    platform: str
    topic: str
    language: str
    appeal_id: str
    requested_at: datetime | None
    first_answer_due_at: datetime | None
    # The agent who handed it back, if it was handed over.
    handed_over_by: str = ""

    def due_order(self) -> tuple[datetime, str]:
        far = datetime.max.replace(tzinfo=UTC)
        return (self.first_answer_due_at or far, self.chat_id)


@dataclass
class LiveChats:
    """One read of both live collections."""

    waiting: dict[str, WaitingChat] = field(default_factory=dict)
    # chat id -> agent id
    active: dict[str, str] = field(default_factory=dict)

    def active_of(self, agent_id: str) -> int:
        return sum(1 for holder in self.active.values() if holder == agent_id)


def _time(stamp: Any) -> datetime | None:
    """A protobuf Timestamp (unset: None) at the store's precision."""
    if not stamp.seconds and not stamp.nanos:
        return None
    return store.stored_time(stamp.ToDatetime(tzinfo=UTC))


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value))
    return store.stored_time(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))


def chat_from_event(event: chat_pb2.ChatEvent) -> WaitingChat:
    return WaitingChat(
        chat_id=event.chat_id,
        platform=vocabulary.platform_name(event.platform),
        topic=vocabulary.chat_topic_name(event.topic),
        language=event.language.strip().lower(),
        appeal_id=event.appeal_id,
        requested_at=_time(event.requested_at) or _time(event.occurred_at),
        first_answer_due_at=_time(event.first_answer_due_at),
        handed_over_by=(
            event.agent_id if event.kind == chat_pb2.CHAT_EVENT_KIND_HANDED_OVER else ""
        ),
    )


def chat_from_state(state: dict[str, Any]) -> WaitingChat:
    """A chat as help's ChatState JSON describes it."""
    return WaitingChat(
        chat_id=str(state.get("chat_id", "")),
        platform=str(state.get("platform", "")),
        topic=str(state.get("topic", "")),
        language=str(state.get("language", "")).lower(),
        appeal_id=str(state.get("appeal_id") or ""),
        requested_at=parse_time(state.get("requested_at")),
        first_answer_due_at=parse_time(state.get("first_answer_due_at")),
    )


def _document(chat: WaitingChat, *, event_id: str, occurred_at: datetime | None) -> dict[str, Any]:
    return {
        "_id": chat.chat_id,
        "platform": chat.platform,
        "topic": chat.topic,
        "language": chat.language,
        "appeal_id": chat.appeal_id,
        "requested_at": chat.requested_at,
        "first_answer_due_at": chat.first_answer_due_at,
        "handed_over_by": chat.handed_over_by,
        "event_id": event_id,
        "occurred_at": occurred_at,
    }


def _chat(document: dict[str, Any]) -> WaitingChat:
    return WaitingChat(
        chat_id=str(document["_id"]),
        platform=str(document.get("platform", "")),
        topic=str(document.get("topic", "")),
        language=str(document.get("language", "")),
        appeal_id=str(document.get("appeal_id") or ""),
        requested_at=document.get("requested_at"),
        first_answer_due_at=document.get("first_answer_due_at"),
        handed_over_by=str(document.get("handed_over_by") or ""),
    )


class ChatStore:
    """The two live collections (by ``_id``, or read whole: they hold only live chats)."""

    def __init__(self, db: store.Database) -> None:
        self._waiting = db[WAITING]
        self._active = db[ACTIVE]

    async def apply(self, event: chat_pb2.ChatEvent) -> None:
        """One event of help.chats.v1, once (see the module docstring)."""
        kind = event.kind
        chat_id = event.chat_id
        if kind == chat_pb2.CHAT_EVENT_KIND_CLOSED:
            await self.forget(chat_id)
            return
        if kind not in (
            chat_pb2.CHAT_EVENT_KIND_REQUESTED,
            chat_pb2.CHAT_EVENT_KIND_HANDED_OVER,
            chat_pb2.CHAT_EVENT_KIND_AGENT_JOINED,
        ):
            return  # FIRST_ANSWER changes nothing routing queues by
        at = _time(event.occurred_at)
        if await self._seen(chat_id, event.event_id, at):
            return
        chat = chat_from_event(event)
        if kind == chat_pb2.CHAT_EVENT_KIND_AGENT_JOINED:
            await self.joined(chat, event.agent_id, event_id=event.event_id, occurred_at=at)
        else:
            await self.waits(chat, event_id=event.event_id, occurred_at=at)

    async def _seen(self, chat_id: str, event_id: str, at: datetime | None) -> bool:
        for collection in (self._waiting, self._active):
            stored = await store.available(collection.find_one({"_id": chat_id}))
            if stored is None:
                continue
            if stored.get("event_id") == event_id:
                return True
            known = stored.get("occurred_at")
            if known is not None and at is not None and known > at:
                return True
        return False

    async def waits(
        self, chat: WaitingChat, *, event_id: str = "", occurred_at: datetime | None = None
    ) -> None:
        document = _document(chat, event_id=event_id, occurred_at=occurred_at)
        await store.available(
            self._waiting.replace_one({"_id": chat.chat_id}, document, upsert=True)
        )
        await store.available(self._active.delete_one({"_id": chat.chat_id}))

    async def joined(
        self,
        chat: WaitingChat,
        agent_id: str,
        *,
        event_id: str = "",
        occurred_at: datetime | None = None,
    ) -> None:
        document = _document(chat, event_id=event_id, occurred_at=occurred_at)
        document["agent_id"] = agent_id
        await store.available(
            self._active.replace_one({"_id": chat.chat_id}, document, upsert=True)
        )
        await store.available(self._waiting.delete_one({"_id": chat.chat_id}))

    async def forget(self, chat_id: str) -> None:
        await store.available(self._waiting.delete_one({"_id": chat_id}))
        await store.available(self._active.delete_one({"_id": chat_id}))

    async def live(self) -> LiveChats:
        """Both collections whole (they hold only live chats)."""
        waiting_documents = await store.available(self._waiting.find({}).to_list(None))
        waiting = {chat.chat_id: chat for chat in map(_chat, waiting_documents)}
        active_documents = await store.available(
            self._active.find({}, {"agent_id": 1}).to_list(None)
        )
        active = {str(d["_id"]): str(d.get("agent_id", "")) for d in active_documents}
        return LiveChats(waiting, active)


def chat_handler(chats: ChatStore) -> Handler:
    """The consumer of help.chats.v1: keeps the live collections."""

    async def handle(message: InboundMessage[Any]) -> None:
        event: chat_pb2.ChatEvent = message.payload
        if not event.chat_id or not event.event_id:
            raise InvalidMessage("event_id and chat_id are required", field="chat_id")
        await chats.apply(event)

    return handle


@dataclass(frozen=True)
class Reservation:
    agent_id: str
    expires_at: datetime


@dataclass(frozen=True)
class OfferedChat:
    chat: WaitingChat
    expires_at: datetime


@dataclass(frozen=True)
class Accepted:
    chat: WaitingChat
    case_claimed: bool


class CaseClaims(Protocol):
    """What accepting an account-access chat needs of the desk (``AgentDesk``): its claim."""

    async def claim(self, agent: Principal, appeal_id: str) -> object: ...


class ChatDesk:
    def __init__(
        self,
        chats: ChatStore,
        help_chats: HelpChats,
        agents: AgentRegistry,
        cases: CaseClaims,
        *,
        capacity: int,
        offer_ttl: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        refresh_s: float = LIVE_REFRESH_S,
    ) -> None:
        self._chats = chats
        self._help = help_chats
        self._agents = agents
        self._cases = cases
        self._capacity = capacity
        self._offer_ttl = offer_ttl
        self._clock: Callable[[], datetime] = lambda: store.stored_time(clock())
        self._refresh_s = refresh_s
        self._live: LiveChats | None = None
        self._read_at = 0.0
        self._reading = asyncio.Lock()
        self._reservations: dict[str, Reservation] = {}

    @property
    def help(self) -> HelpChats:
        return self._help

    # --- the queue ---------------------------------------------------------------------------

    async def live(self) -> LiveChats:
        """The live chats as read at most ``refresh_s`` ago, one read shared by every stream."""
        async with self._reading:
            if self._live is None or time.monotonic() - self._read_at >= self._refresh_s:
                self._live = await self._chats.live()
                self._read_at = time.monotonic()
            return self._live

    async def observe(self) -> None:
        """The waiting-chats gauge, from the live read the chat streams share (the periodic
        refresh)."""
        metrics.observe_chats_waiting(len((await self.live()).waiting))

    async def offers_for(self, agent: Principal, sent: dict[str, datetime]) -> list[OfferedChat]:
        """What the agent's stream should send now; ``sent`` (the stream's own: chat id -> the
        reservation it sent) makes each reservation go out once."""
        require_agent(agent)
        profile = await self._agents.recent_profile(agent)
        now = self._clock()
        if profile.presence_at(now) != Presence.ONLINE:
            return []
        live = await self.live()
        for chat_id, reservation in list(self._reservations.items()):
            if reservation.expires_at <= now or chat_id not in live.waiting:
                del self._reservations[chat_id]
        reserved = sum(1 for r in self._reservations.values() if r.agent_id == agent.subject)
        room = self._capacity - live.active_of(agent.subject) - reserved
        offered = []
        for chat in sorted(live.waiting.values(), key=WaitingChat.due_order):
            held: Reservation | None = self._reservations.get(chat.chat_id)
            if held is None:
                if room <= 0 or not _covers(profile.skills, chat):
                    continue
                held = Reservation(agent.subject, now + self._offer_ttl)
                self._reservations[chat.chat_id] = held
                room -= 1
                metrics.chat_offers.add(1, {"platform": chat.platform, "topic": chat.topic})
            if held.agent_id != agent.subject or sent.get(chat.chat_id) == held.expires_at:
                continue
            sent[chat.chat_id] = held.expires_at
            offered.append(OfferedChat(chat, held.expires_at))
        return offered

    def stream_closed(self, agent: Principal, sent: dict[str, datetime]) -> None:
        """The agent's stream went away: what it was offered goes back at once, not when the
        reservations lapse."""
        for chat_id, expires_at in sent.items():
            held = self._reservations.get(chat_id)
            if (
                held is not None
                and held.agent_id == agent.subject
                and held.expires_at == expires_at
            ):
                del self._reservations[chat_id]

    # --- the agent's acts --------------------------------------------------------------------

    async def accept(self, agent: Principal, chat_id: str) -> Accepted:
        require_agent(agent)
        _check_chat_id(chat_id)
        live = await self.live()
        if chat_id not in live.active and live.active_of(agent.subject) >= self._capacity:
            raise Conflict(
                f"chat_capacity_reached: you have {self._capacity} chats open; close or hand "
                "one over first",
                code="chat_capacity_reached",
            )
        try:
            state = await self._help.assign(chat_id, agent.subject)
        except (Conflict, NotFound):
            await self._resync(chat_id)
            raise
        chat = chat_from_state(state) if state.get("chat_id") else _known(live, chat_id)
        await self._chats.joined(chat, agent.subject, occurred_at=self._clock())
        self._reservations.pop(chat_id, None)
        live.waiting.pop(chat_id, None)
        live.active[chat_id] = agent.subject
        metrics.chats_accepted.add(1, {"platform": chat.platform, "topic": chat.topic})
        case_claimed = False
        if chat.appeal_id:
            case_claimed = await self._claim_case(agent, chat.appeal_id)
        return Accepted(chat, case_claimed)

    async def _claim_case(self, agent: Principal, appeal_id: str) -> bool:
        """The chat's case for the agent, when routing has it and nobody holds it; otherwise
        the agent can still Claim it later (no error here: the chat is theirs either way)."""
        try:
            await self._cases.claim(agent, appeal_id)
        except (NotFound, Conflict, Unprocessable, PermissionDenied, TransientError) as error:
            log.info(
                "chat's case not claimed", extra={"appeal_id": appeal_id, "reason": str(error)}
            )
            return False
        return True

    async def _resync(self, chat_id: str) -> None:
        """After help refused an accept: take its word for where the chat is."""
        try:
            state = await self._help.state(chat_id)
        except NotFound:
            await self._chats.forget(chat_id)
            return
        except TransientError:
            return
        if state.get("state") == "closed":
            await self._chats.forget(chat_id)
        elif state.get("state") == "assigned" and state.get("agent_id"):
            await self._chats.joined(
                chat_from_state(state), str(state["agent_id"]), occurred_at=self._clock()
            )
        self._reservations.pop(chat_id, None)
        self._live = None

    async def hand_over(
        self, agent: Principal, chat_id: str, reason: str, to_agent_id: str = ""
    ) -> None:
        require_agent(agent)
        violations = _chat_id_violations(chat_id)
        if len(reason) > MAX_REASON_CHARS:
            violations.append(FieldViolation("reason", f"at most {MAX_REASON_CHARS} characters"))
        if violations:
            raise ValidationFailed(violations)
        state = await self._help.hand_over(chat_id, agent.subject, reason.strip(), to_agent_id)
        # Queued again at once here (its HANDED_OVER event says the same a moment later).
        if state.get("chat_id"):
            await self._chats.waits(chat_from_state(state), occurred_at=self._clock())
        self._live = None

    async def close(self, agent: Principal, chat_id: str, resolution: str) -> None:
        require_agent(agent)
        violations = _chat_id_violations(chat_id)
        if not _SNAKE_CASE.match(resolution) or len(resolution) > MAX_RESOLUTION_CHARS:
            violations.append(
                FieldViolation(
                    "resolution",
                    "a snake_case code of at most 64 characters, e.g. access_restored",
                )
            )
        if violations:
            raise ValidationFailed(violations)
        await self._help.close(chat_id, agent.subject, resolution)
        await self._chats.forget(chat_id)
        self._live = None

    def session(self, agent: Principal, chat_id: str, after_seq: int) -> ChatSession:
        require_agent(agent)
        violations = _chat_id_violations(chat_id, "join.chat_id")
        if after_seq < 0:
            violations.append(FieldViolation("join.after_seq", "must be 0 or more"))
        if violations:
            raise ValidationFailed(violations)
        return ChatSession(self._help, chat_id, agent.subject, after_seq)


def _known(live: LiveChats, chat_id: str) -> WaitingChat:
    return live.waiting.get(chat_id) or WaitingChat(chat_id, "", "", "", "", None, None)


def _covers(skills: Any, chat: WaitingChat) -> bool:
    return bool(skills.has("language", chat.language) and skills.has("platform", chat.platform))


def _chat_id_violations(chat_id: str, name: str = "chat_id") -> list[FieldViolation]:
    if not chat_id.strip():
        return [FieldViolation(name, "required")]
    if len(chat_id) > MAX_CHAT_ID_CHARS:
        return [FieldViolation(name, f"at most {MAX_CHAT_ID_CHARS} characters")]
    return []


def _check_chat_id(chat_id: str) -> None:
    violations = _chat_id_violations(chat_id)
    if violations:
        raise ValidationFailed(violations)


# What a session hands its adapter: ("message", Message JSON), ("receipts", Receipts JSON) or
# ("ended", "closed" | "handed_over").
SessionItem = tuple[str, Any]


class ChatSession:
    """One agent's view of one chat, relayed from and to help's internal API."""

    def __init__(self, help_chats: HelpChats, chat_id: str, agent_id: str, after: int) -> None:
        self._help = help_chats
        self.chat_id = chat_id
        self.agent_id = agent_id
        self.after = after
        self._ended = False
        self._receipts: dict[str, Any] | None = None

    def finished(self) -> bool:
        """The chat left the agent (closed, or handed over): the session is over."""
        return self._ended

    async def open(self) -> list[SessionItem]:
        """The first read (not waiting): what came after ``after``; PermissionDenied when the
        chat is not the agent's."""
        return self._items(await self._help.updates(self.chat_id, self.agent_id, self.after, 0))

    async def poll(self, wait_s: float = UPDATES_WAIT_S) -> list[SessionItem]:
        """The next updates (a long poll); once the chat left the agent, an ``ended`` item."""
        try:
            updates = await self._help.updates(self.chat_id, self.agent_id, self.after, wait_s)
        except PermissionDenied:
            # Handed over (and maybe taken by someone else) since the last read.
            self._ended = True
            return [("ended", "handed_over")]
        return self._items(updates)

    def _items(self, updates: dict[str, Any]) -> list[SessionItem]:
        items: list[SessionItem] = []
        for message in sorted(updates.get("messages") or [], key=lambda m: int(m["seq"])):
            seq = int(message["seq"])
            if seq > self.after:
                items.append(("message", message))
                self.after = seq
        receipts = updates.get("receipts")
        if isinstance(receipts, dict) and receipts != self._receipts:
            self._receipts = receipts
            items.append(("receipts", receipts))
        state = updates.get("state") or {}
        if state.get("state") == "closed":
            self._ended = True
            items.append(("ended", "closed"))
        elif state and (state.get("state") != "assigned" or state.get("agent_id") != self.agent_id):
            self._ended = True
            items.append(("ended", "handed_over"))
        return items

    async def send(self, client_id: str, text: str) -> None:
        violations = []
        if not client_id.strip():
            violations.append(FieldViolation("send.client_id", "required"))
        if not text.strip():
            violations.append(FieldViolation("send.text", "required"))
        if violations:
            raise ValidationFailed(violations)
        await self._help.send(self.chat_id, self.agent_id, client_id, text)

    async def typing(self, typing: bool) -> None:
        await self._help.receipts(self.chat_id, self.agent_id, typing=typing)

    async def read_up_to(self, seq: int) -> None:
        await self._help.receipts(self.chat_id, self.agent_id, read_up_to=seq)

"""gRPC adapter of the agent desk (`appeals.v1.AgentDesk` on :50052)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, TypeAlias, TypeVar

import grpc

from appeals import vocabulary
from appeals.v1 import agent_desk_pb2, agent_desk_pb2_grpc, appeal_pb2, chat_pb2
from appeals_runtime.auth import Principal, TokenVerifier
from appeals_runtime.errors import FieldViolation, ValidationFailed
from appeals_runtime.grpc_server import Registration, guarded, principal
from services.routing import announcements
from services.routing.agents import require_agent
from services.routing.chats import (
    ChatDesk,
    ChatSession,
    OfferedChat,
    SessionItem,
    WaitingChat,
    parse_time,
)
from services.routing.desk import ESCALATION_TARGETS_TEXT, AgentDesk, DecisionStatus
from services.routing.model import AgentProfile, CaseState, Offer, Presence, Round, Target
from services.routing.policy import AgentSkills

# grpc ships no type information; the servicer context is untyped.
Context: TypeAlias = Any
T = TypeVar("T")

# How often an open stream renews its agent's presence (well within the presence TTL).
PRESENCE_RENEW_S = 5.0
# How long a chat session waits for its first frame (join) before answering the caller.
FIRST_FRAME_WAIT_S = 10.0

_PRESENCE_TO_PROTO = {
    Presence.ONLINE: agent_desk_pb2.PRESENCE_ONLINE,
    Presence.AWAY: agent_desk_pb2.PRESENCE_AWAY,
    Presence.OFFLINE: agent_desk_pb2.PRESENCE_OFFLINE,
}
_PRESENCE_FROM_PROTO = {number: presence for presence, number in _PRESENCE_TO_PROTO.items()}
_TARGETS = {
    agent_desk_pb2.ESCALATION_TARGET_SENIOR: Target.SENIOR,
    agent_desk_pb2.ESCALATION_TARGET_LEGAL: Target.LEGAL,
    agent_desk_pb2.ESCALATION_TARGET_OVERSIGHT_BOARD: Target.OVERSIGHT_BOARD,
    agent_desk_pb2.ESCALATION_TARGET_OUT_OF_COURT: Target.OUT_OF_COURT,
}
_STATUSES = {
    DecisionStatus.DECIDED: agent_desk_pb2.DECISION_STATUS_DECIDED,
    DecisionStatus.SECOND_REVIEW_PENDING: agent_desk_pb2.DECISION_STATUS_SECOND_REVIEW_PENDING,
    DecisionStatus.ESCALATED_FOR_DISAGREEMENT: (
        agent_desk_pb2.DECISION_STATUS_ESCALATED_FOR_DISAGREEMENT
    ),
}
_ROUNDS = {
    Round.FIRST: agent_desk_pb2.REVIEW_ROUND_FIRST,
    Round.SECOND_BLIND: agent_desk_pb2.REVIEW_ROUND_SECOND_BLIND,
    Round.SENIOR_ADJUDICATION: agent_desk_pb2.REVIEW_ROUND_SENIOR_ADJUDICATION,
}


def offer_message(case: CaseState, offer: Offer | None = None) -> agent_desk_pb2.CaseOffer:
    """A case as offered: its facts, never the appellant's statement (only a claim reads it)."""
    message = agent_desk_pb2.CaseOffer(
        appeal_id=case.appeal_id,
        queue=case.queue,
        priority=case.priority,
        facts=case.routing.submission,
        rule=case.routing.rule,
        priority_reasons=list(case.routing.reasons),
        round=_ROUNDS[case.round],
    )
    message.sla_due_at.FromDatetime(case.sla_due_at)
    message.received_at.FromDatetime(case.routing.received_at)
    if offer is not None:
        message.offer_expires_at.FromDatetime(offer.expires_at)
    if case.round == Round.SENIOR_ADJUDICATION:  # a blind second review shows nothing earlier
        message.prior_reviews.extend(announcements.prior_review(v) for v in case.reviews)
    return message


def profile_message(profile: AgentProfile, now_presence: Presence) -> agent_desk_pb2.AgentProfile:
    skills = profile.skills
    return agent_desk_pb2.AgentProfile(
        agent_id=profile.agent_id,
        languages=sorted(skills.languages),
        platforms=sorted(skills.platforms),
        policy_areas=sorted(skills.policy_areas),
        seniority=skills.seniority or "",
        capacity=profile.capacity,
        presence=_PRESENCE_TO_PROTO[now_presence],
    )


class AgentDeskServicer(agent_desk_pb2_grpc.AgentDeskServicer):
    def __init__(
        self,
        desk: AgentDesk,
        verifier: TokenVerifier,
        *,
        poll_s: float,
        chats: ChatDesk | None = None,
    ) -> None:
        self._desk = desk
        self._verifier = verifier
        self._poll_s = poll_s
        # None when live help is not configured: the chat RPCs answer UNAVAILABLE.
        self._chats = chats

    async def RegisterAgent(  # noqa: N802 - name fixed by the service definition
        self, request: agent_desk_pb2.RegisterAgentRequest, context: Context
    ) -> agent_desk_pb2.AgentProfile:
        async def register() -> agent_desk_pb2.AgentProfile:
            given = request.profile
            skills = AgentSkills(
                languages=frozenset(v.strip().lower() for v in given.languages),
                platforms=frozenset(v.strip().lower() for v in given.platforms),
                policy_areas=frozenset(v.strip().lower() for v in given.policy_areas),
                seniority=given.seniority.strip() or None,
            )
            profile = await self._desk.register(
                principal(context, self._verifier), skills, given.capacity
            )
            return profile_message(profile, profile.presence)

        return await guarded(context, register)

    def _agent(self, context: Context) -> Principal:
        """The caller, who must be an agent: checked before the request is, so that nobody
        else learns anything of the desk's rules from its answers."""
        agent = principal(context, self._verifier)
        require_agent(agent)
        return agent

    async def SetPresence(  # noqa: N802
        self, request: agent_desk_pb2.SetPresenceRequest, context: Context
    ) -> agent_desk_pb2.SetPresenceResponse:
        async def set_presence() -> agent_desk_pb2.SetPresenceResponse:
            agent = self._agent(context)
            presence = _PRESENCE_FROM_PROTO.get(request.presence)
            if presence is None:
                raise ValidationFailed([FieldViolation("presence", "online, away or offline")])
            chosen = await self._desk.set_presence(agent, presence)
            return agent_desk_pb2.SetPresenceResponse(presence=_PRESENCE_TO_PROTO[chosen])

        return await guarded(context, set_presence)

    async def StreamCases(  # noqa: N802
        self, request: agent_desk_pb2.StreamCasesRequest, context: Context
    ) -> AsyncIterator[agent_desk_pb2.CaseOffer]:
        async def start() -> tuple[Principal, list[str] | None]:
            agent = principal(context, self._verifier)
            covered = self._desk.queues_for(agent, list(request.queues))
            await self._desk.stream_opened(agent)
            return agent, covered

        agent, covered = await guarded(context, start)
        stream_id = uuid.uuid4().hex
        renewed = time.monotonic()
        try:
            while True:
                offers = await guarded(
                    context, lambda: self._desk.next_offers(agent, covered, stream_id)
                )
                for offered in offers:
                    yield offer_message(offered.case, offered.offer)
                if time.monotonic() - renewed >= PRESENCE_RENEW_S:
                    await guarded(context, lambda: self._desk.keep_online(agent))
                    renewed = time.monotonic()
                await asyncio.sleep(self._poll_s)
        finally:
            # The agent went away: its reservations go back at once, not when they lapse.
            with contextlib.suppress(Exception):
                await self._desk.stream_closed(agent, stream_id)

    async def Claim(  # noqa: N802
        self, request: agent_desk_pb2.ClaimRequest, context: Context
    ) -> agent_desk_pb2.ClaimResponse:
        async def claim() -> agent_desk_pb2.ClaimResponse:
            review = await self._desk.claim_for_review(
                principal(context, self._verifier), request.appeal_id
            )
            case = review.case
            response = agent_desk_pb2.ClaimResponse(appeal_id=case.appeal_id)
            response.case.CopyFrom(offer_message(case))
            response.case.statement = review.statement
            response.case.attachments.extend(review.attachments)
            response.case.information.extend(review.information)
            assert case.hold is not None
            response.lease_expires_at.FromDatetime(case.hold.lease_expires_at)
            return response

        return await guarded(context, claim)

    async def Heartbeat(  # noqa: N802
        self, request: agent_desk_pb2.HeartbeatRequest, context: Context
    ) -> agent_desk_pb2.HeartbeatResponse:
        async def heartbeat() -> agent_desk_pb2.HeartbeatResponse:
            agent = principal(context, self._verifier)
            case = await self._desk.heartbeat(agent, request.appeal_id)
            response = agent_desk_pb2.HeartbeatResponse(appeal_id=case.appeal_id)
            assert case.hold is not None
            response.lease_expires_at.FromDatetime(case.hold.lease_expires_at)
            return response

        return await guarded(context, heartbeat)

    async def Decide(  # noqa: N802
        self, request: agent_desk_pb2.DecideRequest, context: Context
    ) -> agent_desk_pb2.DecideResponse:
        async def decide() -> agent_desk_pb2.DecideResponse:
            result = await self._desk.decide(
                principal(context, self._verifier),
                request.appeal_id,
                outcome=request.outcome,
                rationale=request.rationale,
                policy_cited=request.policy_cited,
                facts=request.facts,
            )
            return agent_desk_pb2.DecideResponse(
                appeal_id=result.case.appeal_id,
                outcome=result.verdict.outcome,  # type: ignore[arg-type]
                status=_STATUSES[result.status],
                applied_to=list(result.applied_to),
            )

        return await guarded(context, decide)

    async def Escalate(  # noqa: N802
        self, request: agent_desk_pb2.EscalateRequest, context: Context
    ) -> agent_desk_pb2.EscalateResponse:
        async def escalate() -> agent_desk_pb2.EscalateResponse:
            agent = self._agent(context)
            target = _TARGETS.get(request.target)
            if target is None:
                raise ValidationFailed([FieldViolation("target", ESCALATION_TARGETS_TEXT)])
            case = await self._desk.escalate(
                agent,
                request.appeal_id,
                target=target,
                reason=request.reason,
                question=request.question,
                body=request.body,
            )
            queue = "" if case.final else case.queue
            return agent_desk_pb2.EscalateResponse(appeal_id=case.appeal_id, queue=queue)

        return await guarded(context, escalate)

    async def Release(  # noqa: N802
        self, request: agent_desk_pb2.ReleaseRequest, context: Context
    ) -> agent_desk_pb2.ReleaseResponse:
        async def release() -> agent_desk_pb2.ReleaseResponse:
            await self._desk.release(
                principal(context, self._verifier), request.appeal_id, request.reason
            )
            return agent_desk_pb2.ReleaseResponse(appeal_id=request.appeal_id)

        return await guarded(context, release)

    async def Transfer(  # noqa: N802
        self, request: agent_desk_pb2.TransferRequest, context: Context
    ) -> agent_desk_pb2.TransferResponse:
        async def transfer() -> agent_desk_pb2.TransferResponse:
            case = await self._desk.transfer(
                principal(context, self._verifier),
                request.appeal_id,
                to_queue=request.to_queue,
                reason=request.reason,
            )
            return agent_desk_pb2.TransferResponse(appeal_id=case.appeal_id, queue=case.queue)

        return await guarded(context, transfer)

    async def RequestInformation(  # noqa: N802
        self, request: agent_desk_pb2.RequestInformationRequest, context: Context
    ) -> agent_desk_pb2.RequestInformationResponse:
        async def ask() -> agent_desk_pb2.RequestInformationResponse:
            case = await self._desk.request_information(
                principal(context, self._verifier), request.appeal_id, question=request.question
            )
            response = agent_desk_pb2.RequestInformationResponse(appeal_id=case.appeal_id)
            if case.info_request is not None:
                response.respond_by.FromDatetime(case.info_request.respond_by)
            return response

        return await guarded(context, ask)

    # --- live-help chats (services.routing.chats) --------------------------------------------

    async def _chat_desk(self, context: Context) -> ChatDesk:
        if self._chats is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "live help is not configured")
        assert self._chats is not None
        return self._chats

    async def StreamChats(  # noqa: N802
        self, request: agent_desk_pb2.StreamChatsRequest, context: Context
    ) -> AsyncIterator[agent_desk_pb2.ChatOffer]:
        chats = await self._chat_desk(context)

        async def start() -> Principal:
            agent = self._agent(context)
            await self._desk.keep_online(agent)
            return agent

        agent = await guarded(context, start)
        # What this stream sent: chat id -> the reservation's expiry (each sent once).
        sent: dict[str, datetime] = {}
        renewed = time.monotonic()
        try:
            while True:
                offers = await guarded(context, lambda: chats.offers_for(agent, sent))
                for offered in offers:
                    yield chat_offer_message(offered.chat, offered)
                if time.monotonic() - renewed >= PRESENCE_RENEW_S:
                    await guarded(context, lambda: self._desk.keep_online(agent))
                    renewed = time.monotonic()
                await asyncio.sleep(self._poll_s)
        finally:
            chats.stream_closed(agent, sent)

    async def AcceptChat(  # noqa: N802
        self, request: agent_desk_pb2.AcceptChatRequest, context: Context
    ) -> agent_desk_pb2.AcceptChatResponse:
        chats = await self._chat_desk(context)

        async def accept() -> agent_desk_pb2.AcceptChatResponse:
            accepted = await chats.accept(self._agent(context), request.chat_id)
            return agent_desk_pb2.AcceptChatResponse(
                chat=chat_offer_message(accepted.chat), case_claimed=accepted.case_claimed
            )

        return await guarded(context, accept)

    async def HandOverChat(  # noqa: N802
        self, request: agent_desk_pb2.HandOverChatRequest, context: Context
    ) -> agent_desk_pb2.HandOverChatResponse:
        chats = await self._chat_desk(context)

        async def hand_over() -> agent_desk_pb2.HandOverChatResponse:
            await chats.hand_over(
                self._agent(context), request.chat_id, request.reason, request.to_agent_id
            )
            return agent_desk_pb2.HandOverChatResponse(chat_id=request.chat_id)

        return await guarded(context, hand_over)

    async def CloseChat(  # noqa: N802
        self, request: agent_desk_pb2.CloseChatRequest, context: Context
    ) -> agent_desk_pb2.CloseChatResponse:
        chats = await self._chat_desk(context)

        async def close() -> agent_desk_pb2.CloseChatResponse:
            await chats.close(self._agent(context), request.chat_id, request.resolution)
            return agent_desk_pb2.CloseChatResponse(chat_id=request.chat_id)

        return await guarded(context, close)

    async def ChatSession(  # noqa: N802
        self, request_iterator: AsyncIterator[agent_desk_pb2.ChatClientFrame], context: Context
    ) -> AsyncIterator[agent_desk_pb2.ChatServerFrame]:
        chats = await self._chat_desk(context)

        async def join() -> ChatSession:
            # The first frame is taken off the stream before the caller is checked (and read
            # only after): a refusal sent while the client is still writing that frame ends the
            # call INTERNAL on the client ("Failed execute_batch": its write fails) instead of
            # with the refusal. A client that writes nothing is answered after a short wait.
            try:
                first = await asyncio.wait_for(anext(request_iterator, None), FIRST_FRAME_WAIT_S)
            except TimeoutError:
                first = None
            agent = self._agent(context)
            if first is None or first.WhichOneof("frame") != "join":
                raise ValidationFailed(
                    [FieldViolation("join", "the first frame must be join (chat_id, after_seq)")]
                )
            return chats.session(agent, first.join.chat_id, first.join.after_seq)

        session = await guarded(context, join)
        for item in await guarded(context, session.open):
            yield server_frame(item)
        if session.finished():
            return
        # The client's frames are relayed as they come, while help is long-polled for what the
        # person says; a relay that fails (help refused a message) ends the stream with its error.
        relaying = asyncio.create_task(_relay(session, request_iterator))
        polling: asyncio.Task[list[SessionItem]] | None = None
        try:
            while True:
                if polling is None:
                    polling = asyncio.create_task(session.poll())
                waiting: set[asyncio.Task[Any]] = {polling}
                if not relaying.done():
                    waiting.add(relaying)
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if relaying in done and not relaying.cancelled() and relaying.exception():
                    await guarded(context, functools.partial(_outcome, relaying))
                if polling in done:
                    finished, polling = polling, None
                    for item in await guarded(context, functools.partial(_outcome, finished)):
                        yield server_frame(item)
                    if session.finished():
                        return
        finally:
            # The client went away (or the chat ended): stop both sides at once.
            for task in (relaying, polling):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task


async def _outcome(task: asyncio.Task[T]) -> T:
    return await task


async def _relay(
    session: ChatSession, frames: AsyncIterator[agent_desk_pb2.ChatClientFrame]
) -> None:
    """The agent's frames after join, relayed to help in the order they came."""
    async for frame in frames:
        kind = frame.WhichOneof("frame")
        if kind == "send":
            await session.send(frame.send.client_id, frame.send.text)
        elif kind == "typing":
            await session.typing(frame.typing)
        elif kind == "read_up_to":
            await session.read_up_to(frame.read_up_to)
        elif kind == "join":
            raise ValidationFailed([FieldViolation("join", "only the first frame joins")])


_ENDED = {
    "closed": chat_pb2.CHAT_EVENT_KIND_CLOSED,
    "handed_over": chat_pb2.CHAT_EVENT_KIND_HANDED_OVER,
}


def chat_offer_message(
    chat: WaitingChat, offered: OfferedChat | None = None
) -> agent_desk_pb2.ChatOffer:
    message = agent_desk_pb2.ChatOffer(
        chat_id=chat.chat_id,
        platform=vocabulary.PLATFORMS.get(chat.platform, 0),  # type: ignore[arg-type]
        topic=vocabulary.CHAT_TOPICS.get(chat.topic, 0),  # type: ignore[arg-type]
        language=chat.language,
        appeal_id=chat.appeal_id,
    )
    if chat.requested_at is not None:
        message.requested_at.FromDatetime(chat.requested_at)
    if chat.first_answer_due_at is not None:
        message.first_answer_due_at.FromDatetime(chat.first_answer_due_at)
    if offered is not None:
        message.offer_expires_at.FromDatetime(offered.expires_at)
    return message


def server_frame(item: SessionItem) -> agent_desk_pb2.ChatServerFrame:
    kind, value = item
    if kind == "ended":
        return agent_desk_pb2.ChatServerFrame(ended=_ENDED[value])
    if kind == "receipts":
        return agent_desk_pb2.ChatServerFrame(
            receipts=chat_pb2.ChatReceipts(
                person_delivered=int(value.get("person_delivered") or 0),
                person_read=int(value.get("person_read") or 0),
                agent_delivered=int(value.get("agent_delivered") or 0),
                agent_read=int(value.get("agent_read") or 0),
                person_typing=bool(value.get("person_typing")),
                agent_typing=bool(value.get("agent_typing")),
            )
        )
    message = chat_pb2.ChatMessage(
        chat_id=str(value.get("chat_id", "")),
        seq=int(value["seq"]),
        party=vocabulary.CHAT_PARTIES.get(str(value.get("party")), 0),  # type: ignore[arg-type]
        text=str(value.get("text", "")),
        client_id=str(value.get("client_id") or ""),
        agent_id=str(value.get("agent_id") or ""),
        attachments=[
            appeal_pb2.Attachment(
                media_type=str(a.get("media_type", "")),
                uri=str(a.get("uri", "")),
                size_bytes=int(a.get("size_bytes") or 0),
            )
            for a in value.get("attachments") or []
        ],
    )
    sent_at = parse_time(value.get("sent_at"))
    if sent_at is not None:
        message.sent_at.FromDatetime(sent_at)
    return agent_desk_pb2.ChatServerFrame(message=message)


def register(servicer: AgentDeskServicer) -> Registration:
    def add(server: grpc.aio.Server) -> None:
        agent_desk_pb2_grpc.add_AgentDeskServicer_to_server(servicer, server)

    return Registration(agent_desk_pb2.DESCRIPTOR.services_by_name["AgentDesk"].full_name, add)

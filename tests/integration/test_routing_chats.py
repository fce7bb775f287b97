"""Live-help chats on the agent desk, against the real broker and store and the real AgentDesk
gRPC server: queueing from help.chats.v1, offers by skills, presence and capacity, exclusive
accepts, the relayed chat session, hand-over and close.

Help's internal chat API is the test stand-in ``tests.support.help_relay`` (the real help
service's end-to-end tests come with it); it publishes the real ChatEvents on the real broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from appeals import topics
from appeals.v1 import agent_desk_pb2, agent_desk_pb2_grpc, appeal_pb2, chat_pb2
from appeals_devstack import devkeys
from appeals_devstack.processes import free_port
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.auth import TokenVerifier
from appeals_runtime.grpc_server import GrpcServer
from appeals_runtime.intake_client import ServiceToken
from appeals_runtime.kafka.consumer import ConsumerRunner, Handler, InboundMessage
from appeals_runtime.kafka.producer import EventProducer
from services.routing import grpc_api
from services.routing import main as routing_main
from services.routing.chats import ACTIVE, WAITING, ChatStore, chat_handler
from services.routing.help_client import HelpChats
from tests.support.desk import Clock, build_routing, route, submission
from tests.support.help_relay import HelpRelay, help_relay
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

OFFER_TTL = timedelta(seconds=20)
Metadata = tuple[tuple[str, str]]


@dataclass
class Keys:
    signing_key: Path
    verifier: TokenVerifier

    def agent(self, name: str) -> Metadata:
        token = devkeys.mint_token(self.signing_key, role="agent", subject=name, queues=["*"])
        return (("authorization", f"Bearer {token}"),)


@dataclass
class Instance:
    stub: agent_desk_pb2_grpc.AgentDeskStub
    parts: routing_main.RoutingParts
    keys: Keys


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    signing_key, jwks = devkeys.ensure(tmp_path)
    return Keys(signing_key, devkeys.dev_verifier(jwks))


@pytest.fixture
async def relay(producer: EventProducer, keys: Keys) -> AsyncIterator[tuple[HelpRelay, str]]:
    async with help_relay(producer, keys.verifier) as served:
        yield served


def only_chats_of(relay: HelpRelay, handler: Handler) -> Handler:
    """The topic is shared by the whole session: this test's routing takes its own chats only
    (a fresh group reads the topic from its start)."""

    async def handle(message: InboundMessage[Any]) -> None:
        if message.payload.chat_id in relay.chats:
            await handler(message)

    return handle


@contextlib.asynccontextmanager
async def routing_instance(
    infra: Infrastructure,
    db: store.Database,
    producer: EventProducer,
    keys: Keys,
    relay: tuple[HelpRelay, str],
    tmp_path: Path,
    *,
    capacity: int = 3,
    chats_configured: bool = True,
) -> AsyncIterator[Instance]:
    """A routing instance with its chat consumer and the AgentDesk server on a free port."""
    clock = Clock()
    parts = await build_routing(db, producer, clock)
    token_file = tmp_path / f"routing-chat-relay-{uuid.uuid4().hex[:6]}.jwt"
    token_file.write_text(
        devkeys.mint_token(
            keys.signing_key, role="service", subject="routing", scopes=["chats:relay"]
        )
    )
    helper, base_url = relay
    async with httpx.AsyncClient() as http:
        chats = None
        if chats_configured:
            chats = routing_main.assemble_chats(
                parts,
                db,
                HelpChats(http, base_url, ServiceToken(token_file)),
                capacity=capacity,
                offer_ttl=OFFER_TTL,
                clock=clock,
            )
        runner = ConsumerRunner(
            name="routing-chats-test",
            bootstrap_servers=infra.kafka_bootstrap_servers,
            group_id=f"routing-chats-{uuid.uuid4().hex[:8]}",
            topics=[topics.HELP_CHATS],
            handler=only_chats_of(helper, chat_handler(ChatStore(db))),
            producer=producer,
        )
        port = free_port()
        servicer = grpc_api.AgentDeskServicer(parts.desk, keys.verifier, poll_s=0.1, chats=chats)
        server = GrpcServer(grpc_api.register(servicer), host="127.0.0.1", port=port)
        consuming = asyncio.create_task(runner.run())
        serving = asyncio.create_task(server.run())
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                yield Instance(agent_desk_pb2_grpc.AgentDeskStub(channel), parts, keys)
        finally:
            await server.stop()
            await runner.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(serving, 10)
            await consuming


async def register(
    stub: agent_desk_pb2_grpc.AgentDeskStub,
    md: Metadata,
    *,
    languages: tuple[str, ...] = ("en",),
    platforms: tuple[str, ...] = ("instagram",),
) -> None:
    await stub.RegisterAgent(
        agent_desk_pb2.RegisterAgentRequest(
            profile=agent_desk_pb2.AgentProfile(
                languages=list(languages), platforms=list(platforms), policy_areas=["*"],
                seniority="senior", capacity=5,
            )
        ),
        metadata=md,
    )  # fmt: skip


async def until_stored(db: store.Database, collection: str, chat_id: str, present: bool) -> None:
    async def there() -> bool:
        return (await db[collection].find_one({"_id": chat_id}) is not None) == present

    where = f"chat {chat_id} {'in' if present else 'out of'} {collection}"
    await eventually(there, where, 20)


async def offers_during(
    stub: agent_desk_pb2_grpc.AgentDeskStub, md: Metadata, seconds: float
) -> list[agent_desk_pb2.ChatOffer]:
    call = stub.StreamChats(agent_desk_pb2.StreamChatsRequest(), metadata=md)
    got: list[agent_desk_pb2.ChatOffer] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            async for offer in call:
                got.append(offer)
    call.cancel()
    return got


async def offer_of(
    stub: agent_desk_pb2_grpc.AgentDeskStub, md: Metadata, chat_id: str, timeout_s: float = 15
) -> agent_desk_pb2.ChatOffer:
    call = stub.StreamChats(agent_desk_pb2.StreamChatsRequest(), metadata=md)
    try:
        async with asyncio.timeout(timeout_s):
            async for offer in call:
                if offer.chat_id == chat_id:
                    found: agent_desk_pb2.ChatOffer = offer
                    return found
    finally:
        call.cancel()
    raise AssertionError("the stream ended")


async def frames_until(
    call: Any, done: Callable[[agent_desk_pb2.ChatServerFrame], bool], timeout_s: float = 15
) -> list[agent_desk_pb2.ChatServerFrame]:
    got: list[agent_desk_pb2.ChatServerFrame] = []
    async with asyncio.timeout(timeout_s):
        while True:
            frame = await call.read()
            assert frame is not grpc.aio.EOF, f"the session ended after {got}"
            got.append(frame)
            if done(frame):
                return got


def join(chat_id: str, after: int = 0) -> agent_desk_pb2.ChatClientFrame:
    return agent_desk_pb2.ChatClientFrame(
        join=agent_desk_pb2.ChatJoin(chat_id=chat_id, after_seq=after)
    )


def message_seqs(frames: list[agent_desk_pb2.ChatServerFrame]) -> list[int]:
    return [f.message.seq for f in frames if f.WhichOneof("frame") == "message"]


def is_message(text: str) -> Callable[[agent_desk_pb2.ChatServerFrame], bool]:
    return lambda f: f.WhichOneof("frame") == "message" and f.message.text == text


def has_receipts(check: Callable[[chat_pb2.ChatReceipts], bool]) -> Callable[[Any], bool]:
    return lambda f: f.WhichOneof("frame") == "receipts" and check(f.receipts)


@pytest.fixture
async def routing(
    infra: Infrastructure,
    db: store.Database,
    producer: EventProducer,
    keys: Keys,
    relay: tuple[HelpRelay, str],
    tmp_path: Path,
) -> AsyncIterator[Instance]:
    async with routing_instance(infra, db, producer, keys, relay, tmp_path) as instance:
        yield instance


async def test_a_waiting_chat_is_offered_by_skills_presence_and_capacity(
    infra: Infrastructure,
    db: store.Database,
    producer: EventProducer,
    keys: Keys,
    relay: tuple[HelpRelay, str],
    tmp_path: Path,
) -> None:
    helper, _ = relay
    async with routing_instance(infra, db, producer, keys, relay, tmp_path, capacity=1) as instance:
        stub = instance.stub
        alice, german, facebook, away, full = (
            keys.agent(n) for n in ("alice", "gerd", "fay", "awa", "fuller")
        )
        await register(stub, alice)
        await register(stub, german, languages=("de",))
        await register(stub, facebook, platforms=("facebook",))
        await register(stub, away)
        await register(stub, full)
        await stub.SetPresence(
            agent_desk_pb2.SetPresenceRequest(presence=agent_desk_pb2.PRESENCE_AWAY), metadata=away
        )
        # "fuller" holds one chat already: at its capacity of 1.
        held = await helper.open()
        await stub.AcceptChat(agent_desk_pb2.AcceptChatRequest(chat_id=held), metadata=full)
        chat_id = await helper.open(first_message="I cannot upload videos")
        await until_stored(db, WAITING, chat_id, True)

        # Nobody fitting has it reserved yet: the others are simply never offered it.
        seen = await asyncio.gather(
            *(offers_during(stub, md, 2.0) for md in (german, facebook, away, full))
        )
        assert all(chat_id not in {o.chat_id for o in offers} for offers in seen), seen

        offer = await offer_of(stub, alice, chat_id)
        assert offer.platform == appeal_pb2.PLATFORM_INSTAGRAM
        assert offer.topic == chat_pb2.CHAT_TOPIC_FEATURE_HELP and offer.language == "en"
        assert offer.HasField("offer_expires_at") and offer.HasField("first_answer_due_at")
        # The chat "fuller" holds is active: never offered again.
        assert held not in {o.chat_id for o in await offers_during(stub, alice, 1.5)}


async def test_the_first_accept_wins_and_takes_the_chats_case(
    routing: Instance, relay: tuple[HelpRelay, str], db: store.Database
) -> None:
    helper, _ = relay
    stub = routing.stub
    alice, bob = routing.keys.agent("alice"), routing.keys.agent("bob")
    await register(stub, alice)
    await register(stub, bob)
    appeal_id = await route(routing.parts, submission(kind=appeal_pb2.SUBJECT_KIND_ACCOUNT))
    chat_id = await helper.open(topic="account_access", appeal_id=appeal_id)

    accepted = await stub.AcceptChat(
        agent_desk_pb2.AcceptChatRequest(chat_id=chat_id), metadata=alice
    )
    assert accepted.case_claimed and accepted.chat.appeal_id == appeal_id
    assert accepted.chat.topic == chat_pb2.CHAT_TOPIC_ACCOUNT_ACCESS
    assert helper.chats[chat_id].agent_id == "alice"
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await stub.AcceptChat(agent_desk_pb2.AcceptChatRequest(chat_id=chat_id), metadata=bob)
    assert taken.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "chat_taken" in (taken.value.details() or "")
    # Accepting again is idempotent; the AGENT_JOINED event read later changes nothing.
    again = await stub.AcceptChat(agent_desk_pb2.AcceptChatRequest(chat_id=chat_id), metadata=alice)
    assert again.case_claimed
    await until_stored(db, ACTIVE, chat_id, True)
    await until_stored(db, WAITING, chat_id, False)

    # A chat whose appeal routing does not have: accepted, without the case.
    other = await helper.open(topic="account_access", appeal_id="ap_unknown")
    accepted = await stub.AcceptChat(agent_desk_pb2.AcceptChatRequest(chat_id=other), metadata=bob)
    assert not accepted.case_claimed


async def test_the_session_relays_both_ways_in_order_with_receipts_and_resumes(
    routing: Instance, relay: tuple[HelpRelay, str]
) -> None:
    helper, _ = relay
    stub = routing.stub
    alice = routing.keys.agent("alice")
    await register(stub, alice)
    chat_id = await helper.open(first_message="I am locked out")
    await stub.AcceptChat(agent_desk_pb2.AcceptChatRequest(chat_id=chat_id), metadata=alice)

    call = stub.ChatSession(metadata=alice)
    await call.write(join(chat_id))
    opening = await frames_until(call, lambda f: f.WhichOneof("frame") == "receipts")
    assert [f.message.text for f in opening if f.WhichOneof("frame") == "message"] == [
        "I am locked out",
        "An agent joined",
    ]
    assert message_seqs(opening) == [1, 2]
    assert opening[0].message.party == chat_pb2.CHAT_PARTY_PERSON

    send = agent_desk_pb2.ChatSend(client_id="c-1", text="Hello, I can help")
    await call.write(agent_desk_pb2.ChatClientFrame(send=send))
    mine = await frames_until(call, is_message("Hello, I can help"))
    assert mine[-1].message.seq == 3 and mine[-1].message.party == chat_pb2.CHAT_PARTY_AGENT
    assert mine[-1].message.agent_id == "alice" and mine[-1].message.client_id == "c-1"
    # Resent after a reconnect: stored once.
    await call.write(agent_desk_pb2.ChatClientFrame(send=send))

    await helper.person_typing(chat_id)
    await frames_until(call, has_receipts(lambda r: r.person_typing))
    await helper.person_says(chat_id, "Thanks!")
    theirs = await frames_until(call, is_message("Thanks!"))
    assert theirs[-1].message.seq == 4
    await helper.person_reads(chat_id, 3)
    await frames_until(call, has_receipts(lambda r: r.person_read == 3))
    await call.write(agent_desk_pb2.ChatClientFrame(typing=True))
    await frames_until(call, has_receipts(lambda r: r.agent_typing))
    await call.write(agent_desk_pb2.ChatClientFrame(read_up_to=4))
    await frames_until(call, has_receipts(lambda r: r.agent_read == 4))
    call.cancel()

    assert [m["text"] for m in helper.chats[chat_id].messages].count("Hello, I can help") == 1
    rejoined = stub.ChatSession(metadata=alice)
    await rejoined.write(join(chat_id, after=2))
    resumed = await frames_until(rejoined, lambda f: f.WhichOneof("frame") == "receipts")
    assert message_seqs(resumed) == [3, 4]
    rejoined.cancel()


async def test_only_the_assigned_agent_joins_and_the_first_frame_must_join(
    routing: Instance, relay: tuple[HelpRelay, str]
) -> None:
    helper, _ = relay
    stub = routing.stub
    alice, mallory = routing.keys.agent("alice"), routing.keys.agent("mallory")
    await register(stub, alice)
    chat_id = await helper.open()
    await stub.AcceptChat(agent_desk_pb2.AcceptChatRequest(chat_id=chat_id), metadata=alice)

    intruder = stub.ChatSession(metadata=mallory)
    await intruder.write(join(chat_id))
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await intruder.read()
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

    malformed = stub.ChatSession(metadata=alice)
    await malformed.write(
        agent_desk_pb2.ChatClientFrame(send=agent_desk_pb2.ChatSend(client_id="x", text="hi"))
    )
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await malformed.read()
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_hand_over_queues_the_chat_again_and_a_close_removes_it(
    routing: Instance, relay: tuple[HelpRelay, str], db: store.Database
) -> None:
    helper, _ = relay
    stub = routing.stub
    alice, bob = routing.keys.agent("alice"), routing.keys.agent("bob")
    await register(stub, alice)
    await register(stub, bob)
    chat_id = await helper.open()
    await offer_of(stub, alice, chat_id)
    await stub.AcceptChat(agent_desk_pb2.AcceptChatRequest(chat_id=chat_id), metadata=alice)
    session = stub.ChatSession(metadata=alice)
    await session.write(join(chat_id))
    await frames_until(session, lambda f: f.WhichOneof("frame") == "receipts")

    await stub.HandOverChat(
        agent_desk_pb2.HandOverChatRequest(chat_id=chat_id, reason="end of shift"),
        metadata=alice,
    )
    ended = await frames_until(session, lambda f: f.WhichOneof("frame") == "ended")
    assert ended[-1].ended == chat_pb2.CHAT_EVENT_KIND_HANDED_OVER
    assert await session.read() is grpc.aio.EOF
    await until_stored(db, WAITING, chat_id, True)
    offered = await offer_of(stub, bob, chat_id)
    assert offered.chat_id == chat_id
    await stub.AcceptChat(agent_desk_pb2.AcceptChatRequest(chat_id=chat_id), metadata=bob)

    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await stub.CloseChat(
            agent_desk_pb2.CloseChatRequest(chat_id=chat_id, resolution="Not Snake"),
            metadata=bob,
        )
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "resolution" in (invalid.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as not_yours:
        await stub.CloseChat(
            agent_desk_pb2.CloseChatRequest(chat_id=chat_id, resolution="explained"),
            metadata=alice,
        )
    assert not_yours.value.code() == grpc.StatusCode.PERMISSION_DENIED

    bobs = stub.ChatSession(metadata=bob)
    await bobs.write(join(chat_id))
    await frames_until(bobs, lambda f: f.WhichOneof("frame") == "receipts")
    await stub.CloseChat(
        agent_desk_pb2.CloseChatRequest(chat_id=chat_id, resolution="explained"), metadata=bob
    )
    closed = await frames_until(bobs, lambda f: f.WhichOneof("frame") == "ended")
    assert closed[-1].ended == chat_pb2.CHAT_EVENT_KIND_CLOSED
    assert helper.chats[chat_id].resolution == "explained"
    kinds = [e.kind for e in helper.published if e.chat_id == chat_id]
    assert kinds[-1] == chat_pb2.CHAT_EVENT_KIND_CLOSED
    await asyncio.sleep(1)  # the CLOSED event read back changes nothing more
    await until_stored(db, WAITING, chat_id, False)
    await until_stored(db, ACTIVE, chat_id, False)


async def test_a_restarted_routing_still_offers_the_waiting_chat(
    infra: Infrastructure,
    db: store.Database,
    producer: EventProducer,
    keys: Keys,
    relay: tuple[HelpRelay, str],
    tmp_path: Path,
) -> None:
    helper, _ = relay
    async with routing_instance(infra, db, producer, keys, relay, tmp_path):
        chat_id = await helper.open()
        await until_stored(db, WAITING, chat_id, True)
    async with routing_instance(infra, db, producer, keys, relay, tmp_path) as restarted:
        alice = keys.agent("alice")
        await register(restarted.stub, alice)
        assert (await offer_of(restarted.stub, alice, chat_id)).chat_id == chat_id


async def test_without_live_help_the_chat_rpcs_are_unavailable(
    infra: Infrastructure,
    db: store.Database,
    producer: EventProducer,
    keys: Keys,
    relay: tuple[HelpRelay, str],
    tmp_path: Path,
) -> None:
    async with routing_instance(
        infra, db, producer, keys, relay, tmp_path, chats_configured=False
    ) as instance:
        with pytest.raises(grpc.aio.AioRpcError) as unavailable:
            await instance.stub.AcceptChat(
                agent_desk_pb2.AcceptChatRequest(chat_id="chat_x"), metadata=keys.agent("alice")
            )
    assert unavailable.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "not configured" in (unavailable.value.details() or "")

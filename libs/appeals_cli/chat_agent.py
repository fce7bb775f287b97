"""The agent's side of live-help chats on the agent desk, for `appeals demo`'s simulated agents
(automated assistants: their decisions never count as human review).

An agent streams the chats offered to it (``StreamChats``: waiting chats in the languages and on
the platforms it registered), accepts each (``AcceptChat``), reads and answers the person in a
``ChatSession`` in the chat's language, and then:

* account access: the chat's appeal is decided by the demo rule (:func:`chat_verdict`: restore
  access after an automated decision or a compromised-account lock, uphold a person's decision),
  through ``Decide`` with the facts as for any case, and the chat is closed with the matching
  resolution (``access_restored``, ``upheld``);
* feature help: the agent explains and closes it as ``explained``.

Accepting an account-access chat also claims its case when routing holds it and nobody else
does; otherwise the agent claims it when the chat reaches the decision. When a case stream has
it (the same agent's or a colleague's), that reviewer recognises a chat's appeal
(:class:`ChatBoard`), keeps its claim until the chat has been talked through, then decides it
by the same rule, and the agent closes the chat once that decision is known."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass

import grpc

from appeals import vocabulary
from appeals.v1 import agent_desk_pb2, agent_desk_pb2_grpc, appeal_pb2, chat_pb2
from appeals_cli import reviewer

# How long a reviewer holding a chat's case waits for the chat to reach the decision, and an
# agent for a colleague's decision on it.
DECISION_WAIT_S = 120.0
# How long a reviewer holding the appeal of a chatting account waits for its chat to turn up.
UNKNOWN_CHAT_WAIT_S = 30.0
# How long an agent waits for the person to say something, and for its own message to be stored.
PERSON_WAIT_S = 60.0
STORED_WAIT_S = 30.0
# Locks the demo rule lifts once the holder proved control of the account.
RESTORABLE_POLICIES = frozenset({"compromised_account"})

RESOLUTIONS = {
    "overturned": "access_restored",
    "partially_overturned": "access_partly_restored",
    "upheld": "upheld",
}
# Closed before a decision was known: the person hears of it like any appellant.
IN_REVIEW = "appeal_in_review"
EXPLAINED = "explained"
NO_RESPONSE = "no_response"

# What an agent writes, by language (ISO 639-1; English where there is none). {agent} is the
# agent's name.
GREETINGS: dict[str, dict[str, str]] = {
    "account_access": {
        "en": "Hello, this is {agent}. I can see the restriction on your account and the appeal "
        "opened for it. Do you still have the phone number and email address on file?",
        "de": "Hallo, hier ist {agent}. Ich sehe die Sperre Ihres Kontos und den Einspruch dazu. "
        "Haben Sie noch Zugriff auf die hinterlegte Telefonnummer und E-Mail-Adresse?",
        "pt": "Olá, aqui é {agent}. Vejo a restrição na sua conta e o recurso aberto para ela. "
        "Você ainda tem o telefone e o e-mail cadastrados?",
        "es": "Hola, soy {agent}. Veo la restricción de tu cuenta y la apelación abierta. "
        "¿Sigues teniendo el teléfono y el correo registrados?",
        "fr": "Bonjour, ici {agent}. Je vois la restriction de votre compte et l'appel ouvert. "
        "Avez-vous toujours le numéro et l'adresse e-mail enregistrés ?",
        "ar": "مرحبًا، معك {agent}. أرى القيد على حسابك والطعن المفتوح بشأنه. "
        "هل ما زال لديك رقم الهاتف والبريد الإلكتروني المسجلان؟",
    },
    "feature_help": {
        "en": "Hello, this is {agent}. I'm sorry it doesn't work. What happens when you try?",
        "de": "Hallo, hier ist {agent}. Schade, dass es nicht klappt. Was passiert, wenn Sie es "
        "versuchen?",
        "pt": "Olá, aqui é {agent}. Sinto muito que não funcione. O que acontece quando você "
        "tenta?",
        "es": "Hola, soy {agent}. Siento que no funcione. ¿Qué pasa cuando lo intentas?",
        "fr": "Bonjour, ici {agent}. Désolé que cela ne marche pas. Que se passe-t-il quand vous "
        "essayez ?",
        "ar": "مرحبًا، معك {agent}. يؤسفني أنها لا تعمل. ماذا يحدث عندما تحاول؟",
    },
}
CLOSING: dict[str, dict[str, str]] = {
    "access_restored": {
        "en": "Thank you. You proved that the account is yours: access is restored, and you "
        "will also get the decision in a message.",
        "de": "Danke. Sie haben gezeigt, dass das Konto Ihnen gehört: Der Zugang ist wieder "
        "frei, und Sie erhalten die Entscheidung auch als Nachricht.",
        "pt": "Obrigado. Você mostrou que a conta é sua: o acesso foi restaurado, e você também "
        "receberá a decisão por mensagem.",
        "es": "Gracias. Has demostrado que la cuenta es tuya: el acceso está restablecido y "
        "también recibirás la decisión en un mensaje.",
        "fr": "Merci. Vous avez montré que le compte est à vous : l'accès est rétabli, et vous "
        "recevrez aussi la décision par message.",
        "ar": "شكرًا. لقد أثبت أن الحساب لك: تمت استعادة الوصول، وستصلك رسالة بالقرار أيضًا.",
    },
    "access_partly_restored": {
        "en": "Thank you. Part of the restriction is lifted; the decision, with its reasons, "
        "follows in a message.",
        "de": "Danke. Ein Teil der Sperre ist aufgehoben; die Entscheidung mit Begründung folgt "
        "als Nachricht.",
        "pt": "Obrigado. Parte da restrição foi retirada; a decisão, com os motivos, segue por "
        "mensagem.",
        "es": "Gracias. Parte de la restricción se ha levantado; la decisión, con sus motivos, "
        "llegará en un mensaje.",
        "fr": "Merci. Une partie de la restriction est levée ; la décision motivée suit par "
        "message.",
        "ar": "شكرًا. رُفع جزء من القيد؛ وستصلك رسالة بالقرار وأسبابه.",
    },
    "upheld": {
        "en": "Thank you. I reviewed it: the decision stands. A message with the reasons and how "
        "to take it further is on its way.",
        "de": "Danke. Ich habe es geprüft: Die Entscheidung bleibt bestehen. Eine Nachricht mit "
        "der Begründung und den weiteren Möglichkeiten ist unterwegs.",
        "pt": "Obrigado. Eu analisei: a decisão foi mantida. Uma mensagem com os motivos e os "
        "próximos passos está a caminho.",
        "es": "Gracias. Lo he revisado: la decisión se mantiene. Te llegará un mensaje con los "
        "motivos y cómo recurrirla.",
        "fr": "Merci. J'ai vérifié : la décision est maintenue. Un message avec les motifs et "
        "les recours possibles arrive.",
        "ar": "شكرًا. راجعت الأمر: يبقى القرار كما هو. ستصلك رسالة بالأسباب وبطرق الطعن.",
    },
    IN_REVIEW: {
        "en": "Thank you. Your appeal is with a reviewer now; you will get the decision in a "
        "message.",
        "de": "Danke. Ihr Einspruch liegt jetzt bei einer Prüferin; Sie erhalten die "
        "Entscheidung als Nachricht.",
        "pt": "Obrigado. Seu recurso está com um revisor; você receberá a decisão por mensagem.",
        "es": "Gracias. Tu apelación está con un revisor; recibirás la decisión en un mensaje.",
        "fr": "Merci. Votre appel est chez un examinateur ; vous recevrez la décision par message.",
        "ar": "شكرًا. طعنك الآن لدى مراجع؛ وستصلك رسالة بالقرار.",
    },
    EXPLAINED: {
        "en": "Please update the app, then turn the feature off and on again in Settings; it "
        "works again within a few minutes. I'll close this chat now.",
        "de": "Bitte aktualisieren Sie die App und schalten Sie die Funktion in den "
        "Einstellungen aus und wieder ein; nach wenigen Minuten geht es wieder. Ich schließe "
        "den Chat jetzt.",
        "pt": "Atualize o aplicativo e desligue e ligue o recurso nas Configurações; volta a "
        "funcionar em poucos minutos. Vou encerrar este chat agora.",
        "es": "Actualiza la app y desactiva y vuelve a activar la función en Ajustes; volverá a "
        "funcionar en unos minutos. Cierro este chat ahora.",
        "fr": "Mettez l'application à jour, puis désactivez et réactivez la fonction dans les "
        "Réglages ; elle remarche en quelques minutes. Je ferme ce chat.",
        "ar": "حدّث التطبيق، ثم أوقف الميزة وشغّلها من الإعدادات؛ ستعمل خلال دقائق. "
        "سأغلق هذه المحادثة الآن.",
    },
}
CLOSING[NO_RESPONSE] = CLOSING[EXPLAINED]


def agent_says(table: dict[str, dict[str, str]], key: str, language: str, agent: str) -> str:
    """What an agent writes for ``key`` in ``language`` (English when there is none)."""
    said = table[key]
    return said.get(language, said["en"]).format(agent=agent)


def chat_verdict(case: agent_desk_pb2.CaseOffer, chat_id: str) -> reviewer.Verdict:
    """The demo rule for an appeal opened from a chat, whose appellant proved control of the
    account with a code sent to the contact on file: a compromised-account lock, or any
    automated decision, is lifted; a person's decision on the account's conduct stands. For
    demos and tests only: real decisions are made by people."""
    decision = case.facts.decision
    where = f"in live chat {chat_id}" if chat_id else "with live help"
    facts = (
        f"{reviewer.case_facts(case)} The holder proved control of the account with a one-time "
        f"code sent to the contact on file and talked it through {where}."
    )
    if decision.policy in RESTORABLE_POLICIES or decision.automated:
        return reviewer.Verdict(
            appeal_pb2.OUTCOME_OVERTURNED,
            "The holder showed they control the account; the restriction is lifted.",
            decision.policy,
            facts,
        )
    return reviewer.Verdict(
        appeal_pb2.OUTCOME_UPHELD,
        f"A reviewer's decision under our {decision.policy.replace('_', ' ')} policy stands; "
        "control of the account does not change what it was for.",
        decision.policy,
        facts,
    )


def resolution(outcome: str | None) -> str:
    """The chat's resolution code for the decision on its appeal (None: not decided yet)."""
    return RESOLUTIONS.get(outcome or "", IN_REVIEW)


class ChatBoard:
    """What the demo's agents share about chats: the chats in an agent's hands, and for the
    appeals opened from chats, which chat each belongs to, when the chat reached the decision,
    and the decision. A reviewer's case stream that claims such an appeal waits (in the
    reviewer's worker thread, the claim renewed meanwhile) until the chat's agent is ready for
    the decision, then decides by :func:`chat_verdict`."""

    def __init__(
        self,
        accounts: Iterable[tuple[str, str]] = (),
        *,
        wait_s: float = DECISION_WAIT_S,
        unknown_wait_s: float = UNKNOWN_CHAT_WAIT_S,
    ) -> None:
        # The (platform, user id) of the accounts whose people chat: an appeal of one of them
        # comes from a chat even before the chat is known here (a case may be claimed first).
        self._accounts = frozenset(accounts)
        self._wait_s = wait_s
        self._unknown_wait_s = unknown_wait_s
        # Shared with the reviewers' worker threads.
        self._lock = threading.Lock()
        self._chats: dict[str, str] = {}
        self._known: dict[str, threading.Event] = {}
        self._ready: dict[str, threading.Event] = {}
        self._held: set[str] = set()
        self._closed = False
        # Touched in the event loop's thread only.
        self._outcomes: dict[str, str] = {}
        self._decided: dict[str, asyncio.Event] = {}
        self._in_hand: set[str] = set()
        self._none_in_hand = asyncio.Event()
        self._none_in_hand.set()

    # --- chats in hand (the event loop's thread) -----------------------------------------------

    @contextlib.contextmanager
    def in_hand(self, chat_id: str) -> Iterator[None]:
        """An agent works on ``chat_id`` while the block runs."""
        self._in_hand.add(chat_id)
        self._none_in_hand.clear()
        try:
            yield
        finally:
            self._in_hand.discard(chat_id)
            if not self._in_hand:
                self._none_in_hand.set()

    async def put_down(self, wait_s: float) -> bool:
        """Wait (up to ``wait_s``) until no agent works on a chat any more; whether none does."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._none_in_hand.wait(), wait_s)
        return self._none_in_hand.is_set()

    # --- the appeals of chats (any thread) -----------------------------------------------------

    def _flag(self, flags: dict[str, threading.Event], appeal_id: str) -> threading.Event:
        with self._lock:
            flag = flags.setdefault(appeal_id, threading.Event())
            if self._closed:
                flag.set()
            return flag

    def note(self, appeal_id: str, chat_id: str) -> None:
        """``appeal_id`` is the appeal of ``chat_id``."""
        if appeal_id:
            with self._lock:
                self._chats.setdefault(appeal_id, chat_id)
            self._flag(self._known, appeal_id).set()

    def on(self, chat_id: str, appeal_id: str) -> None:
        """A chat was opened (chat id, appeal id), as the person hears of it."""
        self.note(appeal_id, chat_id)

    def from_a_chat(self, case: agent_desk_pb2.CaseOffer) -> bool:
        """Whether ``case`` is a chat's appeal (known, or of an account whose people chat)."""
        facts = case.facts
        account = (vocabulary.platform_name(facts.platform), facts.subject.id)
        if vocabulary.subject_kind_name(facts.subject.kind) == "account" and (
            account in self._accounts
        ):
            return True
        with self._lock:
            return case.appeal_id in self._chats

    def held_by_a_reviewer(self, appeal_id: str) -> bool:
        with self._lock:
            return appeal_id in self._held

    def verdict_after_chat(self, case: agent_desk_pb2.CaseOffer) -> reviewer.Verdict:
        """For a reviewer holding a chat's appeal (blocking: in its worker thread): the chat
        rule's verdict once the chat reached the decision. An appeal whose chat does not turn
        up soon (the person left before an agent came) is decided without waiting longer."""
        appeal_id = case.appeal_id
        with self._lock:
            self._held.add(appeal_id)
        if self._flag(self._known, appeal_id).wait(self._unknown_wait_s):
            self._flag(self._ready, appeal_id).wait(self._wait_s)
        with self._lock:
            chat_id = self._chats.get(appeal_id, "")
        return chat_verdict(case, chat_id)

    def ready(self, appeal_id: str) -> None:
        """The chat reached the decision: whoever holds the case may make it now."""
        self._flag(self._ready, appeal_id).set()

    def close(self) -> None:
        """The demo ends: no reviewer waits any longer."""
        with self._lock:
            self._closed = True
            flags = [*self._known.values(), *self._ready.values()]
        for flag in flags:
            flag.set()

    # --- decisions (the event loop's thread) ---------------------------------------------------

    def decided(self, appeal_id: str, outcome: str) -> None:
        self._outcomes[appeal_id] = outcome
        self._decided.setdefault(appeal_id, asyncio.Event()).set()

    async def outcome(self, appeal_id: str, wait_s: float) -> str | None:
        """The decision on ``appeal_id`` (outcome name) once someone made it, or None."""
        event = self._decided.setdefault(appeal_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), wait_s)
        return self._outcomes.get(appeal_id)


class ChatsUnavailable(Exception):  # noqa: N818 - a reason, said in one line
    """The desk takes no chats (live help not configured on routing, or out of reach)."""


@dataclass(frozen=True)
class AgentPace:
    # Reading and typing before each message (pacing only).
    pause_s: float = 0.5
    person_wait_s: float = PERSON_WAIT_S
    decision_wait_s: float = DECISION_WAIT_S


class _Session:
    """One ChatSession: the agent's frames go out through a queue, the server's are read. The
    desk relays every message of the chat, the agent's own too: a message written is stored
    once its copy comes back (what the person said meanwhile is kept for the next read)."""

    def __init__(
        self,
        desk: agent_desk_pb2_grpc.AgentDeskStub,
        chat_id: str,
        metadata: tuple[tuple[str, str], ...],
    ) -> None:
        self._outgoing: asyncio.Queue[agent_desk_pb2.ChatClientFrame | None] = asyncio.Queue()
        self._outgoing.put_nowait(
            agent_desk_pb2.ChatClientFrame(join=agent_desk_pb2.ChatJoin(chat_id=chat_id))
        )
        self._call = desk.ChatSession(self._frames(), metadata=metadata)
        self._sent = 0
        self._ended = False
        self._heard: collections.deque[chat_pb2.ChatMessage] = collections.deque()

    async def _frames(self) -> AsyncIterator[agent_desk_pb2.ChatClientFrame]:
        while (frame := await self._outgoing.get()) is not None:
            yield frame

    def ended(self) -> bool:
        """The chat left the agent (closed by either side, or handed over)."""
        return self._ended

    async def _next_message(self) -> chat_pb2.ChatMessage | None:
        """The next message relayed (None once the chat ended); the person's are marked read."""
        while not self._ended:
            frame = await self._call.read()
            if frame is grpc.aio.EOF or frame.HasField("ended"):
                self._ended = True
            elif frame.HasField("message"):
                message: chat_pb2.ChatMessage = frame.message
                if message.party == chat_pb2.CHAT_PARTY_PERSON:
                    await self._put(agent_desk_pb2.ChatClientFrame(read_up_to=message.seq))
                return message
        return None

    async def person_says(self, wait_s: float) -> chat_pb2.ChatMessage | None:
        """The person's next message (None: the chat ended, or nothing came in ``wait_s``)."""
        if self._heard:
            return self._heard.popleft()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                while (message := await self._next_message()) is not None:
                    if message.party == chat_pb2.CHAT_PARTY_PERSON:
                        return message
        return None

    async def write(self, text: str, pause_s: float, wait_s: float = STORED_WAIT_S) -> bool:
        """Type (``pause_s``), send, and wait until the message is stored in the chat (its copy
        came back); False when the chat ended first or ``wait_s`` passed."""
        await self._put(agent_desk_pb2.ChatClientFrame(typing=True))
        await asyncio.sleep(pause_s)
        self._sent += 1
        client_id = f"a-{self._sent}"
        await self._put(
            agent_desk_pb2.ChatClientFrame(
                send=agent_desk_pb2.ChatSend(client_id=client_id, text=text)
            )
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                while (message := await self._next_message()) is not None:
                    if message.party == chat_pb2.CHAT_PARTY_PERSON:
                        self._heard.append(message)
                    elif message.client_id == client_id:
                        return True
        return False

    async def _put(self, frame: agent_desk_pb2.ChatClientFrame) -> None:
        await self._outgoing.put(frame)

    def close(self) -> None:
        self._outgoing.put_nowait(None)
        self._call.cancel()


# A claim or decision refused because the case is decided, or held or offered elsewhere.
_ELSEWHERE = (
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.PERMISSION_DENIED,
)


class ChatAgent:
    """One agent's chats on the desk (several at once, as many as the desk offers it)."""

    def __init__(
        self,
        desk: agent_desk_pb2_grpc.AgentDeskStub,
        token: str,
        name: str,
        board: ChatBoard,
        *,
        say: Callable[[str], None],
        pace: AgentPace,
    ) -> None:
        self._desk = desk
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._name = name
        self._board = board
        self._say = say
        self._pace = pace

    async def handle(self, offer: agent_desk_pb2.ChatOffer) -> str | None:
        """Accept, talk, decide (account access) and close one offered chat; its resolution,
        or None when a colleague took it first."""
        chat_id = offer.chat_id
        try:
            accepted = await self._desk.AcceptChat(
                agent_desk_pb2.AcceptChatRequest(chat_id=chat_id), metadata=self._metadata
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                return None  # taken by a colleague, or closed meanwhile
            raise
        chat = accepted.chat
        topic, language = vocabulary.chat_topic_name(chat.topic), chat.language
        appeal_id = chat.appeal_id or offer.appeal_id
        about = f" for {appeal_id}" if appeal_id else ""
        self._say(
            f"accepted chat {chat_id}  {vocabulary.platform_name(chat.platform)} {topic} "
            f"({language}){about}"
        )
        session = _Session(self._desk, chat_id, self._metadata)
        try:
            with self._board.in_hand(chat_id):
                return await self._talk(session, chat_id, topic, language, appeal_id)
        finally:
            session.close()

    async def _talk(
        self,
        session: _Session,
        chat_id: str,
        topic: str,
        language: str,
        appeal_id: str,
    ) -> str:
        pace = self._pace
        await session.person_says(pace.person_wait_s)  # their first words (the open's message)
        if session.ended():
            self._say(f"chat {chat_id} ended before an answer")
            return "closed"
        await session.write(agent_says(GREETINGS, topic, language, self._name), pace.pause_s)
        self._say(f"answered chat {chat_id}")
        replied = await session.person_says(pace.person_wait_s)
        if session.ended():
            self._say(f"chat {chat_id} ended by the person")
            return "closed"
        if topic == "account_access" and appeal_id:
            code = resolution(await self._settle(chat_id, appeal_id))
        else:
            code = EXPLAINED if replied is not None else NO_RESPONSE
        await session.write(agent_says(CLOSING, code, language, self._name), pace.pause_s)
        await self._desk.CloseChat(
            agent_desk_pb2.CloseChatRequest(chat_id=chat_id, resolution=code),
            metadata=self._metadata,
        )
        self._say(f"closed chat {chat_id}: {code}")
        return code

    async def _settle(self, chat_id: str, appeal_id: str) -> str | None:
        """The decision on the chat's appeal: made here when this agent holds its case (accepting
        the chat claimed it) or can claim it now, else by the reviewer whose case stream holds
        it (or will: a case routed after the chat was offered)."""
        self._board.note(appeal_id, chat_id)
        self._board.ready(appeal_id)
        if not self._board.held_by_a_reviewer(appeal_id):
            outcome = await self._decide(chat_id, appeal_id)
            if outcome is not None:
                return outcome
        self._say(f"waiting for the decision on {appeal_id} from its case on the desk")
        return await self._board.outcome(appeal_id, self._pace.decision_wait_s)

    async def _decide(self, chat_id: str, appeal_id: str) -> str | None:
        """Claim the case (a case this agent holds already: a no-op that answers it with its
        facts) and decide it by the chat rule; None when it is decided or held elsewhere."""
        try:
            claimed = await self._desk.Claim(
                agent_desk_pb2.ClaimRequest(appeal_id=appeal_id), metadata=self._metadata
            )
        except grpc.aio.AioRpcError as error:
            if error.code() not in _ELSEWHERE:
                raise
            return None
        verdict = chat_verdict(claimed.case, chat_id)
        try:
            await self._desk.Decide(
                agent_desk_pb2.DecideRequest(
                    appeal_id=appeal_id, outcome=verdict.outcome,  # type: ignore[arg-type]
                    rationale=verdict.rationale, policy_cited=verdict.policy_cited,
                    facts=verdict.facts,
                ),
                metadata=self._metadata,
            )  # fmt: skip
        except grpc.aio.AioRpcError as error:
            if error.code() not in _ELSEWHERE:
                raise
            self._say(f"not decided {appeal_id}: {error.details()}; released it")
            with contextlib.suppress(grpc.aio.AioRpcError):  # held, it would wait for its lease
                await self._desk.Release(
                    agent_desk_pb2.ReleaseRequest(appeal_id=appeal_id, reason="not decided"),
                    metadata=self._metadata,
                )
            return None
        outcome = vocabulary.outcome_name(verdict.outcome)
        self._board.decided(appeal_id, outcome)
        self._say(f"decided {appeal_id}: {outcome} (chat {chat_id})")
        return outcome


async def serve_chats(
    target: str,
    token: str,
    name: str,
    board: ChatBoard,
    *,
    profile: agent_desk_pb2.AgentProfile,
    say: Callable[[str], None] = print,
    pace: AgentPace | None = None,
) -> None:
    """Take the chats the desk offers this agent until cancelled. ChatsUnavailable when the
    desk takes no chats (live help not configured on routing, or routing out of reach)."""
    metadata = (("authorization", f"Bearer {token}"),)
    handling: set[asyncio.Task[None]] = set()
    async with grpc.aio.insecure_channel(target) as channel:
        desk = agent_desk_pb2_grpc.AgentDeskStub(channel)
        agent = ChatAgent(desk, token, name, board, say=say, pace=pace or AgentPace())

        async def handle(offer: agent_desk_pb2.ChatOffer) -> None:
            try:
                await agent.handle(offer)
            except grpc.aio.AioRpcError as error:
                say(f"chat {offer.chat_id} failed: {error.code().name}: {error.details()}")
            except Exception as error:  # one chat's failure is said; the agent goes on
                say(f"chat {offer.chat_id} failed: {error!r}")

        try:
            # The same skills as the agent's case stream registers (the desk offers chats by
            # language and platform).
            await desk.RegisterAgent(
                agent_desk_pb2.RegisterAgentRequest(profile=profile), metadata=metadata
            )
            async for offer in desk.StreamChats(
                agent_desk_pb2.StreamChatsRequest(), metadata=metadata
            ):
                board.note(offer.appeal_id, offer.chat_id)
                task = asyncio.create_task(handle(offer))
                handling.add(task)
                task.add_done_callback(handling.discard)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNAVAILABLE:
                raise ChatsUnavailable(error.details() or "the desk is unavailable") from error
            raise
        finally:
            for task in list(handling):
                task.cancel()
            await asyncio.gather(*handling, return_exceptions=True)

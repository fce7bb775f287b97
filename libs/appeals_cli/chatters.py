"""`appeals demo`'s locked-out people: every so often one of live help's DEVELOPMENT-ONLY sample
accounts (``services/help/dev_accounts.yaml``) asks for a code, reads it on its "device",
verifies, opens a chat (mostly about getting back into the account, which attaches an appeal of
the account's enforcement decision; sometimes help with a feature), writes in the person's own
language, waits for an agent's answer, replies and sees the chat end.

Everything goes through live help's public API as the page uses it (long-polling for updates),
except reading the code: a person reads it on their phone or in their mail, and locally every
platform channel is a recording sink whose record is notifications' ``codes`` collection (kept
readable only with ``NOTIFICATIONS_KEEP_CODE_TEXT``, which ``make run`` and the tests set). The
store is found as the services find it (``MONGODB_URL``, ``MONGODB_DATABASE``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from pymongo.errors import PyMongoError

from appeals_cli import answers
from appeals_devstack.paths import REPO_ROOT
from appeals_runtime import store

DEV_ACCOUNTS_FILE = Path(
    os.environ.get("HELP_ACCOUNTS_FILE", REPO_ROOT / "services" / "help" / "dev_accounts.yaml")
)
# Where notifications keeps each code it sent (``_id``: the verification id), in its database.
# DEVELOPMENT ONLY: outside a local run the record holds the message with the code masked.
CODES_COLLECTION = "codes"
_CODE = re.compile(r"\b(\d{6})\b")
_MASKED = "••••••"
# Every few chats is about a feature rather than the account itself.
FEATURE_HELP_EVERY = 4
# How long a person waits for their code, an agent's answer, the end of the chat.
CODE_WAIT_S = 30.0
ANSWER_WAIT_S = 90.0
END_WAIT_S = 120.0
# The person reads the answer and types a reply (pacing only, nothing waits on it).
REPLY_AFTER_S = 1.5

# The feature a person asks about, per platform.
FEATURES = {
    "instagram": "Reels",
    "facebook": "Marketplace",
    "whatsapp": "backup",
    "horizon": "voice chat",
}

# What a person writes, in their language (ISO 639-1; others write in English).
FIRST_WORDS: dict[str, dict[str, str]] = {
    "account_access": {
        "en": "Hello, I can't get into my account any more. It is really mine: I have used it "
        "for years.",
        "de": "Hallo, ich komme nicht mehr in mein Konto. Es ist wirklich meins, ich nutze es "
        "seit Jahren.",
        "pt": "Olá, não consigo mais entrar na minha conta. Ela é minha mesmo, uso há anos.",
        "es": "Hola, ya no puedo entrar en mi cuenta. Es mía de verdad, la uso desde hace años.",
        "fr": "Bonjour, je n'arrive plus à accéder à mon compte. Il est bien à moi, je "
        "l'utilise depuis des années.",
        "ar": "مرحبًا، لم أعد أستطيع الدخول إلى حسابي. إنه حسابي فعلًا، أستخدمه منذ سنوات.",
    },
    "feature_help": {
        "en": "Hello, {feature} does not work on my account.",
        "de": "Hallo, {feature} funktioniert bei meinem Konto nicht.",
        "pt": "Olá, o recurso {feature} não funciona na minha conta.",
        "es": "Hola, {feature} no funciona en mi cuenta.",
        "fr": "Bonjour, {feature} ne fonctionne pas sur mon compte.",
        "ar": "مرحبًا، ميزة {feature} لا تعمل في حسابي.",
    },
}
REPLIES: dict[str, dict[str, str]] = {
    "account_access": {
        "en": "Thank you. Yes, the phone number and email address on file are mine.",
        "de": "Danke. Ja, die hinterlegte Telefonnummer und E-Mail-Adresse gehören mir.",
        "pt": "Obrigado. Sim, o telefone e o e-mail cadastrados são meus.",
        "es": "Gracias. Sí, el teléfono y el correo registrados son míos.",
        "fr": "Merci. Oui, le numéro et l'adresse e-mail enregistrés sont bien les miens.",
        "ar": "شكرًا. نعم، رقم الهاتف والبريد الإلكتروني المسجلان لي.",
    },
    "feature_help": {
        "en": "When I open it, nothing happens.",
        "de": "Wenn ich es öffne, passiert nichts.",
        "pt": "Quando eu abro, nada acontece.",
        "es": "Cuando lo abro, no pasa nada.",
        "fr": "Quand je l'ouvre, rien ne se passe.",
        "ar": "عندما أفتحها، لا يحدث شيء.",
    },
}


def words(table: dict[str, dict[str, str]], topic: str, language: str, **values: str) -> str:
    """What a person says about ``topic`` in ``language`` (English when there is none)."""
    said = table[topic]
    return said.get(language, said["en"]).format(**values)


@dataclass(frozen=True)
class SampleAccount:
    """One DEVELOPMENT-ONLY sample account, as a locked-out person knows it."""

    platform: str
    user_id: str
    # How the person names it on the help page: the handle, else the phone, else the email.
    name: str
    language: str
    # The platform names an enforcement decision on it: an account-access chat can appeal it.
    appealable: bool
    also_known_as: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name}@{self.platform}"

    def known_as(self, name: str) -> bool:
        return name.strip().lower().removeprefix("@") in {
            n.lower() for n in (self.name, self.user_id, *self.also_known_as)
        }


def sample_accounts(path: Path = DEV_ACCOUNTS_FILE) -> list[SampleAccount]:
    """The sample accounts a person can be: those the help page can name (a handle, phone or
    email) and whose code goes to a contact on file (every one: the platform's own channel
    reaches its user id)."""
    entries = (yaml.safe_load(path.read_text()) or {}).get("accounts") or []
    accounts = []
    for entry in entries:
        names = [str(entry[key]) for key in ("handle", "phone", "email") if entry.get(key)]
        if not names or not entry.get("platform") or not entry.get("user_id"):
            continue
        accounts.append(
            SampleAccount(
                platform=str(entry["platform"]),
                user_id=str(entry["user_id"]),
                name=names[0],
                language=str(entry.get("locale") or "en").split("-")[0].lower(),
                appealable=bool(entry.get("decision")),
                also_known_as=tuple(names[1:]),
            )
        )
    return accounts


def chosen_accounts(accounts: Sequence[SampleAccount], names: Sequence[str]) -> list[SampleAccount]:
    """The accounts ``names`` name (handle, phone, email or user id), in that order; every one
    when ``names`` is empty. ValueError for a name no account has, with the names there are."""
    if not names:
        return list(accounts)
    chosen = []
    for name in names:
        found = next((a for a in accounts if a.known_as(name)), None)
        if found is None:
            known = ", ".join(a.name for a in accounts)
            raise ValueError(f"no sample account {name!r} (there are {known})")
        chosen.append(found)
    return chosen


@dataclass(frozen=True)
class PlannedChat:
    account: SampleAccount
    topic: str  # account_access | feature_help


def chat_plan(accounts: Sequence[SampleAccount], count: int) -> list[PlannedChat]:
    """Who chats about what, in order: the accounts in turn; every ``FEATURE_HELP_EVERY``-th
    chat is about a feature, and so is any chat of an account with nothing to appeal."""
    plan = []
    for index in range(count if accounts else 0):
        account = accounts[index % len(accounts)]
        feature = index % FEATURE_HELP_EVERY == FEATURE_HELP_EVERY - 1 or not account.appealable
        plan.append(PlannedChat(account, "feature_help" if feature else "account_access"))
    return plan


@dataclass(frozen=True)
class ChatOptions:
    """``appeals demo``'s chats: how many, how far apart, where live help and the store are."""

    count: int
    every_s: float
    help_url: str
    accounts: tuple[str, ...] = ()
    # Where notifications keeps its records, named as the services name it.
    store_url: str = field(
        default_factory=lambda: os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017/")
    )
    database: str = field(default_factory=lambda: os.environ.get("MONGODB_DATABASE", "appeals"))
    accounts_file: Path = DEV_ACCOUNTS_FILE


@dataclass
class ChatResult:
    person: str
    platform: str
    topic: str
    chat_id: str = ""
    appeal_id: str = ""
    state: str = "not opened"
    resolution: str = ""
    # The agent's messages the person received, and who wrote them.
    answers: int = 0
    agent: str = ""


class NoChats(Exception):  # noqa: N818 - a reason, said in one line
    """Chats cannot happen in this run at all (help unreachable, no readable codes): said once,
    and the demo goes on with appeals only."""


class Skipped(Exception):  # noqa: N818
    """This one chat did not happen (a limit, a refusal): said, and the next one is tried."""


def _problem(response: httpx.Response) -> str:
    return answers.problem(response, "live help").splitlines()[0].removeprefix("live help ")


async def _code_on_device(codes: store.Collection, verification_id: str) -> str:
    """DEVELOPMENT ONLY: the code as the person's device received it, from the record of the
    local recording sink (notifications keeps the text only where NOTIFICATIONS_KEEP_CODE_TEXT
    is set, which is never the case with real channels). Polled like an inbox until it came."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CODE_WAIT_S
    while True:
        try:
            found = await codes.find_one({"_id": verification_id})
        except PyMongoError as error:
            raise NoChats(
                f"the codes cannot be read from the store ({type(error).__name__}; MONGODB_URL "
                "and MONGODB_DATABASE name the pipeline's store)"
            ) from error
        body = str(found.get("body", "")) if found else ""
        if _MASKED in body:
            raise NoChats(
                "notifications keeps no readable codes here (NOTIFICATIONS_KEEP_CODE_TEXT is "
                "for local development only, and `make run` sets it)"
            )
        if match := _CODE.search(body):
            return match.group(1)
        if loop.time() >= deadline:
            raise Skipped(f"no code reached the contact on file within {CODE_WAIT_S:.0f} s")
        await asyncio.sleep(0.25)


class Person:
    """One simulated locked-out person and their chat."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        codes: store.Collection,
        planned: PlannedChat,
        say: Callable[[str], None],
        opened: Callable[[str, str], None],
    ) -> None:
        self._client = client
        self._codes = codes
        self._account = planned.account
        self._topic = planned.topic
        self._say = say
        self._opened = opened
        self._session: dict[str, str] = {}
        self._after = 0
        self.result = ChatResult(self._account.label, self._account.platform, planned.topic)

    def say(self, line: str) -> None:
        self._say(f"{self._account.label}: {line}")

    async def chat(self) -> ChatResult:
        try:
            await self._verify()
            await self._open()
            await self._converse()
        except asyncio.CancelledError:
            await self._leave()
            raise
        except httpx.ConnectError as error:
            raise NoChats(f"live help stopped answering ({type(error).__name__})") from error
        except (Skipped, httpx.HTTPError) as why:
            self.say(f"no chat: {why if isinstance(why, Skipped) else repr(why)}")
            await self._leave()
        return self.result

    async def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self._client.post(path, json=body, headers=self._session)

    async def _verify(self) -> None:
        account = self._account
        started = await self._post(
            "/v1/help/verifications", {"platform": account.platform, "account": account.name}
        )
        if started.status_code == 429:
            # Help's limits per account and per client address (a few codes an hour).
            wait = int(started.headers.get("Retry-After", "0") or 0)
            raise Skipped(
                f"live help sends no more codes for now (its limits allow the next in about "
                f"{max(1, round(wait / 60))} min)"
            )
        if started.status_code != 202:
            raise Skipped(f"asking for a code: {_problem(started)}")
        verification_id = started.json()["verification_id"]
        code = await _code_on_device(self._codes, verification_id)
        checked = await self._post(
            f"/v1/help/verifications/{verification_id}/check", {"code": code}
        )
        if checked.status_code != 200:
            raise Skipped(f"checking the code: {_problem(checked)}")
        self._session = {"Authorization": f"Bearer {checked.json()['session_token']}"}
        self.say("verified with the code sent to the contact on file")

    async def _open(self) -> None:
        account, topic = self._account, self._topic
        feature = FEATURES.get(account.platform, "notifications")
        body: dict[str, Any] = {
            "topic": topic,
            "language": account.language,
            "message": words(FIRST_WORDS, topic, account.language, feature=feature),
        }
        if topic == "feature_help":
            body["feature"] = feature
        opened = await self._post("/v1/help/chats", body)
        if opened.status_code not in (200, 201):
            raise Skipped(f"opening a chat: {_problem(opened)}")
        chat = opened.json()
        self.result.chat_id, self.result.appeal_id = chat["chat_id"], chat.get("appeal_id") or ""
        self.result.state = chat["state"]
        self._opened(self.result.chat_id, self.result.appeal_id)
        about = f" for {self.result.appeal_id}" if self.result.appeal_id else ""
        self.say(f"opened chat {self.result.chat_id}  {topic} ({account.language}){about}")

    async def _updates(self, until: Callable[[dict[str, Any]], bool], wait_s: float) -> bool:
        """Long-poll the chat (as the page does without a WebSocket) until ``until`` holds for
        an answer, or ``wait_s`` passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while (left := deadline - loop.time()) > 0:
            response = await self._client.get(
                f"/v1/help/chats/{self.result.chat_id}/updates",
                params={"after": self._after, "wait_s": min(20.0, max(0.0, left))},
                headers=self._session,
            )
            if response.status_code != 200:
                raise Skipped(f"reading the chat: {_problem(response)}")
            updates = response.json()
            if updates["messages"]:
                self._after = updates["messages"][-1]["seq"]
            for message in updates["messages"]:
                if message["party"] == "agent":
                    self.result.answers += 1
                    self.result.agent = message.get("agent_id") or self.result.agent
            self.result.state = updates["state"]["state"]
            self.result.resolution = updates["state"].get("resolution") or ""
            if until(updates):
                return True
        return False

    async def _converse(self) -> None:
        chat_id, language = self.result.chat_id, self._account.language

        def answered(updates: dict[str, Any]) -> bool:
            agent = any(m["party"] == "agent" for m in updates["messages"])
            return agent or updates["state"]["state"] == "closed"

        if not await self._updates(answered, ANSWER_WAIT_S):
            raise Skipped(f"no agent answered chat {chat_id} within {ANSWER_WAIT_S:.0f} s")
        if self.result.state != "closed":
            await asyncio.sleep(REPLY_AFTER_S)
            replied = await self._post(
                f"/v1/help/chats/{chat_id}/messages",
                {"client_id": "p-2", "text": words(REPLIES, self._topic, language)},
            )
            if replied.is_success:
                self.say(f"got an answer in {chat_id}; replied")
            else:
                self.say(f"got an answer in {chat_id}; could not reply: {_problem(replied)}")

        def ended(updates: dict[str, Any]) -> bool:
            return bool(updates["state"]["state"] == "closed")

        if not await self._updates(ended, END_WAIT_S):
            raise Skipped(f"chat {chat_id} did not end within {END_WAIT_S:.0f} s")
        result = self.result
        self.say(
            f"chat {chat_id} ended: {result.resolution or 'closed'} ({result.answers} "
            f"message(s) from {result.agent or 'no agent'})"
        )

    async def _leave(self) -> None:
        """A chat the person gives up on is closed, never left waiting for an agent."""
        if not self.result.chat_id or self.result.state == "closed":
            return
        with contextlib.suppress(httpx.HTTPError, TimeoutError):
            async with asyncio.timeout(5):
                closed = await self._post(f"/v1/help/chats/{self.result.chat_id}/close", {})
                if closed.status_code == 200:
                    self.result.state = "closed"
                    self.result.resolution = closed.json().get("resolution") or ""


async def run_chats(
    options: ChatOptions,
    *,
    say: Callable[[str], None] = print,
    reachable: Callable[[], None] = lambda: None,
    opened: Callable[[str, str], None] = lambda _chat_id, _appeal_id: None,
) -> list[ChatResult]:
    """The planned chats, one every ``options.every_s``; each chat's result. ``reachable`` hears
    that live help answers, before the first chat; ``opened`` of each chat opened (chat id,
    appeal id) before anyone answers it. Live help out of reach (or no readable codes) is said
    in one line, and nothing more is tried."""
    plan = chat_plan(
        chosen_accounts(sample_accounts(options.accounts_file), options.accounts), options.count
    )
    if not plan:
        return []
    client = store.create_client(options.store_url, app_name="appeals-demo")
    codes = client[store.service_database(options.database, "notifications")][CODES_COLLECTION]
    people: list[asyncio.Task[ChatResult]] = []
    try:
        async with httpx.AsyncClient(base_url=options.help_url, timeout=30) as http:
            try:
                (await http.get("/v1/help/platforms")).raise_for_status()
            except httpx.HTTPError as error:
                raise NoChats(
                    f"live help is not reachable at {options.help_url} ({type(error).__name__})"
                ) from error
            reachable()
            for index, planned in enumerate(plan):
                if index:
                    await asyncio.sleep(options.every_s)
                # A person who found that no chat can happen here stops the rest.
                for task in people:
                    if task.done() and isinstance(task.exception(), NoChats):
                        await task
                person = Person(http, codes, planned, say, opened)
                people.append(asyncio.create_task(person.chat()))
            return list(await asyncio.gather(*people))
    except NoChats as why:
        say(f"no chats in this demo: {why}; the appeals go on")
        for task in people:
            task.cancel()
        done = await asyncio.gather(*people, return_exceptions=True)
        return [r for r in done if isinstance(r, ChatResult)]
    finally:
        await client.close()


def chat_table(results: Sequence[ChatResult]) -> list[str]:
    """The demo's closing table of chats."""
    lines = [f"\n{'chat':<28}  {'person':<28} {'topic':<15} {'appeal':<30} resolution"]
    for r in results:
        lines.append(
            f"{r.chat_id or '-':<28}  {r.person:<28} {r.topic:<15} {r.appeal_id or '-':<30} "
            f"{r.resolution or r.state}"
        )
    return lines

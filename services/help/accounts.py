"""Where a platform's accounts are looked up, by what a locked-out person can still name.

A person who cannot log in names the account the way they know it: its handle, or the phone
number or email address on file. The platform answers with the account (its user id, status,
language) and the contacts *it* has on file; a code only ever goes to one of those, never to an
address the person typed (they may name an address that is not the account's).

Two directories: a platform's account API (production: ``GET <url>/accounts/lookup?identifier=``
with a bearer token, 404 for no such account) and a file of sample accounts (DEVELOPMENT ONLY,
``dev_accounts.yaml``). Both answer "no such account" and "unknown platform" alike: None.

An account also carries the platform's enforcement decision on it (what a locked-out person
appeals when they open an account-access chat), when the platform names one; both directories
also look an account up by its user id (a help session names the account by user id).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol

import httpx
import yaml
from pydantic import SecretStr

from appeals import platforms
from appeals_runtime.errors import TransientError

log = logging.getLogger(__name__)

IdentifierKind = Literal["handle", "phone", "email"]
# How an account is looked up: as the person named it, or by the user id a session carries.
LookupKind = Literal["handle", "phone", "email", "user_id"]
ContactKind = Literal["user_id", "phone", "email"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ().-]{5,22}$")
_HANDLE = re.compile(r"^@?[A-Za-z0-9._-]{1,64}$")
_SNAKE_CASE = re.compile(r"^[a-z][a-z0-9_]*$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class Identifier:
    """What the person named, normalised: the same account however it was typed."""

    kind: IdentifierKind
    value: str


def identifier(text: str) -> Identifier | None:
    """``text`` as a handle, phone number (E.164 digits) or email; None when it is none."""
    text = text.strip()
    if _EMAIL.match(text):
        return Identifier("email", text.lower())
    if _PHONE.match(text) and sum(c.isdigit() for c in text) >= 6:
        return Identifier("phone", "+" + "".join(c for c in text if c.isdigit()))
    if _HANDLE.match(text):
        return Identifier("handle", text.removeprefix("@").lower())
    return None


@dataclass(frozen=True)
class Contact:
    """One address the platform has on file for the account, and which kind it is."""

    kind: ContactKind
    address: str


@dataclass(frozen=True)
class Decision:
    """The platform's enforcement decision on the account: what the person appeals."""

    id: str
    policy: str  # snake_case, e.g. "impersonation"
    action: str  # snake_case, e.g. "account_disabled"
    automated: bool
    decided_at: datetime
    decided_by: str


@dataclass(frozen=True)
class Account:
    platform: str
    user_id: str
    # "locked", "disabled", "banned", "restricted", "active": as the platform says.
    status: str
    locale: str
    # In the order a code is tried: email, then phone, then the platform's own channel.
    contacts: tuple[Contact, ...]
    # The decision that locked the person out, when the platform names one (None: nothing to
    # appeal, so no account-access chat; feature help still works).
    decision: Decision | None = None
    # ISO 3166-1 alpha-2, when the platform knows it (intake's appeal window depends on it).
    country: str = ""


class AccountDirectory(Protocol):
    async def lookup(self, platform: str, named: Identifier) -> Account | None: ...

    async def by_user_id(self, platform: str, user_id: str) -> Account | None: ...


def decision_from(entry: object, where: str) -> Decision | None:
    """The enforcement decision in an account API answer or a sample entry (``decision``: id,
    policy, action, automated, decided_at, decided_by); None when there is none. A malformed one
    raises ValueError naming ``where``: a decision is appealed as given, so it is never guessed."""
    if entry is None:
        return None
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: decision must be a mapping")
    decided_at = entry.get("decided_at")
    days_ago = entry.get("decided_days_ago")
    if days_ago is not None:
        # DEVELOPMENT ONLY (sample file): a fixed date would fall out of intake's appeal window.
        moment = datetime.now(UTC) - timedelta(days=float(days_ago))
    elif isinstance(decided_at, datetime):
        moment = decided_at
    elif isinstance(decided_at, str):
        moment = datetime.fromisoformat(decided_at.replace("Z", "+00:00"))
    else:
        raise ValueError(f"{where}: decision.decided_at is required")
    if moment.tzinfo is None:
        raise ValueError(f"{where}: decision.decided_at needs a UTC offset")
    decision = Decision(
        id=str(entry.get("id", "")),
        policy=str(entry.get("policy", "")),
        action=str(entry.get("action", "")),
        automated=bool(entry.get("automated", False)),
        decided_at=moment.astimezone(UTC),
        decided_by=str(entry.get("decided_by", "")),
    )
    if not (_ID.match(decision.id) and _ID.match(decision.decided_by)):
        raise ValueError(f"{where}: decision.id and decision.decided_by must be identifiers")
    if not (_SNAKE_CASE.match(decision.policy) and _SNAKE_CASE.match(decision.action)):
        raise ValueError(f"{where}: decision.policy and decision.action must be snake_case")
    return decision


def _country(value: object, locale: str) -> str:
    """The country given, else the locale's region (``de-DE`` → ``DE``), else empty."""
    text = str(value or "").upper()
    if _COUNTRY.match(text):
        return text
    region = locale.rpartition("-")[2].upper() if "-" in locale else ""
    return region if _COUNTRY.match(region) else ""


def _contacts(user_id: str, email: str, phone: str) -> tuple[Contact, ...]:
    on_file = (
        Contact("email", email.lower()),
        Contact("phone", phone),
        Contact("user_id", user_id),
    )
    return tuple(contact for contact in on_file if contact.address)


class FileDirectory:
    """Sample accounts from a YAML file: DEVELOPMENT ONLY (``make run``, the demo, tests)."""

    def __init__(self, path: Path) -> None:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        self._accounts: dict[tuple[str, IdentifierKind, str], Account] = {}
        self._by_user_id: dict[tuple[str, str], Account] = {}
        for number, entry in enumerate(document.get("accounts") or []):
            where = f"{path}: accounts[{number}]"
            platform, user_id = str(entry.get("platform", "")), str(entry.get("user_id", ""))
            if platform not in platforms.NAMES or not user_id:
                raise ValueError(f"{where}: needs a declared platform and a user_id")
            email, phone = str(entry.get("email", "")), str(entry.get("phone", ""))
            locale = str(entry.get("locale", "en"))
            account = Account(
                platform=platform,
                user_id=user_id,
                status=str(entry.get("status", "locked")),
                locale=locale,
                contacts=_contacts(user_id, email, phone),
                decision=decision_from(entry.get("decision"), where),
                country=_country(entry.get("country"), locale),
            )
            self._by_user_id[(platform, user_id)] = account
            for text in (entry.get("handle"), email, phone):
                named = identifier(str(text)) if text else None
                if named is not None:
                    self._accounts[(platform, named.kind, named.value)] = account

    async def lookup(self, platform: str, named: Identifier) -> Account | None:
        return self._accounts.get((platform, named.kind, named.value))

    async def by_user_id(self, platform: str, user_id: str) -> Account | None:
        return self._by_user_id.get((platform, user_id))


class ApiDirectory:
    """Each platform's account API, for the platforms that have one configured."""

    def __init__(self, http: httpx.AsyncClient, apis: Mapping[str, tuple[str, SecretStr]]) -> None:
        self._http = http
        self._apis = dict(apis)

    async def lookup(self, platform: str, named: Identifier) -> Account | None:
        return await self._lookup(platform, named.value, named.kind)

    async def by_user_id(self, platform: str, user_id: str) -> Account | None:
        return await self._lookup(platform, user_id, "user_id")

    async def _lookup(self, platform: str, value: str, kind: LookupKind) -> Account | None:
        api = self._apis.get(platform)
        if api is None:
            return None
        url, token = api
        try:
            response = await self._http.get(
                f"{url}/accounts/lookup",
                params={"identifier": value, "kind": kind},
                headers={"Authorization": f"Bearer {token.get_secret_value()}"},
            )
        except httpx.HTTPError as error:
            raise TransientError(f"{platform}'s account API did not answer: {error}") from error
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise TransientError(f"{platform}'s account API answered {response.status_code}")
        body = response.json()
        user_id = str(body.get("user_id", ""))
        if not user_id:
            return None
        contacts = body.get("contacts") or {}
        locale = str(body.get("locale", "en"))
        try:
            decision = decision_from(body.get("decision"), f"{platform}'s account API")
        except ValueError as error:
            # The account is still the person's (verification works); only an appeal of a
            # decision the platform described badly is impossible.
            log.warning("the account API answered a malformed decision: %s", error)
            decision = None
        return Account(
            platform=platform,
            user_id=user_id,
            status=str(body.get("status", "locked")),
            locale=locale,
            contacts=_contacts(
                user_id, str(contacts.get("email", "")), str(contacts.get("phone", ""))
            ),
            decision=decision,
            country=_country(body.get("country"), locale),
        )


class Directories:
    """The platform's API where one is configured, else the sample file (if any)."""

    def __init__(self, api: ApiDirectory | None, file: FileDirectory | None) -> None:
        self._api = api
        self._file = file

    async def lookup(self, platform: str, named: Identifier) -> Account | None:
        if self._api is not None:
            found = await self._api.lookup(platform, named)
            if found is not None:
                return found
        return await self._file.lookup(platform, named) if self._file is not None else None

    async def by_user_id(self, platform: str, user_id: str) -> Account | None:
        if self._api is not None:
            found = await self._api.by_user_id(platform, user_id)
            if found is not None:
                return found
        return await self._file.by_user_id(platform, user_id) if self._file is not None else None

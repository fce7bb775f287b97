"""Where a platform's accounts are looked up, by what a locked-out person can still name.

A person who cannot log in names the account the way they know it: its handle, or the phone
number or email address on file. The platform answers with the account (its user id, status,
language) and the contacts *it* has on file; a code only ever goes to one of those, never to an
address the person typed (they may name an address that is not the account's).

Two directories: a platform's account API (production: ``GET <url>/accounts/lookup?identifier=``
with a bearer token, 404 for no such account) and a file of sample accounts (DEVELOPMENT ONLY,
``dev_accounts.yaml``). Both answer "no such account" and "unknown platform" alike: None.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import httpx
import yaml
from pydantic import SecretStr

from appeals import platforms
from appeals_runtime.errors import TransientError

IdentifierKind = Literal["handle", "phone", "email"]
ContactKind = Literal["user_id", "phone", "email"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ().-]{5,22}$")
_HANDLE = re.compile(r"^@?[A-Za-z0-9._-]{1,64}$")


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
class Account:
    platform: str
    user_id: str
    # "locked", "disabled", "banned", "restricted", "active": as the platform says.
    status: str
    locale: str
    # In the order a code is tried: email, then phone, then the platform's own channel.
    contacts: tuple[Contact, ...]


class AccountDirectory(Protocol):
    async def lookup(self, platform: str, named: Identifier) -> Account | None: ...


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
        for number, entry in enumerate(document.get("accounts") or []):
            where = f"{path}: accounts[{number}]"
            platform, user_id = str(entry.get("platform", "")), str(entry.get("user_id", ""))
            if platform not in platforms.NAMES or not user_id:
                raise ValueError(f"{where}: needs a declared platform and a user_id")
            email, phone = str(entry.get("email", "")), str(entry.get("phone", ""))
            account = Account(
                platform=platform,
                user_id=user_id,
                status=str(entry.get("status", "locked")),
                locale=str(entry.get("locale", "en")),
                contacts=_contacts(user_id, email, phone),
            )
            for text in (entry.get("handle"), email, phone):
                named = identifier(str(text)) if text else None
                if named is not None:
                    self._accounts[(platform, named.kind, named.value)] = account

    async def lookup(self, platform: str, named: Identifier) -> Account | None:
        return self._accounts.get((platform, named.kind, named.value))


class ApiDirectory:
    """Each platform's account API, for the platforms that have one configured."""

    def __init__(self, http: httpx.AsyncClient, apis: Mapping[str, tuple[str, SecretStr]]) -> None:
        self._http = http
        self._apis = dict(apis)

    async def lookup(self, platform: str, named: Identifier) -> Account | None:
        api = self._apis.get(platform)
        if api is None:
            return None
        url, token = api
        try:
            response = await self._http.get(
                f"{url}/accounts/lookup",
                params={"identifier": named.value, "kind": named.kind},
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
        return Account(
            platform=platform,
            user_id=user_id,
            status=str(body.get("status", "locked")),
            locale=str(body.get("locale", "en")),
            contacts=_contacts(
                user_id, str(contacts.get("email", "")), str(contacts.get("phone", ""))
            ),
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

"""A way in without the account: prove control of it out of band, get a short help session.

1. The person names the platform and the account (handle, or the phone or email on file).
   :meth:`Verifications.start` answers at once, and the same whether or not such an account
   exists (a verification id and when it expires): nobody learns from it which accounts exist.
   What depends on the account happens after the answer (:meth:`Verifications.deliver`): the
   platform is asked for the account and the code goes to the first contact on file a channel
   reaches; for no account, nothing is sent.
2. The person types the code (:meth:`Verifications.check`): a right code for an existing
   account opens a help session (:mod:`services.help.sessions`); anything else is "not right",
   the same for a wrong code and for an account that does not exist. A code works once, until
   it expires, and each verification allows ``attempts`` tries in all, however many instances
   answer them (each try takes a write-once slot in the store).

Limits (token buckets, :mod:`appeals_runtime.rate_limits`): code requests per client address
and per account as named, codes per contact on file (checked after the answer, so a refusal
there is silent too), and code checks per client address.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from appeals import platforms
from appeals_runtime import store
from appeals_runtime.errors import (
    FieldViolation,
    NotFound,
    TooManyRequests,
    Unprocessable,
    ValidationFailed,
)
from appeals_runtime.rate_limits import RateLimiter
from services.help.accounts import AccountDirectory, Identifier, identifier
from services.help.notifications_client import CodeMessenger, CodeRefused
from services.help.repository import HelpRepository, Verification
from services.help.sessions import HelpSession, SessionTokens

log = logging.getLogger(__name__)

CODE_DIGITS = 6


@dataclass(frozen=True)
class Started:
    verification_id: str
    expires_at: datetime
    # For the delivery step only; never answered, logged or stored in the clear.
    platform: str
    named: Identifier
    code: str


@dataclass(frozen=True)
class Keys:
    """Three keys from the one secret: one keys the digests of codes, accounts and persons, one
    signs sessions, one wraps the persons' transcript keys, so no use can be turned into
    another."""

    digests: bytes
    sessions: bytes
    transcripts: bytes

    @classmethod
    def derive(cls, secret: bytes) -> Keys:
        def key(purpose: bytes) -> bytes:
            return hmac.new(secret, purpose, hashlib.sha256).digest()

        return cls(
            digests=key(b"appeals-help digests v1"),
            sessions=key(b"appeals-help sessions v1"),
            transcripts=key(b"appeals-help transcript keys v1"),
        )

    def digest(self, *parts: str) -> str:
        return hmac.new(self.digests, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()


class Verifications:
    def __init__(
        self,
        repository: HelpRepository,
        directory: AccountDirectory,
        messenger: CodeMessenger,
        keys: Keys,
        limiter: RateLimiter,
        *,
        code_ttl: timedelta,
        attempts: int,
        session_ttl: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._repository = repository
        self._directory = directory
        self._messenger = messenger
        self._keys = keys
        self._limiter = limiter
        self._code_ttl = code_ttl
        self._attempts = attempts
        self._clock: Callable[[], datetime] = lambda: store.stored_time(clock())
        self.sessions = SessionTokens(keys.sessions, ttl=session_ttl, clock=self._clock)

    async def start(self, platform: str, account: str, client: str) -> Started:
        named = _named(platform, account)
        self._limit(
            [("address", client), ("account", f"{platform}:{named.kind}:{named.value}")],
            "code requests",
        )
        verification_id = secrets.token_urlsafe(18)
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        now = self._clock()
        verification = Verification(
            verification_id=verification_id,
            platform=platform,
            code_digest=self._keys.digest("code", verification_id, code),
            created_at=now,
            expires_at=now + self._code_ttl,
        )
        account_digest = self._keys.digest("account", platform, named.kind, named.value)
        await self._repository.save_verification(verification, account_digest)
        return Started(verification_id, verification.expires_at, platform, named, code)

    async def deliver(self, started: Started) -> str | None:
        """Send the code to the account's contact on file, if there is such an account; the
        channel it went on, or None. Runs after the answer; never raises (a failure is logged:
        the person asks again)."""
        try:
            return await self._deliver(started)
        except Exception:
            log.exception(
                "could not deliver a verification code",
                extra={"verification_id": started.verification_id},
            )
            return None

    async def _deliver(self, started: Started) -> str | None:
        account = await self._directory.lookup(started.platform, started.named)
        if account is None:
            return None
        await self._repository.save_account(started.verification_id, account)
        for contact in account.contacts:
            if self._limiter.acquire([("contact", f"{contact.kind}:{contact.address}")]):
                log.warning(
                    "codes to this contact are over their limit: none sent",
                    extra={"verification_id": started.verification_id, "contact": contact.kind},
                )
                return None
            try:
                return await self._messenger.send(
                    started.verification_id, account, contact, started.code, started.expires_at
                )
            except CodeRefused as refused:
                log.info(
                    "no channel took the code for this contact; trying the next",
                    extra={"contact": contact.kind, "reason": str(refused)},
                )
        return None

    async def check(self, verification_id: str, code: str, client: str) -> tuple[str, HelpSession]:
        """The session token a right code opens, and the session."""
        self._limit([("check", client)], "code checks")
        verification = await self._repository.verification(verification_id)
        if verification is None:
            raise NotFound("no such verification: ask for a new code")
        now = self._clock()
        if now >= verification.expires_at:
            raise Unprocessable("the code has expired: ask for a new one", code="code_expired")
        attempt = await self._repository.take_attempt(verification_id, self._attempts, now)
        if attempt is None:
            raise Unprocessable(
                "too many tries for this code: ask for a new one", code="attempts_exhausted"
            )
        # Read whether or not the code is right, so both answers cost the same.
        account = await self._repository.account(verification_id)
        right = hmac.compare_digest(
            self._keys.digest("code", verification_id, code.strip()), verification.code_digest
        )
        if not right or account is None:
            raise Unprocessable(
                "that code is not right",
                code="code_rejected",
                attempts_left=self._attempts - attempt - 1,
            )
        if not await self._repository.use(verification_id, now):
            raise Unprocessable("this code was used already: ask for a new one", code="code_used")
        return self.sessions.mint(account.platform, account.user_id, verification_id)

    async def flush_expiries(self) -> int:
        """Write down when the verifications started lately expire (minute buckets)."""
        return await self._repository.flush_expiries(self._clock())

    async def sweep_expired(self) -> int:
        """Delete what is stored of every verification whose code expired."""
        return await self._repository.sweep_expired(self._clock(), self._attempts)

    def _limit(self, keys: list[tuple[str, str]], what: str) -> None:
        wait = self._limiter.acquire(keys)
        if wait is not None:
            raise TooManyRequests(f"too many {what}: try again later", retry_after_s=wait)


def _named(platform: str, account: str) -> Identifier:
    violations = []
    if platform not in platforms.NAMES:
        violations.append(
            FieldViolation("platform", f"must be one of {', '.join(platforms.NAMES)}")
        )
    named = identifier(account)
    if named is None:
        violations.append(
            FieldViolation("account", "a handle, or the phone number or email address on file")
        )
    if violations or named is None:
        raise ValidationFailed(violations)
    return named

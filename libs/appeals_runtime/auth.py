"""Who is calling, and what they may touch.

Every caller presents a JWT signed by a key in the configured JWKS. The algorithm is pinned
(EdDSA by default, never "none" or whatever the token header claims), expiry, issuer and audience
are enforced. Claims the pipeline reads:

* ``sub``: the surface, agent, operator or internal service id;
* ``role``: ``surface`` (a product submitting appeals), ``agent`` (a reviewer), ``ops``, or
  ``service`` (one of the pipeline's own services calling another, e.g. routing asking intake for
  an appellant's statement);
* ``platforms``: for surfaces, the platforms whose appeals they may submit and read;
* ``scope``: space-separated permissions (``appeals:submit appeals:read``, ``cases:work``,
  ``audit:read``, ``particulars:read``);
* ``queues``: for agents, the review queues they work (``*`` for all).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import jwt
from pydantic import Field, FilePath

from appeals_runtime.settings import ServiceSettings, SettingsError

AUDIENCE = "appeals-pipeline"
DEV_ISSUER = "appeals-dev"


class Role(StrEnum):
    SURFACE = "surface"
    AGENT = "agent"
    OPS = "ops"
    # The pipeline's own services; never given to people or product surfaces.
    SERVICE = "service"
    # An external body cases are referred to (the Oversight Board, a certified out-of-court
    # dispute settlement body); the token's subject is the body's id.
    REFERRAL_BODY = "referral_body"
    # A regulator's or an external auditor's reader: the audit log, its proofs, exports and
    # reports, and nothing personal (no appeal look-ups at intake, no ops page).
    AUDITOR = "auditor"


class Scope(StrEnum):
    SUBMIT = "appeals:submit"
    READ = "appeals:read"
    WORK_CASES = "cases:work"
    READ_AUDIT = "audit:read"
    # The appellant's personal data (user id, contact, statement) that only intake keeps.
    READ_PARTICULARS = "particulars:read"
    # Read and decide the referrals made to the token's body.
    DECIDE_REFERRALS = "referrals:decide"
    # Have intake forget an appellant (GDPR Art. 17): a surface for its platforms' users, ops
    # for anyone's.
    ERASE_PARTICULARS = "particulars:erase"
    # Have notifications send a one-time verification code to an account's contact on file
    # (the live-help service proving that a locked-out person controls the account).
    SEND_CODES = "codes:send"
    # Relay an agent's side of a live-help chat to the help service that owns the chat
    # (routing's desk calling live help's internal API).
    RELAY_CHATS = "chats:relay"


DEFAULT_SCOPES: dict[Role, tuple[Scope, ...]] = {
    Role.SURFACE: (Scope.SUBMIT, Scope.READ, Scope.ERASE_PARTICULARS),
    Role.AGENT: (Scope.WORK_CASES,),
    Role.OPS: (Scope.READ, Scope.READ_AUDIT, Scope.ERASE_PARTICULARS),
    Role.SERVICE: (Scope.READ_PARTICULARS,),
    Role.REFERRAL_BODY: (Scope.DECIDE_REFERRALS,),
    Role.AUDITOR: (Scope.READ_AUDIT,),
}


def with_article(role: str) -> str:
    """``an ops``, ``a surface``: a role's name as a sentence says it."""
    return f"{'an' if role[:1] in 'aeiou' else 'a'} {role}"


class Unauthenticated(Exception):  # noqa: N818 - named after the gRPC status it maps to
    """No credentials, or credentials that do not verify (HTTP 401, gRPC UNAUTHENTICATED)."""


class PermissionDenied(Exception):  # noqa: N818
    """Valid credentials that do not allow this action on this object (403, PERMISSION_DENIED)."""


class PlatformNotAllowed(PermissionDenied):
    """A token of the right kind, for other platforms than the one named."""


class AuthSettings(ServiceSettings):
    """Settings of services that authenticate callers. No default key: a service without one
    refuses to start rather than accept unauthenticated traffic."""

    auth_jwks_file: FilePath
    auth_issuer: str = DEV_ISSUER
    auth_audience: str = AUDIENCE
    auth_algorithms: list[str] = Field(default_factory=lambda: ["EdDSA"])


# Values of an agent token's `reviewer` claim; the first is assumed when it is absent.
REVIEWER_KINDS = ("person", "assistant")


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role
    scopes: frozenset[str]
    platforms: frozenset[str] = frozenset()
    queues: frozenset[str] = frozenset()
    # An agent token's `reviewer` claim: "assistant" for an automated reviewer (a scripted or
    # model-based desk client), "person" (the default) for a human. Only people's decisions
    # count as human review in the DSA export and reports.
    assistant: bool = False

    def require(self, scope: Scope, *, role: Role | None = None) -> None:
        if role is not None and self.role != role:
            raise PermissionDenied(
                f"this action needs {with_article(role)} token, not {with_article(self.role)} token"
            )
        if scope not in self.scopes:
            raise PermissionDenied(f"token lacks the {scope} scope")

    def require_platform(self, platform: str) -> None:
        """Surfaces act only for their platforms; ops may read every platform."""
        if not self.acts_for(platform):
            raise PlatformNotAllowed(f"token is not scoped to platform {platform!r}")

    def acts_for(self, platform: str) -> bool:
        return self.role == Role.OPS or platform in self.platforms

    def works_queue(self, queue: str) -> bool:
        return "*" in self.queues or queue in self.queues


class TokenVerifier:
    """Verifies bearer tokens against the JWKS. A surface or service sends the same token with
    every call until it expires, so a verified token is remembered (until its expiry, at most
    ``REMEMBER_S``): a signature check costs more CPU than the rest of a cheap request."""

    REMEMBER_S = 300.0
    REMEMBERED = 1024

    def __init__(
        self,
        jwks: dict[str, Any],
        *,
        issuer: str,
        audience: str,
        algorithms: list[str],
        leeway_s: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not algorithms or "none" in [a.lower() for a in algorithms]:
            raise ValueError("at least one real signing algorithm must be pinned")
        self._keys = {key.key_id: key for key in jwt.PyJWKSet.from_dict(jwks).keys}
        if not self._keys:
            raise ValueError("the JWKS holds no usable keys")
        self._issuer = issuer
        self._audience = audience
        self._algorithms = algorithms
        self._leeway_s = leeway_s
        self._clock = clock
        # token → (its principal, until when it may be taken without checking again)
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> TokenVerifier:
        """The verifier configured for a service, or exit naming the file at start-up."""
        try:
            return cls(
                json.loads(Path(settings.auth_jwks_file).read_text()),
                issuer=settings.auth_issuer,
                audience=settings.auth_audience,
                algorithms=settings.auth_algorithms,
            )
        except (OSError, ValueError, jwt.PyJWTError) as error:  # JSONDecodeError is a ValueError
            print(
                f"AUTH_JWKS_FILE {settings.auth_jwks_file} holds no usable signing keys: {error}",
                file=sys.stderr,
            )
            raise SettingsError(2) from error

    def verify(self, token: str) -> Principal:
        now = self._clock()
        remembered = self._verified.get(token)
        if remembered is not None:
            principal, until = remembered
            if now < until:
                return principal
            self._verified.pop(token, None)  # past its expiry: checked afresh
        claims = self._checked_claims(token)
        principal = _principal(claims)
        until = min(float(claims["exp"]), now + self.REMEMBER_S)
        if now < until:
            self._verified[token] = (principal, until)
            if len(self._verified) > self.REMEMBERED:
                with contextlib.suppress(KeyError):  # another thread emptied it meanwhile
                    self._verified.popitem(last=False)
        return principal

    def _checked_claims(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys.get(header.get("kid")) or (
                next(iter(self._keys.values())) if len(self._keys) == 1 else None
            )
            if key is None:
                raise Unauthenticated("token signed by an unknown key")
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"invalid token: {error}") from error
        return claims

    def verify_header(self, authorization: str | None) -> Principal:
        return self.verify(bearer_token(authorization))


def _principal(claims: dict[str, Any]) -> Principal:
    try:
        role = Role(claims.get("role", ""))
    except ValueError:
        raise Unauthenticated("token names no known role") from None
    scopes = claims.get("scope", "")
    if not isinstance(scopes, str):
        raise Unauthenticated("scope claim must be a space-separated string")
    reviewer = claims.get("reviewer", REVIEWER_KINDS[0])
    if reviewer not in REVIEWER_KINDS:
        raise Unauthenticated(f"reviewer claim must be one of {', '.join(REVIEWER_KINDS)}")
    return Principal(
        subject=str(claims["sub"]),
        role=role,
        scopes=frozenset(scopes.split()),
        platforms=frozenset(_string_list(claims, "platforms")),
        queues=frozenset(_string_list(claims, "queues")),
        assistant=reviewer == "assistant",
    )


def _string_list(claims: dict[str, Any], name: str) -> list[str]:
    value = claims.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Unauthenticated(f"{name} claim must be a list of strings")
    return value


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("missing Authorization: Bearer <token>")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization must use the Bearer scheme")
    return token.strip()

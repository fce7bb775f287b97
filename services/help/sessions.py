"""Help sessions: what a person who proved control of an account holds, for a short while.

A session is a signed token (JWT, HS256 with a key only this service has), not a stored
record: short-lived (``HELP_SESSION_TTL_S``, 30 minutes by default), narrowly scoped
(``help:session``: it opens live help for the one account it names and nothing else in the
pipeline; no other service accepts it) and refused once expired, however often it is replayed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from appeals_runtime.auth import Unauthenticated

ISSUER = "appeals-help"
AUDIENCE = "appeals-help"
SCOPE = "help:session"
ALGORITHM = "HS256"


@dataclass(frozen=True)
class HelpSession:
    platform: str
    user_id: str
    # The verification it came from: one session per code.
    session_id: str
    expires_at: datetime


class SessionTokens:
    def __init__(self, key: bytes, *, ttl: timedelta, clock: Callable[[], datetime]) -> None:
        self._key = key
        self._ttl = ttl
        self._clock = clock

    def mint(self, platform: str, user_id: str, session_id: str) -> tuple[str, HelpSession]:
        now = self._clock()
        expires = now + self._ttl
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": f"{platform}:{user_id}",
            "scope": SCOPE,
            "sid": session_id,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
        }
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM)
        return token, HelpSession(platform, user_id, session_id, expires)

    def seconds_left(self, session: HelpSession) -> float:
        """How long ``session`` has left by this service's clock (0 or less: it has ended)."""
        return (session.expires_at - self._clock()).total_seconds()

    def verify(self, token: str) -> HelpSession:
        """The session ``token`` opens; :class:`Unauthenticated` for a forged, foreign or
        expired one (the clock, not the token, decides)."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "sid"], "verify_exp": False},
            )
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"not a help session: {error}") from error
        expires = datetime.fromtimestamp(int(claims["exp"]), tz=self._clock().tzinfo)
        if self._clock() >= expires:
            raise Unauthenticated("the help session has expired: verify the account again")
        if claims.get("scope") != SCOPE:
            raise Unauthenticated("not a help session")
        platform, _, user_id = str(claims["sub"]).partition(":")
        return HelpSession(platform, user_id, str(claims["sid"]), expires)

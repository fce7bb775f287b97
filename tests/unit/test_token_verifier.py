"""Bearer tokens are checked once and remembered until they expire (no I/O but a temp key)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from appeals_devstack import devkeys
from appeals_runtime.auth import AUDIENCE, DEV_ISSUER, TokenVerifier, Unauthenticated


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def verifier(tmp_path: Path, clock: Clock) -> tuple[TokenVerifier, Path]:
    signing_key, jwks = devkeys.ensure(tmp_path)
    checker = TokenVerifier(
        json.loads(jwks.read_text()),
        issuer=DEV_ISSUER,
        audience=AUDIENCE,
        algorithms=["EdDSA"],
        clock=clock,
    )
    return checker, signing_key


def test_a_verified_token_is_remembered_until_it_expires(tmp_path: Path) -> None:
    clock = Clock()
    checker, key = verifier(tmp_path, clock)
    token = devkeys.mint_token(key, role="surface", subject="ig", platforms=["instagram"], ttl_s=60)
    first = checker.verify(token)
    assert first.subject == "ig" and first.platforms == {"instagram"}
    assert checker.verify(token) is first  # not checked again

    clock.now += 61  # past the token's expiry: checked afresh (the real check has a leeway)
    assert checker.verify(token) == first
    clock.now += TokenVerifier.REMEMBER_S
    assert checker.verify(token) == first


def test_expired_forged_and_foreign_tokens_are_refused_every_time(tmp_path: Path) -> None:
    clock = Clock()
    checker, key = verifier(tmp_path, clock)
    expired = devkeys.mint_token(key, role="surface", subject="ig", ttl_s=-60)
    good = devkeys.mint_token(key, role="surface", subject="ig")
    head, payload, signature = good.split(".")
    forged = ".".join([head, payload, signature[::-1]])
    _, other_key = verifier(tmp_path / "other", clock)
    foreign = devkeys.mint_token(other_key, role="surface", subject="ig")
    for token in (expired, forged, foreign):
        for _ in range(2):
            with pytest.raises(Unauthenticated):
                checker.verify(token)
    checker.verify(good)
    with pytest.raises(Unauthenticated):
        checker.verify(forged)  # a remembered token does not vouch for a look-alike


def test_the_memory_of_verified_tokens_is_bounded(tmp_path: Path) -> None:
    clock = Clock()
    checker, key = verifier(tmp_path, clock)
    tokens = [
        devkeys.mint_token(key, role="surface", subject=f"s{n}")
        for n in range(TokenVerifier.REMEMBERED + 5)
    ]
    for token in tokens:
        checker.verify(token)
    assert len(checker._verified) == TokenVerifier.REMEMBERED
    assert tokens[0] not in checker._verified and tokens[-1] in checker._verified


def test_an_agent_token_says_whether_a_person_or_an_automated_assistant_holds_it(
    tmp_path: Path,
) -> None:
    checker, key = verifier(tmp_path, Clock())

    def holder(reviewer: str | None) -> bool:
        token = devkeys.mint_token(key, role="agent", subject="r", reviewer=reviewer)
        return checker.verify(token).assistant

    assert (holder(None), holder("person"), holder("assistant")) == (False, False, True)
    with pytest.raises(Unauthenticated, match="reviewer claim"):
        holder("robot")

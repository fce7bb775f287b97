"""Particulars held in memory between an appeal's notices: for a while, for a few appeals, only
what intake actually answered, and only the part a message needs."""

from __future__ import annotations

import pytest

from appeals.v1 import intake_pb2
from appeals_runtime.errors import NotFound
from appeals_runtime.intake_client import ParticularsUnavailable
from services.notifications.held_particulars import HeldParticulars


class Intake:
    """Answers with the appeal id as the user id, counting every question; fails when told."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.failure: Exception | None = None

    async def get(self, appeal_id: str) -> intake_pb2.AppealParticulars:
        self.asked.append(appeal_id)
        if self.failure is not None:
            raise self.failure
        particulars = intake_pb2.AppealParticulars(
            appeal_id=appeal_id, user_id=f"user-of-{appeal_id}", statement="personal story"
        )
        particulars.contact.email = f"{appeal_id}@example.org"
        particulars.attachments.add()
        return particulars


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_an_answer_is_held_for_its_time_then_asked_again() -> None:
    intake, clock = Intake(), Clock()
    held = HeldParticulars(intake, hold_s=120, entries=10, clock=clock)
    assert (await held.get("a")).user_id == "user-of-a"
    clock.now += 119
    assert (await held.get("a")).user_id == "user-of-a"
    assert intake.asked == ["a"]
    clock.now += 2
    await held.get("a")
    assert intake.asked == ["a", "a"]


async def test_the_least_recently_used_appeal_goes_first_when_full() -> None:
    intake = Intake()
    held = HeldParticulars(intake, hold_s=120, entries=2, clock=Clock())
    for appeal_id in ("a", "b", "a", "c"):  # "a" used again, so "b" is the oldest when "c" comes
        await held.get(appeal_id)
    assert len(held) == 2
    await held.get("a")
    await held.get("b")
    assert intake.asked == ["a", "b", "c", "b"]


@pytest.mark.parametrize(
    "failure", [NotFound("no appeal a"), ParticularsUnavailable("intake is down")]
)
async def test_what_intake_could_not_answer_is_asked_again(failure: Exception) -> None:
    intake = Intake()
    held = HeldParticulars(intake, hold_s=120, entries=10, clock=Clock())
    intake.failure = failure
    with pytest.raises(type(failure)):
        await held.get("a")
    intake.failure = None
    assert (await held.get("a")).user_id == "user-of-a"
    assert intake.asked == ["a", "a"]
    assert len(held) == 1


async def test_a_hold_of_zero_asks_every_time() -> None:
    intake = Intake()
    held = HeldParticulars(intake, hold_s=0, entries=10, clock=Clock())
    await held.get("a")
    await held.get("a")
    assert intake.asked == ["a", "a"]
    assert len(held) == 0


async def test_only_who_and_where_are_held_never_the_statement_or_attachments() -> None:
    held = HeldParticulars(Intake(), hold_s=120, entries=10, clock=Clock())
    for _ in range(2):  # asked, then held
        particulars = await held.get("a")
        assert (particulars.appeal_id, particulars.user_id) == ("a", "user-of-a")
        assert particulars.contact.email == "a@example.org"
        assert particulars.statement == ""
        assert len(particulars.attachments) == 0


async def test_an_erasure_drops_what_is_held_at_once() -> None:
    intake = Intake()
    held = HeldParticulars(intake, hold_s=120, entries=10, clock=Clock())
    await held.get("a")
    held.forget("a")
    held.forget("never-held")
    assert len(held) == 0
    await held.get("a")
    assert intake.asked == ["a", "a"]  # asked intake again, which now answers "erased"

"""Forgetting an appellant at intake (GDPR Art. 17, issue 13 item 5), on the real broker and store:
every appeal of theirs loses its particulars, nothing in intake's store names them any more, the
pseudonym their events carry can no longer be linked to them, each erasure is announced on the
lifecycle topic, and an appeal still on its way when they were forgotten is erased as it is listed.
"""

from __future__ import annotations

import uuid
from typing import Any

import bson
import grpc
import pytest

from appeals import topics, vocabulary
from appeals.events import new_event
from appeals.v1 import appeal_pb2, events_pb2, intake_pb2, intake_pb2_grpc
from appeals_runtime import store
from appeals_runtime.kafka.consumer import InboundMessage
from services.intake import identity
from services.intake.consumer import StatusProjection
from tests.support.bodies import fresh_body
from tests.support.intake_app import IntakeUnderTest, serving_grpc
from tests.support.kafka import read_to_end

pytestmark = pytest.mark.integration

PLATFORM = "instagram"


def personal_body(user_id: str, n: int) -> dict[str, Any]:
    return fresh_body(
        appellant={
            "user_id": user_id,
            "contact": {"email": f"{user_id}-{n}@example.org", "phone": "+4915112345678"},
        },
        statement=f"Statement {user_id}-{n}: a quotation from the evening news.",
        attachments=[
            {"media_type": "image/png", "uri": f"https://cdn.example/{user_id}-{n}.png",
             "size_bytes": 10}
        ],
    )  # fmt: skip


async def pseudonym_of(intake: IntakeUnderTest, user_id: str) -> str | None:
    key = identity.appellant_key(b"test-pseudonym-key", vocabulary.PLATFORMS[PLATFORM], user_id)
    return await intake.repository.appellants.known_pseudonym(key)


async def submitted(intake: IntakeUnderTest, body: dict[str, Any]) -> tuple[str, str]:
    """Submits; returns the appeal id and the pseudonym its submitted event carries."""
    answer = await intake.submit(body)
    assert answer.status_code == 202, answer.text
    pseudonym = await pseudonym_of(intake, body["appellant"]["user_id"])
    assert pseudonym is not None
    return answer.json()["appeal_id"], pseudonym


async def come_by(intake: IntakeUnderTest, appeal_id: str, pseudonym: str) -> None:
    """The status projection handles the appeal's submitted event, as from the topic."""
    event = new_event(
        event_id=identity.submitted_event_id(appeal_id),
        appeal_id=appeal_id,
        producer="intake",
        submitted=events_pb2.AppealSubmitted(channel="rest", appellant_pseudonym=pseudonym),
    )
    message = InboundMessage(topics.APPEAL_LIFECYCLE.name, 0, 0, appeal_id, event, {}, 0)
    await StatusProjection(intake.repository, intake.intake.erasures).handle(message)


async def erase(intake: IntakeUnderTest, user_id: str, **token: Any) -> Any:
    response = await intake.client.post(
        "/v1/erasures",
        json={"platform": PLATFORM, "user_id": user_id},
        headers=intake.headers(**token),
    )
    return response


async def stored_bytes(db: store.Database) -> bytes:
    """Every document of every collection intake wrote, as BSON."""
    found = []
    for name in await db.list_collection_names():
        found += [bson.encode(d) for d in await db[name].find({}).to_list()]
    return b"\x00".join(found)


async def test_an_erasure_forgets_the_appellant_on_every_appeal_and_frees_what_named_them(
    intake: IntakeUnderTest, db: store.Database, infra: Any
) -> None:
    user, other = f"u{uuid.uuid4().hex[:12]}", f"v{uuid.uuid4().hex[:12]}"
    bodies = [personal_body(user, 1), personal_body(user, 2)]
    first, pseudonym = await submitted(intake, bodies[0])
    second, again = await submitted(intake, bodies[1])
    kept, other_pseudonym = await submitted(intake, personal_body(other, 3))
    assert again == pseudonym != other_pseudonym  # one person, one random name
    for appeal_id in (first, second):
        await come_by(intake, appeal_id, pseudonym)
    await come_by(intake, kept, other_pseudonym)
    secrets = [user.encode()] + [
        value.encode()
        for body in bodies
        for value in (body["statement"], body["appellant"]["contact"]["email"],
                      body["attachments"][0]["uri"])
    ]  # fmt: skip
    held = await stored_bytes(db)
    assert all(secret in held for secret in secrets)  # the search sees them while they are kept
    # Intake answers particulars of appeals it just recorded from memory: the erasure must
    # reach those too.
    assert all(intake.repository.fresh.get(appeal_id) for appeal_id in (first, second))

    done = await erase(intake, user)
    assert done.status_code == 200, done.text
    assert done.json()["appeals_erased"] == 2
    erasure_id = done.json()["erasure_id"]

    held = await stored_bytes(db)
    leaks = [secret for secret in secrets if secret in held]
    assert not leaks, f"still stored after the erasure: {leaks}"
    assert other.encode() in held  # only that person
    for appeal_id in (first, second):
        view = await intake.client.get(f"/v1/appeals/{appeal_id}", headers=intake.headers())
        assert view.status_code == 200, view.text
        shown = view.json()
        assert shown["erased"] is True and shown["statement"] == ""
        assert shown["appellant"]["user_id"] == ""
        assert shown["subject"] == {
            "kind": "post",
            "id": bodies[appeal_id == second]["subject"]["id"],
        }
        record = await intake.repository.get_appeal(appeal_id)
        assert record is not None and record.particulars().erased
        served = await intake.repository.particulars_record(appeal_id)
        assert served is not None and served.particulars().erased
    record = await intake.repository.get_appeal(kept)
    assert record is not None and record.particulars().user_id == other

    # Each appeal's erasure is announced (audit logs it), once per appeal.
    announced = [
        event
        for record in await read_to_end(infra.kafka_bootstrap_servers, topics.APPEAL_LIFECYCLE.name)
        if (event := topics.APPEAL_LIFECYCLE.decode(record.value)).HasField("particulars_erased")
        and event.appeal_id in (first, second)
    ]
    assert sorted(e.appeal_id for e in announced) == sorted((first, second))
    assert {e.particulars_erased.erasure_id for e in announced} == {erasure_id}
    assert {e.particulars_erased.requested_by for e in announced} == {"surface-tests"}

    # The slot the open appeal held (its _id named the user) is gone: the item can be appealed,
    # and the person who comes back is a new name, not linked to the old one.
    anew = await intake.submit(bodies[0] | {"statement": "Once more."})
    assert anew.status_code == 202, anew.text
    renamed = await pseudonym_of(intake, user)
    assert renamed not in (None, pseudonym)
    await come_by(intake, anew.json()["appeal_id"], str(renamed))

    repeated = await erase(intake, user)
    assert repeated.status_code == 200 and repeated.json()["appeals_erased"] == 1  # the new one
    unknown = await erase(intake, f"n{uuid.uuid4().hex[:12]}")
    assert unknown.status_code == 200 and unknown.json()["appeals_erased"] == 0


async def test_an_appeal_on_its_way_when_its_appellant_is_forgotten_is_erased_when_listed(
    intake: IntakeUnderTest, db: store.Database
) -> None:
    user = f"w{uuid.uuid4().hex[:12]}"
    body = personal_body(user, 1)
    appeal_id, pseudonym = await submitted(intake, body)
    # Forgotten before the status projection listed the appeal under them.
    done = await erase(intake, user)
    assert done.status_code == 200 and done.json()["appeals_erased"] == 0
    await come_by(intake, appeal_id, pseudonym)
    record = await intake.repository.get_appeal(appeal_id)
    assert record is not None and record.erased_at is not None
    assert body["statement"].encode() not in await stored_bytes(db)
    await come_by(intake, appeal_id, pseudonym)  # redelivered: erased again, listed never
    chain = await intake.repository.appellants.chain(pseudonym)
    assert chain.appeal_ids == [] and chain.tombstone is not None
    assert chain.tombstone.requested_by == "surface-tests"


async def test_who_may_erase_whom(intake: IntakeUnderTest) -> None:
    user = f"x{uuid.uuid4().hex[:12]}"
    appeal_id, pseudonym = await submitted(intake, personal_body(user, 1))
    await come_by(intake, appeal_id, pseudonym)
    refused = {
        "another platform's surface": await erase(intake, user, platforms=("facebook",)),
        "an agent": await erase(intake, user, role="agent"),
        "a service": await erase(intake, user, role="service"),
    }
    for who, answer in refused.items():
        assert answer.status_code == 403, (who, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
    anonymous = await intake.client.post(
        "/v1/erasures", json={"platform": PLATFORM, "user_id": user}
    )
    assert anonymous.status_code == 401
    invalid = await intake.client.post(
        "/v1/erasures", json={"platform": PLATFORM, "user_id": "has spaces"},
        headers=intake.headers(),
    )  # fmt: skip
    assert invalid.status_code == 400, invalid.text
    assert invalid.json()["invalid_params"][0]["name"] == "user_id"
    record = await intake.repository.get_appeal(appeal_id)
    assert record is not None and record.erased_at is None
    by_ops = await erase(intake, user, role="ops")
    assert by_ops.status_code == 200 and by_ops.json()["appeals_erased"] == 1


async def test_the_grpc_twin_erases_the_same_way(intake: IntakeUnderTest) -> None:
    user = f"g{uuid.uuid4().hex[:12]}"
    appeal_id, pseudonym = await submitted(intake, personal_body(user, 1))
    await come_by(intake, appeal_id, pseudonym)
    request = intake_pb2.EraseAppellantRequest(platform=appeal_pb2.PLATFORM_INSTAGRAM, user_id=user)
    async with (
        serving_grpc(intake) as target,
        grpc.aio.insecure_channel(target) as channel,
    ):
        stub = intake_pb2_grpc.IntakeStub(channel)
        metadata = (("authorization", f"Bearer {intake.token()}"),)
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await stub.EraseAppellant(
                intake_pb2.EraseAppellantRequest(user_id=user), metadata=metadata
            )
        done = await stub.EraseAppellant(request, metadata=metadata)
        again = await stub.EraseAppellant(request, metadata=metadata)
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (done.appeals_erased, again.appeals_erased) == (1, 0)
    assert done.erasure_id.startswith("er_") and done.HasField("erased_at")
    record = await intake.repository.get_appeal(appeal_id)
    assert record is not None and record.erased_at is not None

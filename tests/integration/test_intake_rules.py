"""Intake's rules against the real broker and store: idempotency, eligibility, one open appeal,
abuse limits, ban evasion, body limits, unknown fields."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from appeals import topics
from appeals.events import derived_event_id, new_event
from appeals.v1 import appeal_pb2, events_pb2
from appeals_devstack.stack import Infrastructure
from appeals_runtime import store
from appeals_runtime.kafka.consumer import InboundMessage
from appeals_runtime.kafka.producer import EventProducer
from appeals_runtime.rate_limits import Limit
from services.intake.consumer import StatusProjection
from services.intake.model import status_change
from tests.support.bodies import fresh_body
from tests.support.intake_app import IntakeUnderTest, start_intake
from tests.support.kafka import read_all

pytestmark = pytest.mark.integration


async def test_same_key_same_body_replays_and_a_different_body_is_422(
    intake: IntakeUnderTest,
) -> None:
    body, key = fresh_body(), uuid.uuid4().hex
    first = await intake.submit(body, key=key)
    again = await intake.submit(body, key=key)
    other = await intake.submit(fresh_body(), key=key)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"


async def test_the_same_key_while_the_first_request_is_in_flight_is_409(
    intake: IntakeUnderTest,
) -> None:
    body, key = fresh_body(), uuid.uuid4().hex
    # Reserve the key as the first request would, without finishing it.
    from services.intake import identity
    from services.intake.schemas import AppealIn

    scope = identity.idempotency_scope("surface-tests", key)
    proto = AppealIn.model_validate(body).to_proto()
    await intake.repository.reserve_key(
        scope,
        identity.fingerprint(proto),
        identity.new_appeal_id(),
        datetime.now(UTC),
        timedelta(hours=1),
    )
    response = await intake.submit(body, key=key)
    assert response.status_code == 409
    assert response.json()["code"] == "request_in_flight"
    assert int(response.headers["retry-after"]) >= 1


async def test_an_abandoned_reservation_is_taken_over_with_its_appeal_id(
    db: store.Database, producer: EventProducer, tmp_path: Path
) -> None:
    intake = await start_intake(
        db, producer, tmp_path, policy_overrides={"in_flight": timedelta(seconds=0)}
    )
    from services.intake import identity
    from services.intake.schemas import AppealIn

    body, key = fresh_body(), uuid.uuid4().hex
    proto = AppealIn.model_validate(body).to_proto()
    crashed_id = identity.new_appeal_id()
    await intake.repository.reserve_key(
        identity.idempotency_scope("surface-tests", key), identity.fingerprint(proto), crashed_id,
        datetime.now(UTC) - timedelta(minutes=1), timedelta(hours=1),
    )  # fmt: skip
    response = await intake.submit(body, key=key)
    assert response.status_code == 202
    assert response.json()["appeal_id"] == crashed_id


async def test_expired_keys_may_be_used_again_for_a_new_appeal(
    db: store.Database, producer: EventProducer, tmp_path: Path
) -> None:
    now = [datetime.now(UTC)]
    intake = await start_intake(db, producer, tmp_path, clock=lambda: now[0],
                                policy_overrides={"key_ttl": timedelta(minutes=10)})  # fmt: skip
    key = uuid.uuid4().hex
    first = await intake.submit(fresh_body(), key=key)
    now[0] += timedelta(minutes=11)
    second = await intake.submit(fresh_body(), key=key)
    assert first.status_code == second.status_code == 202
    assert first.json()["appeal_id"] != second.json()["appeal_id"]
    assert await intake.intake.sweep_expired_keys() == 0  # the expired one was replaced on use
    now[0] += timedelta(minutes=11)
    assert await intake.intake.sweep_expired_keys() == 1


async def test_a_missing_key_is_400(intake: IntakeUnderTest) -> None:
    headers = intake.headers()
    del headers["Idempotency-Key"]
    response = await intake.client.post("/v1/appeals", json=fresh_body(), headers=headers)
    assert response.status_code == 400
    assert [p["name"] for p in response.json()["invalid_params"]] == ["Idempotency-Key"]


def decision(appeal_id: str, outcome: appeal_pb2.Outcome.ValueType) -> events_pb2.AppealEvent:
    return new_event(
        event_id=derived_event_id(appeal_id, "decided"),
        appeal_id=appeal_id,
        producer="tests",
        decided=events_pb2.AppealDecided(outcome=outcome),
    )


async def project(intake: IntakeUnderTest, event: events_pb2.AppealEvent) -> None:
    """Intake's status projection handles ``event`` as the lifecycle consumer would."""
    await StatusProjection(intake.repository, intake.intake.erasures).handle(
        InboundMessage("t", 0, 0, event.appeal_id, event, {}, 0)
    )


async def test_a_second_open_appeal_about_the_same_item_is_409_until_the_first_is_decided(
    intake: IntakeUnderTest,
) -> None:
    body = fresh_body()
    first = await intake.submit(body)
    second = await intake.submit(body | {"statement": "Please look again."})
    assert second.status_code == 409
    assert second.json()["open_appeal_id"] == first.json()["appeal_id"]
    # The first appeal is decided: the slot opens again.
    appeal_id = first.json()["appeal_id"]
    await project(intake, decision(appeal_id, appeal_pb2.OUTCOME_UPHELD))
    third = await intake.submit(body | {"statement": "A new appeal after the answer."})
    assert third.status_code == 202, third.text
    record = await intake.repository.get_appeal(appeal_id)
    assert record is not None and (record.status, record.outcome) == ("decided", "upheld")


async def test_a_decision_redelivered_after_a_crash_between_its_writes_frees_the_slot(
    intake: IntakeUnderTest,
) -> None:
    body = fresh_body()
    first = await intake.submit(body)
    appeal_id = first.json()["appeal_id"]
    decided = decision(appeal_id, appeal_pb2.OUTCOME_OVERTURNED)
    # The first delivery applied the status and died before freeing the slot.
    change = status_change(decided)
    assert change is not None
    assert await intake.repository.apply_status(appeal_id, decided.event_id, change)
    still_open = await intake.submit(body | {"statement": "Please look again."})
    assert still_open.status_code == 409, still_open.text
    await project(intake, decided)
    again = await intake.submit(body | {"statement": "A new appeal after the answer."})
    assert again.status_code == 202, again.text


async def test_a_slot_left_by_a_crashed_submit_is_taken_over_once_nothing_can_use_it(
    db: store.Database, producer: EventProducer, tmp_path: Path
) -> None:
    """A submit that died between holding the item's slot and the broker's acknowledgement
    leaves a slot nothing would free: the next request about the item takes it over once the
    in-flight window has passed, but never a slot an acknowledged appeal holds."""
    from services.intake import identity
    from services.intake.schemas import AppealIn

    now = [datetime.now(UTC)]
    intake = await start_intake(db, producer, tmp_path, clock=lambda: now[0],
                                policy_overrides={"in_flight": timedelta(seconds=30)})  # fmt: skip
    crashed, answered = fresh_body(), fresh_body()
    crashed_id = identity.new_appeal_id()
    slot = identity.open_appeal_slot(AppealIn.model_validate(crashed).to_proto())
    assert await intake.repository.claim_open_slot(
        slot, crashed_id, now[0], abandoned_after=timedelta(seconds=30)
    ) == crashed_id  # fmt: skip
    first = await intake.submit(answered)
    assert first.status_code == 202

    still_in_flight = await intake.submit(crashed)
    assert still_in_flight.status_code == 409
    assert still_in_flight.json()["open_appeal_id"] == crashed_id
    now[0] += timedelta(seconds=31)
    taken_over = await intake.submit(crashed)
    assert taken_over.status_code == 202, taken_over.text
    assert taken_over.json()["appeal_id"] != crashed_id
    held = await intake.submit(answered)  # acknowledged long ago: still the open appeal
    assert held.status_code == 409
    assert held.json()["open_appeal_id"] == first.json()["appeal_id"]


async def test_an_appeal_without_the_original_decider_is_400_naming_the_field(
    intake: IntakeUnderTest,
) -> None:
    body = fresh_body()
    body["decision"] = {k: v for k, v in dict(body["decision"]).items() if k != "decided_by"}
    response = await intake.submit(body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [p["name"] for p in response.json()["invalid_params"]] == ["decision.decided_by"]


async def test_ineligible_appeals_are_422_with_the_reason(intake: IntakeUnderTest) -> None:
    old = fresh_body()
    old["decision"] = dict(old["decision"]) | {"decided_at": "2025-01-01T00:00:00Z"}
    court = fresh_body()
    court["decision"] = dict(court["decision"]) | {"non_appealable_reason": "court_order"}
    closed, ordered = await intake.submit(old), await intake.submit(court)
    assert (closed.status_code, closed.json()["code"]) == (422, "appeal_window_closed")
    assert (ordered.status_code, ordered.json()["code"]) == (422, "not_appealable")
    assert "court" in ordered.json()["detail"]


async def test_a_reporter_may_appeal_a_decision_not_to_act(intake: IntakeUnderTest) -> None:
    body = fresh_body()
    body["appellant"] = dict(body["appellant"]) | {"role": "reporter"}
    body["decision"] = dict(body["decision"]) | {"action": "no_action"}
    assert (await intake.submit(body)).status_code == 202


async def test_a_flooding_appellant_gets_429_while_others_keep_their_latency(
    db: store.Database, producer: EventProducer, tmp_path: Path
) -> None:
    intake = await start_intake(
        db, producer, tmp_path, limits={"appellant": Limit(burst=3, per_hour=10)}
    )

    async def timed(body: dict[str, Any]) -> tuple[int, float]:
        started = time.perf_counter()
        response = await intake.submit(body)
        return response.status_code, time.perf_counter() - started

    baseline = [await timed(fresh_body()) for _ in range(5)]
    flooder = fresh_body()
    flood = [
        intake.submit(flooder | {"subject": {"kind": "post", "id": uuid.uuid4().hex[:12]}})
        for _ in range(60)
    ]
    others = [timed(fresh_body()) for _ in range(5)]
    flooded, during = await asyncio.gather(asyncio.gather(*flood), asyncio.gather(*others))
    flood_codes = [r.status_code for r in flooded]
    assert flood_codes.count(202) == 3
    assert flood_codes.count(429) == 57
    limited = next(r for r in flooded if r.status_code == 429)
    assert int(limited.headers["retry-after"]) > 0
    assert all(code == 202 for code, _ in during)
    # Refusals cost no I/O, so others see about their usual latency (generous bound: shared CI).
    worst_baseline = max(seconds for _, seconds in baseline)
    assert max(seconds for _, seconds in during) < 10 * worst_baseline + 0.5


async def test_an_appellant_linked_to_ban_evasion_is_flagged_never_dropped(
    intake: IntakeUnderTest, infra: Infrastructure
) -> None:
    linked = f"h-{uuid.uuid4().hex}"
    added = await intake.client.post(
        "/v1/ban-evasion/identifiers", json={"hashes": [linked]}, headers=intake.headers(role="ops")
    )
    assert added.json() == {"added": 1}
    refused = await intake.client.post(
        "/v1/ban-evasion/identifiers", json={"hashes": [linked]}, headers=intake.headers()
    )
    assert refused.status_code == 403
    body = fresh_body(signals={"linked_account_hashes": [linked, "h-unrelated-1"]})
    response = await intake.submit(body)
    assert response.status_code == 202
    appeal_id = response.json()["appeal_id"]

    async def submitted() -> events_pb2.AppealEvent | None:
        for record in await read_all(infra.kafka_bootstrap_servers, topics.APPEAL_LIFECYCLE.name,
                                     expect=100_000, timeout_s=2):  # fmt: skip
            event = topics.APPEAL_LIFECYCLE.decode(record.value)
            if event.appeal_id == appeal_id:
                return event
        return None

    event = await submitted()
    assert event is not None and event.submitted.ban_evasion_suspected
    # The flag is stored with the acknowledged mark (a document of its own): look-ups read it.
    stored = await intake.repository.get_appeal(appeal_id)
    assert stored is not None and stored.acknowledged and stored.ban_evasion_suspected
    assert event.submitted.appellant_pseudonym.startswith("psn_")
    assert body["appellant"]["user_id"] not in event.submitted.appellant_pseudonym


async def test_oversized_bodies_and_unknown_or_server_owned_fields_are_refused(
    intake: IntakeUnderTest,
) -> None:
    huge = fresh_body(statement="x" * 70_000)
    assert (await intake.submit(huge)).status_code == 413
    sneaky = await intake.submit(fresh_body(status="decided", priority=100))
    assert sneaky.status_code == 400
    assert {p["name"] for p in sneaky.json()["invalid_params"]} == {"status", "priority"}
    bad = {"media_type": "application/x-msdownload", "uri": "http://x", "size_bytes": 0}
    too_many = await intake.submit(fresh_body(attachments=[bad] * 6))
    assert {p["name"] for p in too_many.json()["invalid_params"]} == {"attachments"}
    one_bad = await intake.submit(fresh_body(attachments=[bad]))
    assert {p["name"] for p in one_bad.json()["invalid_params"]} == {
        "attachments[0].media_type", "attachments[0].uri", "attachments[0].size_bytes",
    }  # fmt: skip


async def test_a_chunked_body_is_measured_as_it_streams_in(intake: IntakeUnderTest) -> None:
    """Without Content-Length the limit holds too, and a body within it reaches the app whole."""

    def chunked(body: dict[str, Any]) -> Any:
        data = json.dumps(body).encode()

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(data), 1000):
                yield data[start : start + 1000]

        return chunks()

    headers = intake.headers() | {"Content-Type": "application/json"}
    small = await intake.client.post("/v1/appeals", content=chunked(fresh_body()), headers=headers)
    assert small.status_code == 202, small.text
    over = fresh_body(statement="x" * 70_000)
    huge = await intake.client.post("/v1/appeals", content=chunked(over), headers=headers)
    assert huge.status_code == 413
    assert huge.headers["content-type"] == "application/problem+json"


async def test_json_bodies_are_utf8_only(intake: IntakeUnderTest) -> None:
    """RFC 8259 §8.1: a body in UTF-16 (which a guessing parser would read) is refused with a
    problem body, and so is one declared in another charset; UTF-8, declared or not, is taken."""
    body = fresh_body(statement="Zitat aus den Nachrichten: „Grüße“, kein Hass.")
    text = json.dumps(body, ensure_ascii=False)
    headers = intake.headers()
    utf16 = await intake.client.post(
        "/v1/appeals", content=text.encode("utf-16"),
        headers=headers | {"Content-Type": "application/json"},
    )  # fmt: skip
    assert utf16.status_code == 400, utf16.text
    assert utf16.headers["content-type"].startswith("application/problem+json")
    assert "UTF-8" in utf16.json()["detail"]
    declared = await intake.client.post(
        "/v1/appeals", content=text.encode("utf-16"),
        headers=intake.headers() | {"Content-Type": "application/json; charset=utf-16"},
    )  # fmt: skip
    assert declared.status_code == 415, declared.text
    assert declared.headers["content-type"].startswith("application/problem+json")
    taken = await intake.client.post(
        "/v1/appeals", content=text.encode("utf-8"),
        headers=intake.headers() | {"Content-Type": "application/json; charset=UTF-8"},
    )  # fmt: skip
    assert taken.status_code == 202, taken.text

"""A way in without the account (issue 17, item 1), on the real store with the real notifications
app sending the codes: a person proves control of an account with a code sent to the contact on
file, and nobody learns which accounts exist, guesses a code, or reuses a code or a session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from appeals_devstack import devkeys
from appeals_runtime import store
from appeals_runtime.rate_limits import Limit
from services.help.repository import ACCOUNTS, ATTEMPTS, USES, VERIFICATIONS
from services.notifications.repository import CODES
from tests.support.live_help import CODE, GENEROUS, LiveHelp, live_help
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

# DEVELOPMENT-ONLY sample accounts (services/help/dev_accounts.yaml).
LENA = ("instagram", "lena.k")
RAFAEL_BY_PHONE = ("whatsapp", "+55 11 95550-0002")


@pytest.fixture
async def helpdesk(db: store.Database, tmp_path: Path) -> AsyncIterator[LiveHelp]:
    async with live_help(db, tmp_path) as started:
        yield started


async def test_a_code_to_the_contact_on_file_opens_a_help_session(helpdesk: LiveHelp) -> None:
    started = await helpdesk.start(*LENA)
    assert started.status_code == 202, started.text
    verification_id = started.json()["verification_id"]

    code = await helpdesk.code_sent_for(verification_id)
    record = await helpdesk.db[CODES].find_one({"_id": verification_id})
    assert record is not None
    # Lena's account has an email and a phone on file; locally no SMTP is configured, so the
    # code went to her phone over WhatsApp (a recording sink here), in her language.
    assert (record["channel"], record["recipient"], record["locale"]) == (
        "whatsapp_template", "phone", "de"
    )  # fmt: skip
    assert "Bestätigungscode" in record["subject"]

    checked = await helpdesk.check(verification_id, code)
    assert checked.status_code == 200, checked.text
    session = checked.json()
    assert session["platform"] == "instagram" and session["token_type"] == "Bearer"

    shown = await helpdesk.client.get(
        "/v1/help/session", headers={"Authorization": f"Bearer {session['session_token']}"}
    )
    assert shown.status_code == 200
    assert shown.json()["platform"] == "instagram"


async def test_a_phone_number_names_the_account_however_it_is_typed(helpdesk: LiveHelp) -> None:
    started = await helpdesk.start(*RAFAEL_BY_PHONE)
    code = await helpdesk.code_sent_for(started.json()["verification_id"])
    assert (await helpdesk.check(started.json()["verification_id"], code)).status_code == 200


async def test_nobody_learns_which_accounts_exist(helpdesk: LiveHelp) -> None:
    known = await helpdesk.start(*LENA)
    unknown = await helpdesk.start("instagram", "nobody.here")
    assert (known.status_code, unknown.status_code) == (202, 202)
    assert set(known.json()) == set(unknown.json())
    assert known.json()["message"] == unknown.json()["message"]
    await helpdesk.code_sent_for(known.json()["verification_id"])
    assert await helpdesk.db[CODES].find_one({"_id": unknown.json()["verification_id"]}) is None

    # Any code for an account that does not exist is refused exactly like a wrong code.
    wrong_for_known = await helpdesk.check(known.json()["verification_id"], "000000")
    any_for_unknown = await helpdesk.check(unknown.json()["verification_id"], "000000")
    assert wrong_for_known.status_code == any_for_unknown.status_code == 422

    def shown(response: httpx.Response) -> tuple[object, ...]:
        problem = response.json()
        return problem["title"], problem["detail"], problem["code"], problem["attempts_left"]

    assert shown(wrong_for_known) == shown(any_for_unknown)
    assert shown(wrong_for_known)[2:] == ("code_rejected", 4)


async def test_guessing_stops_after_the_allowed_tries_even_for_the_right_code(
    helpdesk: LiveHelp,
) -> None:
    verification_id = (await helpdesk.start(*LENA)).json()["verification_id"]
    code = await helpdesk.code_sent_for(verification_id)
    wrong = "0" * 6 if code != "0" * 6 else "1" * 6

    left = [
        (await helpdesk.check(verification_id, wrong)).json()["attempts_left"] for _ in range(5)
    ]
    assert left == [4, 3, 2, 1, 0]
    locked = await helpdesk.check(verification_id, code)
    assert locked.status_code == 422
    assert locked.json()["code"] == "attempts_exhausted"


async def test_a_code_works_once_and_only_until_it_expires(helpdesk: LiveHelp) -> None:
    first = (await helpdesk.start(*LENA)).json()["verification_id"]
    code = await helpdesk.code_sent_for(first)
    assert (await helpdesk.check(first, code)).status_code == 200
    replayed = await helpdesk.check(first, code)
    assert (replayed.status_code, replayed.json()["code"]) == (422, "code_used")

    second = (await helpdesk.start(*LENA)).json()["verification_id"]
    late_code = await helpdesk.code_sent_for(second)
    helpdesk.clock.advance(timedelta(minutes=11))
    late = await helpdesk.check(second, late_code)
    assert (late.status_code, late.json()["code"]) == (422, "code_expired")

    unknown = await helpdesk.check("x" * 24, "123456")
    assert unknown.status_code == 404


async def test_an_expired_or_forged_session_is_refused_however_often_it_is_replayed(
    helpdesk: LiveHelp,
) -> None:
    verification_id = (await helpdesk.start(*LENA)).json()["verification_id"]
    code = await helpdesk.code_sent_for(verification_id)
    token = (await helpdesk.check(verification_id, code)).json()["session_token"]

    def with_token(value: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {value}"}

    assert (await helpdesk.client.get("/v1/help/session", headers=with_token(token))).is_success
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert (
        await helpdesk.client.get("/v1/help/session", headers=with_token(forged))
    ).status_code == 401
    # A pipeline token is not a help session either, whatever its role.
    ops = devkeys.mint_token(helpdesk.signing_key, role="ops", subject="ops-1")
    assert (
        await helpdesk.client.get("/v1/help/session", headers=with_token(ops))
    ).status_code == 401

    helpdesk.clock.advance(timedelta(minutes=31))
    for _ in range(2):
        expired = await helpdesk.client.get("/v1/help/session", headers=with_token(token))
        assert expired.status_code == 401
        assert expired.headers["content-type"] == "application/problem+json"
        assert "expired" in expired.json()["detail"]


async def test_requests_are_limited_per_account_as_named(
    db: store.Database, tmp_path: Path
) -> None:
    limits = {"address": GENEROUS, "account": Limit(burst=2, per_hour=2), "contact": GENEROUS,
              "check": GENEROUS}  # fmt: skip
    async with live_help(db, tmp_path, limits=limits) as helpdesk:
        answers = [(await helpdesk.start(*LENA)).status_code for _ in range(3)]
        # Typed differently, it is still the same account.
        again = await helpdesk.start("instagram", "@Lena.K")
        other = await helpdesk.start("instagram", "someone.else")
    assert answers == [202, 202, 429]
    assert again.status_code == 429
    assert int(again.headers["retry-after"]) > 0
    assert other.status_code == 202


async def test_malformed_requests_name_their_fields(helpdesk: LiveHelp) -> None:
    bad = await helpdesk.start("myspace", "a b c")
    assert bad.status_code == 400
    assert {v["name"] for v in bad.json()["invalid_params"]} == {"platform", "account"}
    extra = await helpdesk.client.post(
        "/v1/help/verifications", json={"platform": "instagram", "account": "x", "email": "y"}
    )
    assert extra.status_code == 400


async def test_only_the_help_service_may_have_codes_sent(helpdesk: LiveHelp) -> None:
    body = {
        "request_id": "req-0000000001",
        "platform": "instagram",
        "locale": "en",
        "to": {"kind": "user_id", "address": "ig-dev-lena"},
        "code": "123456",
        "expires_at": (helpdesk.clock.now + timedelta(minutes=5)).isoformat(),
    }

    def bearer(role: str, scopes: list[str] | None = None) -> dict[str, str]:
        token = devkeys.mint_token(helpdesk.signing_key, role=role, subject=role, scopes=scopes)
        return {"Authorization": f"Bearer {token}"}

    async def send(headers: dict[str, str] | None = None) -> httpx.Response:
        return await helpdesk.notifications.post(
            "/v1/verification-codes", json=body, headers=headers
        )

    refused = [await send(), await send(bearer("ops")), await send(bearer("service"))]
    assert [response.status_code for response in refused] == [401, 403, 403]

    allowed = bearer("service", devkeys.HELP_CODES_SCOPES)
    sent, again = await send(allowed), await send(allowed)
    assert sent.status_code == again.status_code == 200, sent.text
    assert (sent.json()["repeated"], again.json()["repeated"]) == (False, True)
    assert sent.json()["channel"] == "instagram_dm"
    assert await helpdesk.db[CODES].count_documents({"_id": "req-0000000001"}) == 1


async def test_outside_development_the_record_never_holds_the_code(
    db: store.Database, tmp_path: Path
) -> None:
    async with live_help(db, tmp_path, keep_code_text=False) as helpdesk:
        verification_id = (await helpdesk.start(*LENA)).json()["verification_id"]

        async def recorded() -> dict[str, str] | None:
            return await helpdesk.db[CODES].find_one({"_id": verification_id})

        record = await eventually(recorded, "the code's record", 10)
    assert "••••••" in record["body"]
    assert CODE.search(record["body"]) is None


async def test_once_its_code_expired_nothing_of_a_verification_is_kept(helpdesk: LiveHelp) -> None:
    verification_id = (await helpdesk.start(*LENA)).json()["verification_id"]
    code = await helpdesk.code_sent_for(verification_id)
    await helpdesk.check(verification_id, "000000" if code != "000000" else "111111")
    assert (await helpdesk.check(verification_id, code)).status_code == 200
    await helpdesk.verifications.flush_expiries()
    assert await helpdesk.verifications.sweep_expired() == 0  # not expired yet

    helpdesk.clock.advance(timedelta(minutes=13))  # past the code's expiry and its bucket's
    assert await helpdesk.verifications.sweep_expired() == 1
    for collection in (VERIFICATIONS, ACCOUNTS, ATTEMPTS, USES):
        left = (
            await helpdesk.db[collection].find({"_id": {"$regex": f"^{verification_id}"}}).to_list()
        )
        assert left == [], collection
    # The session it opened is a signed token: it lives on without the stored facts.
    assert await helpdesk.verifications.sweep_expired() == 0

"""Channel adapters without I/O: provider payloads, the channel plan with preferences and
fallbacks, how provider answers map to transient or permanent failures, the email's MIME shape,
and webhook signatures."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from services.notifications.channels import (
    EmailChannel,
    FacebookInApp,
    HorizonHeadset,
    InstagramDirect,
    PermanentFailure,
    RecordingSink,
    SmtpServer,
    TransientFailure,
    WebhookChannel,
    WhatsAppTemplate,
    channel_plan,
    compose_email,
)
from services.notifications.channels.platforms import (
    classify_whatsapp_error,
    http_failure,
    retry_after,
)
from services.notifications.messages import MessageRenderer
from services.notifications.model import Contact, Notice, Recipient, RenderedMessage
from services.notifications.signature import (
    InvalidSignature,
    signature_header,
    verify,
)

RENDERER = MessageRenderer()
SMTP = SmtpServer(host="127.0.0.1", port=25, sender="Appeals <appeals@example.org>")
PLATFORM_CHANNELS = {
    "facebook": "facebook_in_app",
    "instagram": "instagram_dm",
    "whatsapp": "whatsapp_template",
    "horizon": "horizon_headset",
}


def recipient(**changes: Any) -> Recipient:
    base = Recipient(
        appeal_id="ap_test",
        submitted_event_id="ev-s",
        platform="facebook",
        user_id="user-1",
        locale="en",
        country="GB",
        subject_kind="post",
        subject_id="post-9",
        decision_policy="hate_speech",
        decision_action="removed",
        decision_automated=True,
        received_at=datetime(2025, 3, 1, tzinfo=UTC),
    )
    return dataclasses.replace(base, **changes)


def message(locale: str = "en") -> RenderedMessage:
    notice = Notice("ap_test", "ev-s", "received", datetime(2025, 3, 1, tzinfo=UTC))
    return RENDERER.render(recipient(locale=locale), notice)


def all_channels() -> dict[str, Any]:
    sink = RecordingSink()
    channels: list[Any] = [
        FacebookInApp(sink),
        InstagramDirect(sink),
        WhatsAppTemplate(sink),
        HorizonHeadset(sink),
        EmailChannel(SMTP, RENDERER.html, clock=lambda: 0.0),
        WebhookChannel(httpx.AsyncClient(), "http://127.0.0.1/hook", b"s" * 32, clock=lambda: 0.0),
    ]
    return {channel.name: channel for channel in channels}


def plan(person: Recipient, fallbacks: tuple[str, ...] = ("email",)) -> list[tuple[str, str]]:
    routes = channel_plan(
        person, all_channels(), platform_channels=PLATFORM_CHANNELS, fallbacks=fallbacks
    )
    return [(route.channel.name, route.address) for route in routes]


def test_the_platform_channel_comes_first_then_the_fallbacks_that_can_reach_the_person() -> None:
    assert plan(recipient()) == [("facebook_in_app", "user-1")]
    with_email = recipient(contact=Contact(email="ana@example.org"))
    assert plan(with_email) == [("facebook_in_app", "user-1"), ("email", "ana@example.org")]


def test_a_preferred_channel_goes_first() -> None:
    person = recipient(
        platform="whatsapp",
        user_id="4915112345678",
        contact=Contact(email="ana@example.org", preferred_channel="email"),
    )
    assert plan(person) == [("email", "ana@example.org"), ("whatsapp_template", "4915112345678")]
    # Platform names are understood as their channel; a phone makes WhatsApp reachable.
    instagram = recipient(
        platform="instagram",
        contact=Contact(phone="+4915112345678", preferred_channel="whatsapp"),
    )
    assert plan(instagram) == [("whatsapp_template", "4915112345678"), ("instagram_dm", "user-1")]


def test_a_preference_that_cannot_reach_the_person_is_skipped() -> None:
    # Email preferred but no address; Horizon preferred by a Facebook user: no Horizon id.
    assert plan(recipient(contact=Contact(preferred_channel="email"))) == [
        ("facebook_in_app", "user-1")
    ]
    assert plan(recipient(contact=Contact(preferred_channel="horizon_headset"))) == [
        ("facebook_in_app", "user-1")
    ]
    assert plan(recipient(contact=Contact(preferred_channel="carrier_pigeon"))) == [
        ("facebook_in_app", "user-1")
    ]
    assert plan(recipient(contact=Contact(email="not an address"))) == [
        ("facebook_in_app", "user-1")
    ]


def test_a_surface_that_delivers_itself_gets_the_webhook() -> None:
    routes = channel_plan(
        recipient(platform="horizon", user_id="hz-1"),
        all_channels(),
        platform_channels={**PLATFORM_CHANNELS, "horizon": "webhook"},
        fallbacks=["email"],
    )
    assert [(r.channel.name, r.address) for r in routes] == [("webhook", "hz-1")]


def test_whatsapp_payload_is_a_cloud_api_template_message() -> None:
    person = recipient(platform="whatsapp", user_id="4915112345678", locale="pt-BR")
    rendered = RENDERER.render(person, Notice("ap_test", "e", "received", person.received_at))
    payload = WhatsAppTemplate(RecordingSink()).render(
        person, rendered, address="4915112345678", delivery_id="d-1"
    )
    assert payload["messaging_product"] == "whatsapp"
    assert payload["to"] == "4915112345678"
    assert payload["type"] == "template"
    assert payload["biz_opaque_callback_data"] == "d-1"
    template = payload["template"]
    assert template["name"] == "appeal_received"
    assert template["language"] == {"code": "pt_BR"}
    (body,) = template["components"]
    parameters = {p["parameter_name"]: p["text"] for p in body["parameters"]}
    assert parameters["reference"] == "ap_test"
    assert all(p["type"] == "text" and "\n" not in p["text"] for p in body["parameters"])


def test_each_platform_adapter_has_its_own_payload_shape() -> None:
    person, rendered, sink = recipient(), message(), RecordingSink()
    facebook = FacebookInApp(sink).render(person, rendered, address="user-1", delivery_id="d")
    assert facebook["href"] == "/appeals/ap_test" and facebook["recipient"] == {"id": "user-1"}
    dm = InstagramDirect(sink).render(person, rendered, address="user-1", delivery_id="d")
    assert dm["message"]["text"].startswith(rendered.subject)
    headset = HorizonHeadset(sink).render(person, rendered, address="hz", delivery_id="d")
    assert headset["notification"]["title"] == rendered.subject
    assert headset["recipient"] == {"user_id": "hz"}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"error": {"code": 131026}}, PermanentFailure),
        (400, {"error": {"code": 130429}}, TransientFailure),
        (400, {"error": {"code": 131056}}, TransientFailure),
        (400, {"error": {"code": 100}}, None),
        (500, "not json", None),
    ],
)
def test_whatsapp_errors_say_whether_the_number_or_the_moment_is_the_problem(
    status: int, body: Any, expected: type[Exception] | None
) -> None:
    classified = classify_whatsapp_error(status, body)
    assert (type(classified) if classified else None) is expected


@pytest.mark.parametrize(
    ("status", "headers", "expected", "after"),
    [
        (503, {"retry-after": "7"}, TransientFailure, 7.0),
        (429, {}, TransientFailure, None),
        (
            503,
            {
                "retry-after": "Wed, 05 Mar 2025 10:00:30 GMT",
                "date": "Wed, 05 Mar 2025 10:00:00 GMT",
            },
            TransientFailure,
            30.0,
        ),
        (410, {}, PermanentFailure, None),
        (404, {}, PermanentFailure, None),
        (400, {}, PermanentFailure, None),
    ],
)
def test_http_answers_map_to_transient_or_permanent_failures(
    status: int, headers: dict[str, str], expected: type[Exception], after: float | None
) -> None:
    response = httpx.Response(status, headers=headers, text="nope")
    failure = http_failure(response)
    assert type(failure) is expected
    assert failure.retry_after_s == after
    assert retry_after(httpx.Response(503, headers={"retry-after": "soon"})) is None


def test_an_email_is_multipart_text_and_html_with_a_stable_message_id() -> None:
    rendered = message()
    html = RENDERER.html(rendered)
    email = compose_email(
        SMTP, rendered, html, to="ana@example.org", delivery_id="d-42", sent_at_s=1_741_000_000
    )
    assert email["To"] == "ana@example.org"
    assert email["From"] == "Appeals <appeals@example.org>"
    assert email["Subject"] == rendered.subject
    assert email["Message-ID"] == "<d-42@example.org>"
    assert email["Auto-Submitted"] == "auto-generated"
    assert email["Content-Language"] == "en"
    assert email.get_content_type() == "multipart/alternative"
    text, markup = (part for part in email.iter_parts())
    assert text.get_content_type() == "text/plain"
    assert text.get_content().strip() == rendered.body
    assert markup.get_content_type() == "text/html"
    assert '<html lang="en" dir="ltr">' in markup.get_content()
    again = compose_email(
        SMTP, rendered, html, to="ana@example.org", delivery_id="d-42", sent_at_s=1_741_000_099
    )
    assert again["Message-ID"] == email["Message-ID"]


def test_an_arabic_email_is_right_to_left_in_both_parts() -> None:
    rendered = message("ar")
    email = compose_email(
        SMTP, rendered, RENDERER.html(rendered), to="a@example.org", delivery_id="d", sent_at_s=0
    )
    text, markup = (part for part in email.iter_parts())
    assert text.get_content().startswith("\u200f")
    assert 'dir="rtl"' in markup.get_content()


def test_the_webhook_payload_carries_the_delivery_id_and_the_direction() -> None:
    channel = all_channels()["webhook"]
    payload = channel.render(recipient(), message("ar"), address="user-1", delivery_id="d-9")
    assert payload["delivery_id"] == "d-9"
    assert (payload["direction"], payload["locale"], payload["user_id"]) == ("rtl", "ar", "user-1")


SECRET = b"a-test-secret-with-at-least-32-bytes!"


def test_a_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"a": 1}'
    header = signature_header(SECRET, 1_700_000_000, body)
    expected = hmac.new(SECRET, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert verify(SECRET, header, body, now=1_700_000_100) == 1_700_000_000


@pytest.mark.parametrize(
    ("header_of", "body", "now", "problem"),
    [
        (lambda: signature_header(SECRET, 1_700_000_000, b"x"), b"y", 1_700_000_000, "match"),
        (lambda: signature_header(b"x" * 32, 1_700_000_000, b"x"), b"x", 1_700_000_000, "match"),
        (lambda: signature_header(SECRET, 1_700_000_000, b"x"), b"x", 1_700_000_301, "window"),
        (lambda: signature_header(SECRET, 1_700_000_000, b"x"), b"x", 1_699_999_000, "window"),
        (lambda: "v1=abc", b"x", 1_700_000_000, "lacks"),
        (lambda: "t=1700000000", b"x", 1_700_000_000, "lacks"),
    ],
)
def test_a_forged_tampered_or_replayed_request_is_refused(
    header_of: Any, body: bytes, now: int, problem: str
) -> None:
    with pytest.raises(InvalidSignature, match=problem):
        verify(SECRET, header_of(), body, now=now)


def test_receivers_accept_any_of_several_signatures_while_secrets_rotate() -> None:
    old = signature_header(b"o" * 32, 1_700_000_000, b"x").split(",")[1]
    new = signature_header(SECRET, 1_700_000_000, b"x")
    assert verify(SECRET, f"{new},{old}", b"x", now=1_700_000_000) == 1_700_000_000

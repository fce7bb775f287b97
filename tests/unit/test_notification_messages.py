"""Messages to appellants: every template in every locale, locale fallback, statements of
reasons, and the provider payloads each channel shapes. Pure, no I/O beyond template files."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
from jinja2 import UndefinedError

from appeals_runtime import vocabulary
from services.notifications.channels import (
    ChannelDirectory,
    FacebookInApp,
    HorizonHeadset,
    InstagramDirect,
    WhatsAppTemplate,
)
from services.notifications.messages import (
    TEMPLATE_SUFFIX,
    TEMPLATES,
    TEMPLATES_DIR,
    MessageRenderer,
    available_locales,
    normalize_locale_tag,
    resolve_locale,
)
from services.notifications.model import Decision, Delivery, Recipient, RenderedMessage

RENDERER = MessageRenderer()
LOCALES = sorted(available_locales())
SUBJECT_KINDS = [*vocabulary.SUBJECT_KINDS, "unspecified"]
RECEIVED_AT = datetime(2025, 3, 1, 14, 5, tzinfo=UTC)
DECIDED_AT = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)


def recipient(**changes: object) -> Recipient:
    base = Recipient(
        appeal_id="ap_test",
        submitted_event_id="ev-submitted",
        platform="facebook",
        user_id="user-1",
        locale="en-GB",
        country="GB",
        subject_kind="post",
        subject_id="post-9",
        decision_policy="hate_speech",
        decision_action="removed",
        decision_automated=True,
        received_at=RECEIVED_AT,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def decision(outcome: str = "upheld", **changes: object) -> Decision:
    base = Decision(
        appeal_id="ap_test",
        event_id="ev-decided",
        outcome="upheld" if outcome == "upheld" else "overturned",
        rationale="The post attacks a group of people for their religion.",
        policy_cited="hate_speech",
        decided_at=DECIDED_AT,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def render_all(person: Recipient, *, policy: str = "hate_speech") -> list[RenderedMessage]:
    return [
        RENDERER.received(person),
        RENDERER.decided(person, decision("upheld"), policy=policy),
        RENDERER.decided(person, decision("overturned"), policy=policy),
    ]


def test_every_locale_has_every_template() -> None:
    assert {"en", "de"} <= set(LOCALES)
    for locale in LOCALES:
        for template in TEMPLATES:
            assert (TEMPLATES_DIR / locale / f"{template}{TEMPLATE_SUFFIX}").is_file()


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("subject_kind", SUBJECT_KINDS)
def test_every_template_renders_for_every_subject_kind_with_no_missing_key(
    locale: str, subject_kind: str
) -> None:
    for automated in (True, False):
        person = recipient(locale=locale, subject_kind=subject_kind, decision_automated=automated)
        for message in render_all(person):
            assert message.locale == locale
            assert message.subject.strip()
            assert "ap_test" in message.body
            assert "{{" not in message.body
            assert "{%" not in message.body
            assert "\n\n\n" not in message.body


@pytest.mark.parametrize("locale", LOCALES)
def test_unknown_policies_and_actions_still_render_plainly(locale: str) -> None:
    person = recipient(locale=locale, decision_action="shadow_limited")
    for message in render_all(person, policy="brand_new_policy")[1:]:
        assert "brand_new_policy" in message.body
        assert "shadow_limited" not in message.body


def test_a_missing_variable_is_an_error_not_a_blank() -> None:
    with pytest.raises(UndefinedError):
        RENDERER.render("received", "en", {"appeal_id": "ap_x"}, parameters={})


def test_a_missing_subject_kind_label_is_an_error() -> None:
    with pytest.raises(UndefinedError):
        RENDERER.received(recipient(subject_kind="hologram"))


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("de-DE", "de"),
        ("de_at", "de"),
        ("DE", "de"),
        ("en-US", "en"),
        ("pt-PT", "en"),
        ("", "en"),
        ("garbage!!", "en"),
        ("../../etc/passwd", "en"),
        ("x" * 40, "en"),
    ],
)
def test_locale_falls_back_from_tag_to_language_to_english(tag: str, expected: str) -> None:
    assert resolve_locale(tag, frozenset(LOCALES)) == expected


def test_an_exact_regional_locale_wins_over_its_language() -> None:
    available = frozenset({"en", "de", "de-CH"})
    assert resolve_locale("de-CH", available) == "de-CH"
    assert resolve_locale("de_ch", available) == "de-CH"
    assert resolve_locale("de-AT", available) == "de"


def test_a_regional_template_folder_is_picked_up(tmp_path: Path) -> None:
    for locale in ("en", "de-CH"):
        folder = tmp_path / locale
        folder.mkdir()
        (folder / f"received{TEMPLATE_SUFFIX}").write_text(
            "{% set subject %}" + locale + "{% endset %}\nref {{ appeal_id }}\n"
        )
    renderer = MessageRenderer(tmp_path)
    message = renderer.render(
        "received", resolve_locale("de-CH", renderer.locales), {"appeal_id": "a"}, parameters={}
    )
    assert (message.locale, message.subject, message.body) == ("de-CH", "de-CH", "ref a")


def test_tags_are_normalized_without_ever_naming_a_path() -> None:
    assert normalize_locale_tag("zh_hant_tw") == "zh-Hant-TW"
    assert normalize_locale_tag(" de-de ") == "de-DE"
    assert normalize_locale_tag("de/../en") == ""


@pytest.mark.parametrize(
    ("tag", "date"),
    [
        ("en-GB", "1 March 2025"),
        ("en-US", "March 1, 2025"),
        ("pt-PT", "March 1, 2025"),  # English text, so an English date too
        ("garbage!!", "March 1, 2025"),
        ("de-AT", "1. März 2025"),
    ],
)
def test_dates_follow_the_reader_within_the_language_of_the_message(tag: str, date: str) -> None:
    assert date in RENDERER.received(recipient(locale=tag)).body


def test_german_appellants_get_natural_german_with_a_german_date() -> None:
    received = RENDERER.received(recipient(locale="de-DE", country="DE"))
    assert received.locale == "de"
    assert received.subject == "Wir haben Ihren Einspruch erhalten"
    assert "zu Ihrem Beitrag" in received.body
    assert "1. März 2025" in received.body  # Babel's German month name and order


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("outcome", ["upheld", "overturned"])
def test_a_decision_is_a_statement_of_reasons(locale: str, outcome: str) -> None:
    redress = {"en": ("Article 21", "court"), "de": ("Art. 21", "Gericht")}
    human = {"en": "reviewed by a person", "de": "hat ein Mensch entschieden"}
    automated = {"en": "automated technology", "de": "automatisiert"}
    person = recipient(locale=locale)

    message = RENDERER.decided(person, decision(outcome), policy="hate_speech")

    assert message.template == f"decided_{outcome}"
    assert "hate_speech" in message.body  # the ground
    assert {"en": "hate speech", "de": "Hassrede"}[locale] in message.body
    assert "religion" in message.body  # the reviewer's reasons
    assert automated[locale] in message.body  # whether automation was used
    assert human[locale] in message.body  # that a person decided the appeal
    for words in redress[locale]:
        assert words in message.body
    assert "4" in message.body and "2025" in message.body


def test_the_oversight_board_is_offered_where_it_hears_appeals() -> None:
    facebook = RENDERER.decided(recipient(platform="facebook"), decision(), policy="spam")
    horizon = RENDERER.decided(recipient(platform="horizon"), decision(), policy="spam")
    assert "Oversight Board" in facebook.body
    assert "Oversight Board" not in horizon.body


def test_a_human_original_decision_is_described_as_such() -> None:
    message = RENDERER.decided(
        recipient(decision_automated=False, locale="de"), decision("overturned"), policy="spam"
    )
    assert "von einer Person aus unserem Team getroffen" in message.body
    assert "automatisiert" not in message.body


def test_whatsapp_payload_is_a_cloud_api_template_message() -> None:
    person = recipient(platform="whatsapp", user_id="4915112345678", locale="de-DE")
    message = RENDERER.decided(
        person, decision(rationale="Line one.\n\tLine    two."), policy="hate_speech"
    )

    payload = WhatsAppTemplate(_NoOutbox()).render(person, message)

    assert payload["messaging_product"] == "whatsapp"
    assert payload["to"] == "4915112345678"
    assert payload["type"] == "template"
    template = payload["template"]
    assert template["name"] == "appeal_decided_upheld"
    assert template["language"] == {"code": "de"}
    (body,) = template["components"]
    assert body["type"] == "body"
    parameters = {p["parameter_name"]: p["text"] for p in body["parameters"]}
    assert all(p["type"] == "text" for p in body["parameters"])
    assert parameters["reference"] == "ap_test"
    assert parameters["policy"] == "hate_speech"
    # WhatsApp rejects parameters with line breaks, tabs or runs of spaces.
    assert parameters["rationale"] == "Line one. Line two."


def test_each_platform_has_its_channel_with_its_own_payload_shape() -> None:
    channels = ChannelDirectory(_NoOutbox())
    expected = {
        "facebook": (FacebookInApp, "facebook_in_app"),
        "instagram": (InstagramDirect, "instagram_dm"),
        "whatsapp": (WhatsAppTemplate, "whatsapp_template"),
        "horizon": (HorizonHeadset, "horizon_headset"),
    }
    assert set(expected) == set(vocabulary.PLATFORMS)
    for platform, (adapter, name) in expected.items():
        channel = channels.for_platform(platform)
        assert isinstance(channel, adapter)
        assert channel.name == name
    person = recipient()
    message = RENDERER.received(person)
    assert FacebookInApp(_NoOutbox()).render(person, message)["href"] == "/appeals/ap_test"
    dm = InstagramDirect(_NoOutbox()).render(person, message)
    assert dm["recipient"] == {"id": "user-1"}
    assert dm["message"]["text"].startswith(message.subject)
    headset = HorizonHeadset(_NoOutbox()).render(person, message)
    assert headset["notification"]["title"] == message.subject


class _NoOutbox:
    """Rendering never sends; a send here would be a bug."""

    async def record_delivery(self, delivery: Delivery) -> bool:
        raise AssertionError("render must not deliver")

"""Messages to appellants: every template for every kind and locale, locale fallback, dates in
the person's time zone, right-to-left text, the HTML email part and statements of reasons checked
field by field. Pure, no I/O beyond template files."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jinja2 import FileSystemLoader, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from appeals import vocabulary
from appeals_runtime.errors import InvalidMessage
from services.notifications.locales import locale_candidates, normalize_locale_tag, resolve_locale
from services.notifications.messages import (
    BIDI_CONTROLS,
    RIGHT_TO_LEFT_MARK,
    TEMPLATE_SUFFIX,
    TEMPLATES,
    TEMPLATES_DIR,
    MessageRenderer,
    Redress,
    available_locales,
)
from services.notifications.model import (
    NOTIFICATION_KINDS,
    Contact,
    Decision,
    Notice,
    Outcome,
    Recipient,
    RenderedMessage,
)

REDRESS = Redress(
    dispute_settlement_url="https://ods.example.eu/bodies",
    oversight_board_url="https://board.example.org/appeal",
)
RENDERER = MessageRenderer(redress=REDRESS)
LOCALES = sorted(available_locales())
REQUIRED_LOCALES = {"en", "de", "fr", "es", "pt-BR", "hi", "ar", "id"}
SUBJECT_KINDS = [*vocabulary.SUBJECT_KINDS, "unspecified"]
OUTCOMES: list[Outcome] = ["upheld", "overturned", "partially_overturned"]
MADE_AT = datetime(2025, 2, 27, 8, 0, tzinfo=UTC)
RECEIVED_AT = datetime(2025, 3, 1, 14, 5, tzinfo=UTC)
DECIDED_AT = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
RATIONALE = "The post attacks a group of people for their religion."


def recipient(**changes: Any) -> Recipient:
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
        decision_made_at=MADE_AT,
    )
    return dataclasses.replace(base, **changes)


def decided(outcome: Outcome = "upheld", **changes: Any) -> Notice:
    decision = Decision(
        appeal_id="ap_test",
        event_id="ev-decided",
        outcome=outcome,
        rationale=RATIONALE,
        policy_cited="hate_speech",
        decided_at=DECIDED_AT,
    )
    return Notice(
        appeal_id="ap_test",
        about_event_id="ev-decided",
        kind="decided",
        occurred_at=DECIDED_AT,
        decision=dataclasses.replace(decision, **changes),
    )


def every_notice() -> list[Notice]:
    """One notice per template: each kind, and each outcome of a decision."""
    at = DECIDED_AT
    notices = [
        Notice("ap_test", "ev-received", "received", RECEIVED_AT),
        Notice("ap_test", "ev-claimed", "in_review", at),
        Notice("ap_test", "ev-info", "info_requested", at, question="Was it a news quote?"),
        Notice("ap_test", "ev-escalated", "escalated", at, escalation_target="senior"),
        Notice("ap_test", "ev-restored", "restored", at),
    ]
    applied = decided("upheld", facts="It repeats a slur.", applied_from_appeal_id="ap_other")
    return [*notices, *(decided(outcome) for outcome in OUTCOMES), applied]


def test_the_required_locales_have_every_template() -> None:
    assert set(LOCALES) >= REQUIRED_LOCALES
    for locale in LOCALES:
        for template in TEMPLATES:
            assert (TEMPLATES_DIR / locale / f"{template}{TEMPLATE_SUFFIX}").is_file()
    kinds = {n.kind for n in every_notice()}
    assert kinds == set(NOTIFICATION_KINDS)
    assert {RENDERER.render(recipient(), n).template for n in every_notice()} == set(TEMPLATES)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("subject_kind", SUBJECT_KINDS)
def test_every_template_renders_for_every_kind_and_locale_with_no_missing_key(
    locale: str, subject_kind: str
) -> None:
    for automated in (True, False):
        for made_at in (MADE_AT, None):
            person = recipient(
                locale=locale,
                subject_kind=subject_kind,
                decision_automated=automated,
                decision_made_at=made_at,
            )
            for notice in every_notice():
                message = RENDERER.render(person, notice)
                assert message.locale == locale
                assert message.subject.strip(RIGHT_TO_LEFT_MARK).strip()
                assert "ap_test" in message.body
                assert "{{" not in message.body and "{%" not in message.body
                assert "\n\n\n" not in message.body
                assert RENDERER.html(message).startswith("<!DOCTYPE html>")


def _labels(locale: str) -> Any:
    env = SandboxedEnvironment(loader=FileSystemLoader(TEMPLATES_DIR))
    return env.get_template(f"{locale}/_labels.j2").module


# German declines its nouns, so its label tables have other names.
LABEL_TABLES = {"de": {"policies": "richtlinien", "measures": "massnahmen", "targets": "ziele"}}


@pytest.mark.parametrize("locale", LOCALES)
def test_every_locale_words_every_policy_action_and_escalation_target(locale: str) -> None:
    english = _labels("en")
    labels = _labels(locale)
    names = LABEL_TABLES.get(locale, {})
    assert getattr(labels, names.get("policies", "policies")).keys() == english.policies.keys()
    assert getattr(labels, names.get("targets", "targets")).keys() == english.targets.keys()
    measures = getattr(labels, names.get("measures", "measures"), None) or labels.stays
    assert measures.keys() == english.stays.keys()


@pytest.mark.parametrize("locale", LOCALES)
def test_unknown_policies_actions_and_targets_still_render_plainly(locale: str) -> None:
    person = recipient(locale=locale, decision_action="shadow_limited")
    for outcome in OUTCOMES:
        message = RENDERER.render(person, decided(outcome, policy_cited="brand_new_policy"))
        assert "brand_new_policy" in message.body
        assert "shadow_limited" not in message.body
    escalated = Notice("ap_test", "e", "escalated", DECIDED_AT, escalation_target="mars")
    assert "mars" not in RENDERER.render(person, escalated).body


def test_a_missing_variable_is_an_error_not_a_blank() -> None:
    with pytest.raises(UndefinedError):
        RENDERER.render_template("received", "en", {"appeal_id": "ap_x"}, parameters={})


def test_a_missing_subject_kind_label_is_an_error() -> None:
    with pytest.raises(UndefinedError):
        RENDERER.render(recipient(subject_kind="hologram"), every_notice()[0])


def test_a_decision_without_any_policy_cannot_be_explained_and_is_invalid() -> None:
    with pytest.raises(InvalidMessage) as raised:
        RENDERER.render(recipient(decision_policy=""), decided(policy_cited=""))
    assert raised.value.field == "decided.policy_cited"


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("de-DE", "de"),
        ("de_at", "de"),
        ("DE", "de"),
        ("en-US", "en"),
        ("pt-PT", "pt-BR"),  # the language's default region before plain language
        ("pt", "pt-BR"),
        ("pt-BR", "pt-BR"),
        ("es-MX", "es"),
        ("fr-CA", "fr"),
        ("ar-EG", "ar"),
        ("hi-IN", "hi"),
        ("id-ID", "id"),
        ("sv-SE", "en"),
        ("zh-TW", "en"),
        ("", "en"),
        ("garbage!!", "en"),
        ("../../etc/passwd", "en"),
        ("x" * 40, "en"),
    ],
)
def test_locale_falls_back_exact_then_default_region_then_language_then_english(
    tag: str, expected: str
) -> None:
    assert resolve_locale(tag, frozenset(LOCALES)) == expected


def test_the_fallback_chain_is_stated_in_order() -> None:
    assert locale_candidates("pt-PT") == ["pt-PT", "pt-BR", "pt", "en"]
    assert locale_candidates("de-AT") == ["de-AT", "de-DE", "de", "en"]
    # Traditional Chinese never falls back to the Simplified default region.
    assert locale_candidates("zh-TW") == ["zh-TW", "zh", "en"]
    assert locale_candidates("not a tag") == ["en"]


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
    message = renderer.render_template(
        "received", resolve_locale("de-CH", renderer.locales), {"appeal_id": "a"}, parameters={}
    )
    assert (message.locale, message.subject, message.body) == ("de-CH", "de-CH", "ref a")


def test_tags_are_normalized_without_ever_naming_a_path() -> None:
    assert normalize_locale_tag("zh_hant_tw") == "zh-Hant-TW"
    assert normalize_locale_tag(" de-de ") == "de-DE"
    assert normalize_locale_tag("de/../en") == ""


@pytest.mark.parametrize(
    ("tag", "zone", "date"),
    [
        ("en-GB", "", "1 March 2025, 14:05 (UTC)"),
        ("en-US", "", "March 1, 2025, 2:05\u202fPM (UTC)"),  # CLDR: narrow no-break space
        ("en-US", "America/New_York", "March 1, 2025, 9:05\u202fAM (Eastern Standard Time)"),
        ("de-AT", "Europe/Vienna", "1. März 2025, 15:05 (Mitteleuropäische Normalzeit)"),
        ("pt-PT", "Europe/Lisbon", "1 de março de 2025, 14:05"),  # Portugal's conventions
        ("sv-SE", "", "March 1, 2025"),  # English text, so an English date too
        ("en-GB", "Not/AZone", "1 March 2025, 14:05 (UTC)"),
    ],
)
def test_dates_are_in_the_persons_time_zone_as_the_reader_writes_them(
    tag: str, zone: str, date: str
) -> None:
    person = recipient(locale=tag, contact=Contact(time_zone=zone))
    assert date in RENDERER.render(person, every_notice()[0]).body


def test_numbers_are_formatted_for_the_reader() -> None:
    renderer = MessageRenderer(redress=dataclasses.replace(REDRESS, oversight_board_days=1500))
    assert "1.500 Tagen" in renderer.render(recipient(locale="de"), decided()).body
    assert "1,500 days" in renderer.render(recipient(locale="en"), decided()).body


def test_arabic_is_right_to_left_in_plain_text_and_in_html() -> None:
    person = recipient(locale="ar-EG", subject_id="post-9")
    for notice in every_notice():
        message = RENDERER.render(person, notice)
        assert message.direction == "rtl"
        assert message.subject.startswith(RIGHT_TO_LEFT_MARK)
        lines = [line for line in message.body.split("\n") if line]
        assert all(line.startswith(RIGHT_TO_LEFT_MARK) for line in lines)
        # Marks only: no embedding or isolate that a cut or quote could leave unbalanced.
        assert not BIDI_CONTROLS.search(message.body + message.subject)
        html = RENDERER.html(message)
        assert '<html lang="ar" dir="rtl">' in html
        assert RIGHT_TO_LEFT_MARK not in html
    english = RENDERER.render(recipient(), every_notice()[0])
    assert english.direction == "ltr" and RIGHT_TO_LEFT_MARK not in english.body


def test_the_html_part_escapes_what_people_wrote_and_links_urls() -> None:
    message = RENDERER.render(recipient(), decided(rationale='<script>alert("x")</script> & co'))
    html = RENDERER.html(message)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co" in html
    assert '<a href="https://ods.example.eu/bodies"' in html
    assert '<html lang="en" dir="ltr">' in html


def paragraphs(message: RenderedMessage) -> dict[str, str]:
    """A statement of reasons by its labelled paragraphs ("Ground:" → its text)."""
    found: dict[str, str] = {}
    for paragraph in message.body.split("\n\n"):
        label, colon, rest = paragraph.partition(":")
        if colon and "\n" not in label and len(label) < 30:
            found[label] = rest.strip()
    return found


def test_an_upheld_decision_is_a_full_statement_of_reasons() -> None:
    message = RENDERER.render(recipient(platform="instagram"), decided("upheld"))
    parts = paragraphs(message)

    assert message.subject == "Decision on your appeal"
    assert message.template == "decided_upheld"
    # What was decided, and about what.
    assert (
        parts["What we decided"] == "we upheld our original decision, so your post stays removed."
    )
    assert parts["What it is about"] == "your post (ID post-9) on Instagram."
    # The facts: the original action, when, under which policy; the appeal; the reviewer's reasons.
    assert parts["Facts"] == (
        "on 27 February 2025, 08:00 (UTC), we removed your post under our policy on hate speech. "
        "You appealed on 1 March 2025, 14:05 (UTC).\n"
        f"The reviewer's reasons: {RATIONALE}"
    )
    # The ground: our terms, with the policy.
    assert parts["Ground"] == (
        "our terms, namely the Community Standards on hate speech (policy “hate_speech”)."
    )
    # Automation in the original decision and in this one.
    assert parts["Automated means"] == (
        "the original decision was made with automated technology. This decision on your "
        "appeal was made by a person, not by automated technology."
    )
    # Redress, each with how to use it.
    redress = message.body.split("If you disagree, you can:\n", 1)[1].split("\n\n")[0]
    options = redress.split("\n")
    assert len(options) == 3
    assert "out-of-court dispute settlement body (Article 21" in options[0]
    assert "https://ods.example.eu/bodies" in options[0] and "ap_test" in options[0]
    assert "Oversight Board" in options[1]
    assert "https://board.example.org/appeal within 15 days" in options[1]
    assert "ap_test" in options[1]
    assert "court under the law of your country" in options[2]
    assert message.body.endswith("Decided on 4 March 2025, 09:30 (UTC) · Reference: ap_test")


def test_an_overturned_decision_is_a_full_statement_of_reasons() -> None:
    person = recipient(platform="horizon", decision_automated=False, subject_kind="vr_world")
    message = RENDERER.render(person, decided("overturned"))
    parts = paragraphs(message)

    assert message.subject == "Your appeal was successful"
    assert parts["What we decided"] == (
        "we reversed our original decision and are restoring your VR world."
    )
    assert parts["What it is about"] == "your VR world (ID post-9) on Horizon."
    assert parts["Facts"].startswith(
        "on 27 February 2025, 08:00 (UTC), we removed your VR world under our policy on hate"
    )
    assert parts["Ground"] == (
        "our terms, namely the Community Standards on hate speech (policy “hate_speech”); "
        "the reviewer found that your VR world does not break them."
    )
    assert parts["Automated means"] == (
        "the original decision was made by a person on our team. This decision on your appeal "
        "was made by a person, not by automated technology."
    )
    # Redress is still open (and how); the Oversight Board does not hear Horizon cases.
    assert "certified out-of-court dispute settlement body (Article 21" in message.body
    assert "https://ods.example.eu/bodies, with your reference ap_test" in message.body
    assert "or to a court" in message.body
    assert "Oversight Board" not in message.body


def test_the_facts_the_reviewer_established_are_stated() -> None:
    message = RENDERER.render(recipient(), decided(facts="The caption names a religious group."))
    assert paragraphs(message)["Facts"].endswith(
        "What the reviewer established: The caption names a religious group.\n"
        f"The reviewer's reasons: {RATIONALE}"
    )


@pytest.mark.parametrize("locale", LOCALES)
def test_a_decision_applied_from_identical_content_says_it_was_applied_automatically(
    locale: str,
) -> None:
    applied = RENDERER.render(
        recipient(locale=locale),
        decided(
            applied_from_appeal_id="ap_someone_else",
            facts="The content is identical to the content of appeal ap_someone_else.",
        ),
    )
    direct = RENDERER.render(recipient(locale=locale), decided())
    assert applied.body != direct.body
    assert "ap_someone_else" not in applied.body  # another person's appeal stays private
    if locale == "en":
        assert paragraphs(applied)["Automated means"] == (
            "the original decision was made with automated technology. A person made this "
            "decision on an appeal about identical content; it was applied to your appeal "
            "automatically."
        )


def test_a_partial_overturn_says_what_changed_and_keeps_every_redress() -> None:
    message = RENDERER.render(recipient(), decided("partially_overturned"))
    parts = paragraphs(message)
    assert message.subject == "We changed part of our decision"
    assert parts["What we decided"].startswith("we lifted part of the action")
    assert "Oversight Board" in message.body and "Article 21" in message.body


def test_a_legal_ground_is_named_as_law_not_as_our_terms() -> None:
    message = RENDERER.render(recipient(), decided(policy_cited="law_de_stgb_130"))
    assert paragraphs(message)["Ground"] == "the law (reference “law_de_stgb_130”)."


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("outcome", OUTCOMES)
def test_every_locale_states_the_reasons_and_the_redress(locale: str, outcome: Outcome) -> None:
    message = RENDERER.render(recipient(locale=locale, platform="instagram"), decided(outcome))
    body = message.body
    assert re.search(r"[“„«] ?hate_speech ?[”“»]", body)  # the policy, quoted as the language does
    assert RATIONALE in body
    assert "21" in body and "https://ods.example.eu/bodies" in body
    assert body.count("ap_test") >= 2
    assert ("https://board.example.org/appeal" in body) == (outcome != "overturned")
    assert re.search(r"2025", body)


def test_the_oversight_board_is_offered_only_where_it_hears_appeals() -> None:
    for platform, offered in (("facebook", True), ("instagram", True), ("horizon", False)):
        body = RENDERER.render(recipient(platform=platform), decided()).body
        assert ("Oversight Board" in body) == offered


def test_german_appellants_get_natural_german() -> None:
    person = recipient(locale="de-DE", country="DE", contact=Contact(time_zone="Europe/Berlin"))
    received = RENDERER.render(person, every_notice()[0])
    assert received.locale == "de"
    assert received.subject == "Wir haben Ihren Einspruch erhalten"
    assert "zu Ihrem Beitrag" in received.body
    assert "1. März 2025, 15:05" in received.body
    upheld = RENDERER.render(person, decided()).body
    assert "Ihr Beitrag bleibt entfernt" in upheld
    assert "außergerichtliche Streitbeilegungsstelle" in upheld
    assert "von einer Person" not in upheld and "automatisiert getroffen" in upheld


def test_template_parameters_are_single_lines_for_providers() -> None:
    message = RENDERER.render(recipient(), decided(rationale="Line one.\n\tLine    two."))
    parameters = dict(message.parameters)
    assert parameters["rationale"] == "Line one. Line two."
    assert parameters["reference"] == "ap_test"
    assert parameters["policy"] == "hate_speech"
    info = RENDERER.render(recipient(), every_notice()[2])
    assert dict(info.parameters)["question"] == "Was it a news quote?"

"""What a live-help chat says when its appeal is decided: a sentence for every outcome the
contract has, in the same languages for each, English for any other language."""

from __future__ import annotations

from appeals import vocabulary
from services.help.decisions import FALLBACK, TEXTS, decision_text


def test_every_outcome_has_a_text_in_every_language() -> None:
    assert set(TEXTS) == set(vocabulary.OUTCOMES)
    languages = {outcome: set(texts) for outcome, texts in TEXTS.items()}
    assert len({frozenset(found) for found in languages.values()}) == 1, languages
    assert FALLBACK in languages["upheld"]
    for texts in TEXTS.values():
        assert all(text.strip() and "  " not in text for text in texts.values())
    # In each language, each outcome says something of its own.
    for language in languages["upheld"]:
        assert len({TEXTS[outcome][language] for outcome in TEXTS}) == len(TEXTS)


def test_the_outcome_in_the_chats_language_or_english() -> None:
    assert "restored" in decision_text("overturned", "en")
    assert "wiederhergestellt" in decision_text("overturned", "de")
    assert "stands" in decision_text("upheld", "en")
    assert decision_text("partially_overturned", "sw") == TEXTS["partially_overturned"]["en"]

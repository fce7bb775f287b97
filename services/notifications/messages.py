"""Messages to appellants, in their language: Jinja2 template files and Babel. Pure, no I/O
beyond reading the template files.

Templates live in ``templates/<locale>/<template>.txt.j2``; each sets ``subject`` with
``{% set subject %}`` and renders the body. Per-locale wording of vocabulary (subject kinds,
policies, actions) lives next to them in ``templates/<locale>/_labels.j2`` so a translator edits
one folder. Rendering is sandboxed and strict: a missing variable or label is an error, never a
blank in a message someone relies on.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime
from jinja2 import FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from services.notifications.model import Decision, Recipient, RenderedMessage

TEMPLATES_DIR = Path(__file__).with_name("templates")
FALLBACK_LOCALE = "en"
TEMPLATE_SUFFIX = ".txt.j2"
RECEIVED = "received"
DECIDED_UPHELD = "decided_upheld"
DECIDED_OVERTURNED = "decided_overturned"
TEMPLATES = (RECEIVED, DECIDED_UPHELD, DECIDED_OVERTURNED)

# The Oversight Board hears appeals about Facebook and Instagram content only.
OVERSIGHT_BOARD_PLATFORMS = frozenset({"facebook", "instagram"})

_TAG_PART = re.compile(r"^[A-Za-z0-9]{1,8}$")


def normalize_locale_tag(tag: str) -> str:
    """``de_de`` / ``DE-de`` → ``de-DE``; script subtags title-cased (``zh-Hant-TW``).

    Returns ``""`` for anything that is not shaped like a BCP 47 tag, so it can never name a
    template folder by accident.
    """
    parts = tag.strip().replace("_", "-").split("-")
    if not parts[0] or not all(_TAG_PART.match(part) for part in parts):
        return ""
    language, *rest = parts
    normalized = [language.lower()]
    for part in rest:
        if len(part) == 2 and part.isalpha():
            normalized.append(part.upper())
        elif len(part) == 4 and part.isalpha():
            normalized.append(part.title())
        else:
            normalized.append(part.lower())
    return "-".join(normalized)


def resolve_locale(tag: str, available: Collection[str]) -> str:
    """The template locale for a requested BCP 47 tag.

    Fallback order: the exact tag (``de-DE`` uses a ``de-DE`` folder when there is one), then its
    language (``de``), then ``en``. ``pt-PT`` with no Portuguese templates gets English, and so
    does an empty or malformed tag.
    """
    normalized = normalize_locale_tag(tag)
    if normalized in available:
        return normalized
    language = normalized.split("-", 1)[0]
    if language in available:
        return language
    return FALLBACK_LOCALE


def available_locales(templates_dir: Path = TEMPLATES_DIR) -> frozenset[str]:
    return frozenset(path.name for path in templates_dir.iterdir() if path.is_dir())


def format_moment(moment: datetime, locale_tag: str, template_locale: str) -> str:
    """A date and time as people in ``locale_tag`` write it, in UTC (we do not know the
    appellant's time zone, and a country can span several).

    The requested tag's regional conventions apply only when the message is in its language: an
    ``en-GB`` reader gets "1 March", while a ``pt-PT`` reader of the English fallback gets an
    English date, not a Portuguese one inside English text.
    """
    requested = normalize_locale_tag(locale_tag)
    same_language = requested.split("-", 1)[0] == template_locale.split("-", 1)[0]
    try:
        babel_locale = Locale.parse(requested if same_language else template_locale, sep="-")
    except (UnknownLocaleError, ValueError):
        babel_locale = Locale.parse(template_locale, sep="-")
    return str(format_datetime(moment, "long", tzinfo=UTC, locale=babel_locale))


def single_line(value: str) -> str:
    """Template-based providers reject parameters with line breaks, tabs or runs of spaces."""
    return " ".join(value.split())


class MessageRenderer:
    """Renders the message for each appeal event from the template files."""

    def __init__(self, templates_dir: Path = TEMPLATES_DIR) -> None:
        self._env = SandboxedEnvironment(
            loader=FileSystemLoader(templates_dir),
            undefined=StrictUndefined,
            autoescape=False,  # plain text; each channel escapes for its own format
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self.locales = available_locales(templates_dir)

    def received(self, recipient: Recipient) -> RenderedMessage:
        locale = resolve_locale(recipient.locale, self.locales)
        received_at = format_moment(recipient.received_at, recipient.locale, locale)
        return self.render(
            RECEIVED,
            locale,
            {**_about(recipient), "received_at": received_at},
            parameters={"reference": recipient.appeal_id, "date": received_at},
        )

    def decided(self, recipient: Recipient, decision: Decision, *, policy: str) -> RenderedMessage:
        """``policy`` is the ground of the decision: the one the reviewer cited, or else the one
        the original decision named."""
        locale = resolve_locale(recipient.locale, self.locales)
        decided_at = format_moment(decision.decided_at, recipient.locale, locale)
        template = DECIDED_UPHELD if decision.outcome == "upheld" else DECIDED_OVERTURNED
        variables = {
            **_about(recipient),
            "decided_at": decided_at,
            "policy": policy,
            "rationale": decision.rationale.strip(),
            "oversight_board": recipient.platform in OVERSIGHT_BOARD_PLATFORMS,
        }
        return self.render(
            template,
            locale,
            variables,
            parameters={
                "reference": recipient.appeal_id,
                "date": decided_at,
                "policy": policy,
                "rationale": decision.rationale,
            },
        )

    def render(
        self,
        template: str,
        locale: str,
        variables: Mapping[str, Any],
        *,
        parameters: Mapping[str, str],
    ) -> RenderedMessage:
        path = f"{locale}/{template}{TEMPLATE_SUFFIX}"
        module = self._env.get_template(path).make_module(dict(variables))
        subject = getattr(module, "subject", None)
        if subject is None:
            raise TemplateError(f"{path} sets no subject ({{% set subject %}}...)")
        return RenderedMessage(
            template=template,
            locale=locale,
            subject=single_line(str(subject)),
            body=_tidy(str(module)),
            parameters=tuple((name, single_line(value)) for name, value in parameters.items()),
        )


def _about(recipient: Recipient) -> dict[str, Any]:
    return {
        "appeal_id": recipient.appeal_id,
        "platform": recipient.platform,
        "subject_kind": recipient.subject_kind,
        "action": recipient.decision_action,
        "automated": recipient.decision_automated,
    }


def _tidy(body: str) -> str:
    """Strip the edges and keep at most one blank line between paragraphs, whatever the
    template's conditionals left behind."""
    lines = [line.rstrip() for line in body.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))

"""Messages to appellants, in their language: Jinja2 template files and Babel. Pure, no I/O
beyond reading the template files.

Templates live in ``templates/<locale>/<template>.txt.j2``, one per message and locale; each sets
``subject`` with ``{% set subject %}`` and renders the body. Per-locale wording of vocabulary
(subject kinds, policies, actions) lives next to them in ``_labels.j2`` and the parts every
statement of reasons shares in ``_statement.j2``, so a translator edits one folder. Rendering is
sandboxed and strict: a missing variable or label is an error, never a blank in a message someone
relies on. Every template gets the same variables (empty where they do not apply), so a test can
render every template for every kind and locale.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from appeals import platforms
from appeals_runtime.errors import InvalidMessage
from services.notifications.locales import (
    babel_locale,
    format_moment,
    format_number,
    resolve_locale,
    text_direction,
    time_zone,
)
from services.notifications.model import Decision, Notice, Recipient, RenderedMessage

TEMPLATES_DIR = Path(__file__).with_name("templates")
TEMPLATE_SUFFIX = ".txt.j2"
EMAIL_LAYOUT = "_email.html.j2"
TEMPLATES = (
    "received",
    "in_review",
    "info_requested",
    "escalated",
    "decided_upheld",
    "decided_overturned",
    "decided_partially_overturned",
    "restored",
)

# The Oversight Board hears appeals about Facebook and Instagram content only (declared in
# appeals/platforms.yaml, as is how messages name each platform).
OVERSIGHT_BOARD_PLATFORMS = platforms.OVERSIGHT_BOARD
PLATFORM_NAMES = {p.name: p.display_name for p in platforms.PLATFORMS}
# Policy codes with this prefix name a legal ground (DSA Art. 17(3)(d)), e.g. "law_de_stgb_130";
# every other code is a section of our terms, the Community Standards (Art. 17(3)(e)).
LEGAL_GROUND_PREFIX = "law_"
# Template parameters longer than this are cut: providers cap them (WhatsApp: 1024 characters).
MAX_PARAMETER_CHARS = 1000

RIGHT_TO_LEFT_MARK = "\u200f"
# Directional embeddings and isolates; plain text never carries an unbalanced one of them.
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class Redress:
    """Where a statement of reasons sends people, and the window the Oversight Board allows."""

    dispute_settlement_url: str
    oversight_board_url: str
    oversight_board_days: int = 15


DEFAULT_REDRESS = Redress(
    dispute_settlement_url="https://digital-strategy.ec.europa.eu/en/policies/dsa-out-court-dispute-settlement",
    oversight_board_url="https://www.oversightboard.com/appeals-process/",
)


def available_locales(templates_dir: Path = TEMPLATES_DIR) -> frozenset[str]:
    return frozenset(path.name for path in templates_dir.iterdir() if path.is_dir())


def template_name(notice: Notice) -> str:
    if notice.kind == "decided":
        assert notice.decision is not None
        return f"decided_{notice.decision.outcome}"
    return notice.kind


def single_line(value: str) -> str:
    """Template-based providers reject parameters with line breaks, tabs or runs of spaces."""
    return " ".join(value.split())[:MAX_PARAMETER_CHARS]


def ground_policy(recipient: Recipient, notice: Notice) -> str:
    """The policy a decision rests on: the one the reviewer cited, else the original one."""
    cited = notice.decision.policy_cited if notice.decision else ""
    return cited or recipient.decision_policy


class MessageRenderer:
    """Renders the message for each notice from the template files."""

    def __init__(
        self, templates_dir: Path = TEMPLATES_DIR, *, redress: Redress = DEFAULT_REDRESS
    ) -> None:
        # Templates ship with the service: no stat of every template file on every render.
        self._text = SandboxedEnvironment(
            loader=FileSystemLoader(templates_dir),
            auto_reload=False,
            undefined=StrictUndefined,
            autoescape=False,  # plain text; each channel escapes for its own format
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self._html = SandboxedEnvironment(
            loader=FileSystemLoader(templates_dir),
            auto_reload=False,
            undefined=StrictUndefined,
            autoescape=select_autoescape(default=True, default_for_string=True),
        )
        self._redress = redress
        self.locales = available_locales(templates_dir)

    def locale_for(self, tag: str) -> str:
        """The template locale for a BCP 47 tag (``de`` for ``de-AT``; English otherwise)."""
        return resolve_locale(tag, self.locales)

    def render(self, recipient: Recipient, notice: Notice) -> RenderedMessage:
        locale = resolve_locale(recipient.locale, self.locales)
        variables = self.variables(recipient, notice, locale)
        parameters = {"reference": recipient.appeal_id, "date": variables["occurred_at"]}
        if notice.kind == "decided":
            parameters["policy"] = variables["policy"]
            parameters["rationale"] = variables["rationale"]
        if notice.kind == "info_requested":
            parameters["question"] = notice.question
        return self.render_template(template_name(notice), locale, variables, parameters=parameters)

    def variables(self, recipient: Recipient, notice: Notice, locale: str) -> dict[str, Any]:
        reader = babel_locale(recipient.locale, locale)
        zone = time_zone(recipient.contact.time_zone)
        policy = ground_policy(recipient, notice)
        if notice.kind == "decided" and not policy:
            raise InvalidMessage(
                "the decision cites no policy and the original decision names none",
                field="decided.policy_cited",
            )
        legal = policy.startswith(LEGAL_GROUND_PREFIX)
        decision = notice.decision
        return {
            "appeal_id": recipient.appeal_id,
            "platform": recipient.platform,
            "platform_name": PLATFORM_NAMES.get(recipient.platform, recipient.platform),
            "subject_kind": recipient.subject_kind,
            "subject_id": recipient.subject_id,
            "action": recipient.decision_action,
            "automated": recipient.decision_automated,
            "original_decided_at": (
                format_moment(recipient.decision_made_at, reader, zone)
                if recipient.decision_made_at
                else ""
            ),
            "received_at": format_moment(recipient.received_at, reader, zone),
            "occurred_at": format_moment(notice.occurred_at, reader, zone),
            "decided_at": format_moment(decision.decided_at, reader, zone) if decision else "",
            "policy": policy,
            "ground_kind": "law" if legal else "terms",
            "rationale": _private(decision.rationale.strip(), decision) if decision else "",
            "decision_facts": _private(decision.facts, decision) if decision else "",
            # Never the other appeal's id: it belongs to someone else.
            "applied_from": bool(decision and decision.applied_from_appeal_id),
            "question": notice.question,
            "escalation_target": notice.escalation_target,
            "oversight_board": recipient.platform in OVERSIGHT_BOARD_PLATFORMS,
            "oversight_board_url": self._redress.oversight_board_url,
            "oversight_board_days": format_number(self._redress.oversight_board_days, reader),
            "dispute_settlement_url": self._redress.dispute_settlement_url,
        }

    def render_template(
        self,
        template: str,
        locale: str,
        variables: Mapping[str, Any],
        *,
        parameters: Mapping[str, str],
    ) -> RenderedMessage:
        path = f"{locale}/{template}{TEMPLATE_SUFFIX}"
        module = self._text.get_template(path).make_module(dict(variables))
        subject = getattr(module, "subject", None)
        if subject is None:
            raise TemplateError(f"{path} sets no subject ({{% set subject %}}...)")
        direction = text_direction(locale)
        return RenderedMessage(
            template=template,
            locale=locale,
            subject=_directed(single_line(str(subject)), direction),
            body=_directed(_tidy(str(module)), direction),
            parameters=tuple((name, single_line(value)) for name, value in parameters.items()),
            direction=direction,
        )

    def html(self, message: RenderedMessage) -> str:
        """The message as an HTML email body: autoescaped, ``lang`` and ``dir`` set, links live."""
        return self._html.get_template(EMAIL_LAYOUT).render(
            lang=message.locale,
            dir=message.direction,
            subject=_undirected(message.subject),
            paragraphs=[
                paragraph.splitlines() for paragraph in _undirected(message.body).split("\n\n")
            ],
        )


def _private(text: str, decision: Decision) -> str:
    """Reviewer text without the id of the appeal a decision was applied from: that appeal is
    someone else's, and its reference is theirs."""
    source = decision.applied_from_appeal_id
    return text.replace(source, "…") if source else text


def _tidy(body: str) -> str:
    """Strip the edges and keep at most one blank line between paragraphs, whatever the
    template's conditionals left behind."""
    lines = [line.strip() for line in body.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def _directed(text: str, direction: str) -> str:
    """Right-to-left plain text: every line opens with a RIGHT-TO-LEFT MARK, so a reader that
    guesses direction from the first strong character (most mail clients and chat bubbles)
    lays out a line that starts with a reference number or a URL right to left as well. Marks,
    unlike embeddings, need no closing PDF, so cutting or quoting a line never leaks direction
    into the text around it; and references stay clean to copy."""
    if direction != "rtl":
        return text
    return "\n".join(RIGHT_TO_LEFT_MARK + line if line else line for line in text.split("\n"))


def _undirected(text: str) -> str:
    return text.replace(RIGHT_TO_LEFT_MARK, "")

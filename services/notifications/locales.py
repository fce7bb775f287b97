"""Which template locale a person gets, and dates and numbers as they write them (Babel). Pure.

Fallback order for a requested BCP 47 tag, first one with a template folder wins:

1. the exact tag (``de-CH`` uses a ``de-CH`` folder when there is one);
2. the language's default region per CLDR likely subtags, when it writes the same script
   (``pt-PT`` → ``pt-BR``; ``zh-TW`` never falls to ``zh-CN``: Traditional is not Simplified);
3. the bare language (``de-AT`` → ``de``);
4. ``en``.

A malformed tag resolves to ``en`` and can never name a folder (it is never used as a path).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.core import get_global
from babel.dates import format_date, format_time, get_timezone_name
from babel.numbers import format_decimal

from services.notifications.model import TextDirection

FALLBACK_LOCALE = "en"

_TAG_PART = re.compile(r"^[A-Za-z0-9]{1,8}$")


def normalize_locale_tag(tag: str) -> str:
    """``de_de`` / ``DE-de`` → ``de-DE``; script subtags title-cased (``zh-Hant-TW``).

    Returns ``""`` for anything that is not shaped like a BCP 47 tag.
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


def _likely(language: str, script: str = "", region: str = "") -> tuple[str, str]:
    """(script, region) CLDR expects for a language, optionally narrowed by script or region."""
    table = get_global("likely_subtags")
    for key in (f"{language}_{script}" if script else "", f"{language}_{region}", language):
        value = table.get(key) if key and not key.endswith("_") else None
        if value:
            parts = value.split("_")
            return (parts[1] if len(parts) > 2 else ""), parts[-1]
    return "", ""


def locale_candidates(tag: str) -> list[str]:
    """The fallback chain of ``tag``, most specific first, always ending in ``en``."""
    return list(_candidates(tag))


# Every notice resolves its reader's locale (and parses it for Babel) again; the answers depend
# on the tag alone, and a deployment sees a few hundred tags at most.
@functools.lru_cache(maxsize=1024)
def _candidates(tag: str) -> tuple[str, ...]:
    normalized = normalize_locale_tag(tag)
    if not normalized:
        return (FALLBACK_LOCALE,)
    language, *rest = normalized.split("-")
    script = next((part for part in rest if len(part) == 4 and part.isalpha()), "")
    region = next((part for part in rest if len(part) == 2 and part.isalpha()), "")
    requested_script, _ = _likely(language, script, region)
    default_script, default_region = _likely(language)
    candidates = [normalized]
    if default_region and (script or requested_script) == default_script:
        candidates.append(f"{language}-{default_region}")
    candidates += [language, FALLBACK_LOCALE]
    return tuple(dict.fromkeys(candidates))


def resolve_locale(tag: str, available: Collection[str]) -> str:
    """The template locale for a requested tag (see the module docstring for the order)."""
    return next(
        (candidate for candidate in _candidates(tag) if candidate in available),
        FALLBACK_LOCALE,
    )


@functools.lru_cache(maxsize=1024)
def babel_locale(requested_tag: str, template_locale: str) -> Locale:
    """The reader's own conventions apply only when the message is in their language: a
    ``pt-PT`` reader of the ``pt-BR`` text gets Portuguese dates from Portugal, while a ``sv``
    reader of the English fallback gets English dates, not Swedish ones inside English text."""
    requested = normalize_locale_tag(requested_tag)
    same_language = requested.split("-", 1)[0] == template_locale.split("-", 1)[0]
    try:
        return Locale.parse(requested if same_language else template_locale, sep="-")
    except (UnknownLocaleError, ValueError):
        return Locale.parse(template_locale, sep="-")


def time_zone(name: str) -> tzinfo | None:
    """The IANA zone, or None when unknown or malformed (dates then read in UTC)."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def format_moment(moment: datetime, locale: Locale, zone: tzinfo | None) -> str:
    """A date and time as the reader writes it, in their time zone when known, naming the zone
    so "15:05" is never ambiguous: ``1. März 2025, 15:05 (Mitteleuropäische Zeit)``."""
    local = moment.astimezone(zone or UTC)
    date = format_date(local, "long", locale=locale)
    clock = format_time(local, "short", locale=locale)
    pattern = str(locale.datetime_formats["long"]).replace("'", "")
    zone_name = "UTC" if zone is None else get_timezone_name(local, "long", locale=locale)
    return f"{pattern.format(clock, date)} ({zone_name})"


def format_number(number: int, locale: Locale) -> str:
    return str(format_decimal(number, locale=locale))


@functools.lru_cache(maxsize=256)
def text_direction(locale: str) -> TextDirection:
    try:
        parsed = Locale.parse(locale, sep="-")
    except (UnknownLocaleError, ValueError):
        return "ltr"
    return "rtl" if parsed.text_direction == "rtl" else "ltr"

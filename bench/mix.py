"""The appeals the bench submits: the demo's realistic mix (``appeals demo``).

Four platforms, eight locales, account and content subjects, automated and human original
decisions, statements that the demo's reviewer rule overturns or upholds: the demo's samples,
cycled in order so every step of every run offers the same mix, with fresh user, subject and
decision ids (``demo.appeal_body``) so no two appeals collide on intake's rules.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

from appeals import vocabulary
from appeals_cli import demo

PLATFORMS = tuple(vocabulary.PLATFORMS)


def bodies(count: int, seed: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)  # noqa: S311 - test data, not security
    for sample in itertools.islice(itertools.cycle(demo.SAMPLES), count):
        yield demo.appeal_body(sample, rng)

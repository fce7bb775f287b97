"""Fresh ids for clones of the warm-up's documents, without knowing the documents' shapes. Pure.

History is seeded by cloning what the warm-up appeals wrote (see ``bench.seeding``). A clone must
not share an id with its template or with another clone, and the ids must stay consistent across
collections (an appeal id in intake's record, routing's case and a notification all map to the
same new id). Nothing here knows field names; it works on *tokens*:

* a token is a run of at least ``MIN_TOKEN`` ASCII letters and digits, with at least one digit,
  found in a string of a stored document (a value, a key or an ``_id``): appeal ids (``ap_`` is
  a prefix outside the run), event ids (each group of a UUID is a run), idempotency keys,
  pseudonyms, subject and user ids, hashes. Words (queue names, platforms, "reviewer") have no
  digit; dates split into short runs;
* a token is *rewritable* when it belongs to one template appeal only (see ``template.py``);
  shared ones (a reviewer's id, a day) stay as they are, so clones share them like real history;
* clone ``k`` replaces the last ``digits`` characters of rewritable token number ``j`` with the
  decimal number ``k * len(tokens) + j``, zero-padded. Same length and a character every id
  alphabet has (hex, base32, decimal), so stored protobuf bytes keep their framing and parsers
  still accept the id; and the result is unique: two equal results have the same length, the same
  kept prefix and the same number, hence the same token and clone.

Inside binary values (serialised protobuf) a token may sit next to a tag or length byte that
happens to be a letter or digit; :func:`locate` therefore also finds known tokens with up to two
such bytes glued to either end, and only the token's own bytes are replaced.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MIN_TOKEN = 8
_RUN = re.compile(rb"[A-Za-z0-9]{%d,}" % MIN_TOKEN)
_DIGIT = re.compile(rb"[0-9]")
# Bytes of a protobuf tag or length that may touch a token inside a binary value.
MAX_GLUE = 2


def is_token(run: bytes) -> bool:
    return len(run) >= MIN_TOKEN and _DIGIT.search(run) is not None


def tokens_in_text(text: str) -> Iterator[str]:
    for match in _RUN.finditer(text.encode()):
        if is_token(match.group()):
            yield match.group().decode("ascii")


def tokens_in_document(document: Any) -> set[str]:
    """Every token in the strings of a decoded document: values, keys and ``_id``, nested."""
    found: set[str] = set()
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            found.update(tokens_in_text(value))
        elif isinstance(value, Mapping):
            for key, item in value.items():
                found.update(tokens_in_text(str(key)))
                stack.append(item)
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return found


def locate(raw: bytes, known: Mapping[bytes, int]) -> list[tuple[int, int, int]]:
    """Where known tokens occur in ``raw``: (start, end, token number), in order.

    A run that is not a token itself may be a token with tag or length bytes glued on (inside a
    serialised protobuf); the longest known token found by trimming at most ``MAX_GLUE`` bytes
    off each end is taken.
    """
    found = []
    for match in _RUN.finditer(raw):
        run, start = match.group(), match.start()
        number = known.get(run)
        if number is not None:
            found.append((start, start + len(run), number))
            continue
        best: tuple[int, int, int] | None = None
        for head in range(min(MAX_GLUE, len(run)) + 1):
            for tail in range(min(MAX_GLUE, len(run) - head) + 1):
                if head == tail == 0:
                    continue
                piece = run[head : len(run) - tail]
                number = known.get(piece)
                if number is not None and (best is None or len(piece) > best[1] - best[0]):
                    best = (start + head, start + len(run) - tail, number)
        if best is not None:
            found.append(best)
    return found


@dataclass(frozen=True)
class TokenMap:
    """The rewritable tokens of a template and their variants for clones 1, 2, ..."""

    tokens: tuple[str, ...]
    max_clones: int
    digits: int = field(init=False)
    index: Mapping[bytes, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_clones < 1:
            raise ValueError("max_clones must be at least 1")
        capacity = (self.max_clones + 1) * max(1, len(self.tokens))
        object.__setattr__(self, "digits", len(str(capacity)))
        object.__setattr__(
            self, "index", {token.encode(): number for number, token in enumerate(self.tokens)}
        )

    @classmethod
    def build(cls, rewritable: Iterable[str], max_clones: int) -> TokenMap:
        return cls(tuple(sorted(set(rewritable))), max_clones)

    def too_short(self) -> list[str]:
        """Tokens with fewer characters than a unique variant needs (left unchanged)."""
        return [token for token in self.tokens if len(token) < self.digits]

    def variant(self, number: int, clone: int) -> str:
        if not 1 <= clone <= self.max_clones:
            raise ValueError(f"clone {clone} outside 1..{self.max_clones}")
        token = self.tokens[number]
        if len(token) < self.digits:
            return token
        value = clone * len(self.tokens) + number
        return token[: len(token) - self.digits] + f"{value:0{self.digits}d}"

    def variants(self, clone: int) -> list[bytes]:
        """Every token's variant for ``clone``, by token number."""
        return [self.variant(number, clone).encode() for number in range(len(self.tokens))]

    def rewrite_text(self, text: str, clone: int) -> str:
        raw = text.encode()
        places = locate(raw, self.index)
        if not places:
            return text
        return Pattern.of(raw, places).render(self.variants_for(clone, places)).decode()

    def variants_for(self, clone: int, places: Sequence[tuple[int, int, int]]) -> dict[int, bytes]:
        return {number: self.variant(number, clone).encode() for _, _, number in places}


@dataclass(frozen=True)
class Pattern:
    """A byte string cut at its tokens: rendering a clone joins the pieces with new tokens."""

    pieces: tuple[bytes, ...]
    numbers: tuple[int, ...]

    @classmethod
    def of(cls, raw: bytes, places: Sequence[tuple[int, int, int]]) -> Pattern:
        pieces, numbers, position = [], [], 0
        for start, end, number in places:
            pieces.append(raw[position:start])
            numbers.append(number)
            position = end
        pieces.append(raw[position:])
        return cls(tuple(pieces), tuple(numbers))

    @property
    def has_tokens(self) -> bool:
        return bool(self.numbers)

    def render(self, variants: Sequence[bytes] | Mapping[int, bytes]) -> bytes:
        parts = [self.pieces[0]]
        for number, piece in zip(self.numbers, self.pieces[1:], strict=True):
            parts.append(variants[number])
            parts.append(piece)
        return b"".join(parts)

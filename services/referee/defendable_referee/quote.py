"""Does a quote occur in an evidence item's text? Exactly, after normalisation, or not at all.

1. **Exact**: the quote, with leading and trailing whitespace dropped, is a
   substring of the text, character for character.
2. **Normalised**: `normalise(quote)` is a substring of `normalise(text)`:
   Unicode NFKC (ligatures, fullwidth forms, no-break and thin spaces, and
   composed versus decomposed accents all compare equal; accents are kept),
   case folded, typographic quotes and dashes (‘ ’ “ ” – — −) as ASCII, soft
   hyphens and zero-width spaces dropped, and every run of whitespace one space.

Either way an occurrence counts only if it does not cut a word or a number of
the text: "profitable" inside "unprofitable", "$7.5" inside "$7.5 million",
"1,234" inside "(1,234)" or "12.5" inside "12.5%" are not the evidence saying
what the quote says. A quote found only like that is `inside`.

Bounded work, whatever the input: the search is `str.find` (linear in the
text), no pattern is built from the quote, each evidence text is normalised
at most once per check (`SourceTexts`), and at most `MAX_OCCURRENCES` places
are examined per quote — a quote that only ever cuts words gives up there.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Literal

from defendable_referee.numeral import numerals_prepared, prepare

Location = Literal["exact", "normalised", "inside", "absent"]

MAX_TEXT_CHARS = 16 * 1024 * 1024  # characters of one evidence item the referee will search
MAX_OCCURRENCES = 64  # places examined per quote and text
_EDGE = 32  # characters either side of an occurrence read to see whether it cuts a number

_FOLD = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201a\u201b", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d", "-"),
        **dict.fromkeys("\u00ad\u200b\u2060\ufeff", None),  # soft hyphen, zero-width space, word joiner, BOM
    }
)


def normalise(text: str) -> str:
    """The normalised form (module docstring, step 2). Case folding can leave text
    outside NFKC ("ǰ"), so NFKC is applied again after it."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(folded.translate(_FOLD).split())


def locate(quote: str, text: str, normalised_text: str | None = None) -> Location:
    """Where `quote` occurs in `text`; pass `normalise(text)` when it is already at hand."""
    needle = quote.strip()
    exact = _occurs(needle, text)
    if exact == "whole":
        return "exact"
    loose = _occurs(normalise(needle), normalise(text) if normalised_text is None else normalised_text)
    if loose == "whole":
        return "normalised"
    return "inside" if exact or loose else "absent"


class SourceTexts:
    """Evidence text by evidence id, each normalised at most once (a check may cite one item hundreds of times)."""

    def __init__(self, texts: Mapping[str, str]) -> None:
        self._texts = texts
        self._normalised: dict[str, str] = {}

    def text(self, evidence_id: str) -> str | None:
        """The item's text, or None when the referee has none it will search (binary, not UTF-8, too large)."""
        text = self._texts.get(evidence_id)
        return text if isinstance(text, str) and len(text) <= MAX_TEXT_CHARS else None

    def locate(self, evidence_id: str, quote: str) -> Location:
        text = self.text(evidence_id)
        if text is None:
            raise KeyError(f"no searchable text for evidence {evidence_id!r}")  # callers check text() first
        normalised = self._normalised.get(evidence_id)
        if normalised is None:
            normalised = self._normalised[evidence_id] = normalise(text)
        return locate(quote, text, normalised)


def _occurs(needle: str, haystack: str) -> Literal["whole", "inside"] | None:
    """`whole` if `needle` occurs somewhere without cutting a word or number, `inside` if it
    occurs only cutting one (or past MAX_OCCURRENCES places), None if not at all."""
    if not needle:
        return None
    start = haystack.find(needle)
    examined = 0
    while start != -1 and examined < MAX_OCCURRENCES:
        if not _cuts(haystack, start, start + len(needle)):
            return "whole"
        examined += 1
        start = haystack.find(needle, start + 1)
    return "inside" if examined else None


def _cuts(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] begins or ends inside a word or a number of `text`."""
    if start > 0 and _joins(text[start - 1], text[start]):
        return True
    if end < len(text) and _joins(text[end - 1], text[end]):
        return True
    # A number runs across punctuation too ("$7.5 million", "(1,234)", "12.5%"): read
    # the numbers around each edge and refuse one that straddles it.
    before, head = prepare(text[max(0, start - _EDGE) : start]), prepare(text[start : min(end, start + _EDGE)])
    if _straddles(before + head, len(before)):
        return True
    tail, after = prepare(text[max(start, end - _EDGE) : end]), prepare(text[end : end + _EDGE])
    return _straddles(tail + after, len(tail))


def _joins(left: str, right: str) -> bool:
    """Two adjacent characters of one word: letters or digits, or a combining mark on the right."""
    return (left.isalnum() and right.isalnum()) or unicodedata.combining(right) != 0


def _straddles(window: str, edge: int) -> bool:
    return any(n.start < edge < n.end for n in numerals_prepared(window))

"""Numbers as documents write them: "1,234,567.89", "$7.5 million", "(1,234)", "12.5%".

Pure and bounded: one fixed regular expression (no input is ever compiled into
a pattern), no nested quantifiers over the same characters, and every number
is a `Decimal` — never a float. What reads as what:

* Text is first put in NFKC form — fullwidth digits become ASCII, no-break,
  thin and narrow spaces become plain spaces — and every dash and the minus
  sign (U+2212) become "-".
* "." is the decimal point. Thousands are grouped by "," ("1,234,567.89") or
  by a space ("1 234 567"); a group after the first has exactly three digits.
  A plain space also separates table columns, so a space-grouped number also
  reads as each of its groups ("120 340 560" reads 120340560, 120, 340 and 560;
  a group with a leading zero, as in "12 000", is never read on its own).
  European "1.234,5" is not understood (it reads 1.234 and 5).
* A currency symbol ($, €, £) may come first, with one space after it.
* A scale word after the digits multiplies: thousand, million, billion,
  trillion (any case, after up to two spaces). So do the suffixes k, m, mm, mn,
  b, bn — written directly after the digits and not followed by a letter
  ("7.5M", "300k", "1.2bn"; "7.5 M" and "5kg" are not scaled).
* A leading "-" negates ("-1,234", "$-5", "−5"), and so does an accounting
  parenthesis around the whole number ("(1,234)", "($1,234)", "$(1,234)"); a
  "-" between digits is a range ("2019-2020" reads 2019 and 2020).
* A percentage ("12.5%", "12.5 %", "12.5 percent", "12.5 per cent") keeps the
  number as written (12.5) and is marked `percent`; what it means for a unit is
  the caller's decision (text_rules.py).
* Digits glued to letters are not numbers ("FY2023", "Q3", "v1.2.3"); basis
  points, exponents and fractions such as "½" are not understood.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

from defendable_referee.numeric import CONTEXT

MAX_INTEGER_DIGITS = 30  # the same bounds as a submitted decimal string (numeric.py)
MAX_FRACTION_DIGITS = 20

_DASHES = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d", "-"))
_SCALES: dict[str, Decimal] = {
    "k": Decimal(10) ** 3,
    "thousand": Decimal(10) ** 3,
    "m": Decimal(10) ** 6,
    "mm": Decimal(10) ** 6,
    "mn": Decimal(10) ** 6,
    "million": Decimal(10) ** 6,
    "b": Decimal(10) ** 9,
    "bn": Decimal(10) ** 9,
    "billion": Decimal(10) ** 9,
    "trillion": Decimal(10) ** 12,
}

# Linear: every optional piece is at most a few characters, the digit groups
# each consume a separator, and the alternatives of `int` start differently
# enough that a failed one backtracks over at most three digits.
_NUMERAL = re.compile(
    r"""
    (?<![\w.])                              # not the tail of a word or of another number
    (?P<open>\()?                           # accounting negative: (1,234)
    (?P<minus>-)?
    (?:(?P<currency>[$€£])[ ]?)?
    (?P<open2>\()?                          # $(1,234)
    (?P<minus2>-)?                          # $-5
    (?=\.?\d)
    (?P<int>
        \d{1,3}(?:,\d{3})+(?!\d)            # 1,234,567
      | \d{1,3}(?:[ ]\d{3})+(?!\d)          # 1 234 567
      | \d+
    )?
    (?P<frac>\.\d+)?
    (?:
        (?P<abbr>mm|mn|bn|k|m|b)(?!\w)      # 7.5M, 300k: attached only
      | \s{0,2}(?P<word>thousand|million|billion|trillion)(?!\w)
    )?
    (?:\s?(?P<percent>%|percent(?!\w)|per[ ]cent(?!\w)))?
    (?P<close>\))?
    """,
    re.VERBOSE | re.IGNORECASE,
)


@dataclass(frozen=True)
class Numeral:
    """One number in a text, at [start, end) of `prepare(text)`."""

    start: int
    end: int
    text: str  # as written, e.g. "$7.5 million"
    value: Decimal  # signed, scale applied; a percentage as written (12.5 for "12.5%")
    percent: bool = False
    currency: str | None = None  # "$", "€" or "£" when written
    groups: tuple[Decimal, ...] = ()  # a space-grouped number's groups, each read on its own


def prepare(text: str) -> str:
    """The form numbers are read from: NFKC, every dash and the minus sign as "-"."""
    return unicodedata.normalize("NFKC", text).translate(_DASHES)


def numerals(text: str) -> list[Numeral]:
    """Every number in `text`, in order; positions refer to `prepare(text)`."""
    return numerals_prepared(prepare(text))


def numerals_prepared(text: str) -> list[Numeral]:
    """`numerals` for text already in `prepare` form (quote.py reads windows of normalised text)."""
    found: list[Numeral] = []
    for match in _NUMERAL.finditer(text):
        numeral = _read(match)
        if numeral is not None:
            found.append(numeral)
    return found


def _read(match: re.Match[str]) -> Numeral | None:
    integer, fraction = match["int"] or "", match["frac"] or ""
    digits = integer.replace(",", "").replace(" ", "")
    if len(digits) > MAX_INTEGER_DIGITS or len(fraction) > MAX_FRACTION_DIGITS + 1:
        return None  # longer than any value a submission may declare: not a figure
    value = Decimal((digits or "0") + fraction)  # exact: Decimal(str) does not round
    scale = match["abbr"] or match["word"]
    if scale:
        value = CONTEXT.multiply(value, _SCALES[scale.lower()])
    opened = match["open"] or match["open2"]
    if match["minus"] or match["minus2"] or (opened and match["close"]):
        value = CONTEXT.minus(value)
    # A parenthesis that pairs with nothing is prose punctuation, not part of the number.
    start = match.start() + 1 if match["open"] and not match["close"] else match.start()
    end = match.end() - 1 if match["close"] and not opened else match.end()
    # A column value is not written "000": a group with a leading zero is only ever a group.
    groups = tuple(Decimal(g) for g in integer.split(" ") if not g.startswith("0")) if " " in integer else ()
    return Numeral(
        start=start,
        end=end,
        text=match.string[start:end],
        value=value,
        percent=match["percent"] is not None,
        currency=match["currency"],
        groups=groups,
    )

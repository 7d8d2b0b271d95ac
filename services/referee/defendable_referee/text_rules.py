"""The rule kinds that read the evidence's text: citation and extraction. `(rule, context) -> list[Finding]`.

* **citation** — every item of `claims` names an attached evidence item in
  `evidence_reference` (its id, name or sha256) and copies a passage of it into
  `quote`; the quote must occur in that item's text (quote.py: exactly, else
  after normalisation; never cutting a word or a number).
* **extraction** — every item of `facts` carries `source` with the same two
  fields, and its declared `value` equals a number read out of the quote
  (numeral.py) within the sheet's tolerance for the fact's `unit`; the quote
  must occur in the text as for a citation. A quote that states several
  numbers is satisfied by any of them — the referee cannot tell which one the
  fact's name means, so the message names the one that matched.
  Units (the rule's params): in a `fraction_units` unit "12.5%" reads 0.125,
  in any other 12.5; a `currency_units` unit refuses a percentage and a number
  written with another currency symbol ("€5" is not usd).

Granularity (it sets the verdict's score): one finding per claim or per fact,
so the score is the share that hold up; a list that is missing, not a list,
empty or over the rule's limit gives one flag instead.

Statuses: "pass" — the claim or fact holds; the message says whether its quote
matched exactly or only after normalisation. "flag" (the rule's tier) — no
reference ("unsupported"), a reference to nothing attached, no quote or one
outside the sheet's length bounds, a quote not found (or found only cutting a
word or number, or only normalised where the sheet requires exact), a value no
number of the quote equals. "open" (the rule's tier) — the cited item is
attached but the referee has no text for it (binary, not UTF-8, too large), so
the quote cannot be checked; never a pass. A fact's number is checked before its
text, so a wrong value is a flag even where the text is unavailable.
"""

from __future__ import annotations

from decimal import Decimal

from defendable_canonical.model import EvidenceRef, Finding
from defendable_referee.context import CheckContext
from defendable_referee.findings import finding as _finding
from defendable_referee.findings import listing as _listing
from defendable_referee.numeral import Numeral, numerals
from defendable_referee.numeric import CONTEXT, fixed, to_decimal, within
from defendable_referee.quote import Location, normalise
from defendable_referee.sheet import CitationParams, ExtractionParams, QuoteMatch, Rule, params_for

TEXT_RULE_KINDS = frozenset({"citation", "extraction"})  # the referee fetches evidence text only for these
MAX_SHOWN = 80  # characters of a quote or a submitted value shown in a message


def _clip(value: object, limit: int = MAX_SHOWN) -> str:
    text = " ".join(value.split()) if isinstance(value, str) else repr(value)  # one line, whatever was submitted
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quoted(quote: str) -> str:
    return f"“{_clip(quote)}”"


def _label(ref: EvidenceRef) -> str:
    return ref.id if ref.name == ref.id else f"{ref.id} ({_clip(ref.name, 60)})"


def _number(value: Decimal) -> str:
    return fixed(value.normalize(CONTEXT))  # 7500000, not 7500000.0 or 7.5E+6


# -- shared: the reference, the quote, the search -----------------------------


def _the_list(rule: Rule, context: CheckContext, key: str, limit: int, what: str) -> list[object] | Finding:
    items = context.items(key)
    if items is None:
        return _finding(rule, "flag", f"{key} is missing or not a list: no {what} can be checked against evidence")
    if not items:
        return _finding(rule, "flag", f"{key} is empty: there is no {what} to check")
    if len(items) > limit:
        return _finding(
            rule,
            "flag",
            f"{len(items)} {key}; the limit is {limit}: not checked",
            observed=str(len(items)),
            expected=f"≤ {limit}",
        )
    return items


def _cited(rule: Rule, context: CheckContext, label: str, reference: object) -> EvidenceRef | Finding:
    if reference is None or (isinstance(reference, str) and not reference.strip()):
        return _finding(rule, "flag", f"{label} cites no evidence (no evidence_reference): unsupported")
    if not isinstance(reference, str):
        return _finding(rule, "flag", f"{label}: evidence_reference {_clip(reference)} is not text: unsupported")
    cited = context.cited(reference)
    if cited is None:
        return _finding(
            rule,
            "flag",
            f"{label} cites {_clip(reference)!r}, which names no attached evidence (by id, name or sha256)",
            observed=_clip(reference),
        )
    return cited[0]


def _quote_problem(quote: object, least: int, most: int) -> str | None:
    """Why `quote` cannot be searched, or None. Length is capped before anything is normalised."""
    if quote is None or (isinstance(quote, str) and not quote.strip()):
        return "no quote (a passage copied from the cited evidence is required)"
    if not isinstance(quote, str):
        return f"quote {_clip(quote)} is not text"
    if len(quote) > most:
        return f"quote is {len(quote)} characters; the limit is {most}: not searched"
    length = len(normalise(quote))
    if length < least:
        return f"quote {_quoted(quote)} is {length} characters after normalising; the minimum is {least}"
    return None


_FOUND: dict[Location, str] = {
    "exact": "found exactly in",
    "normalised": "found after normalising (Unicode NFKC, case, quotes and dashes, whitespace), not exactly, in",
}


def _searched(
    rule: Rule, context: CheckContext, label: str, ref: EvidenceRef, quote: str, match: QuoteMatch, note: str = ""
) -> Finding:
    """The finding for searching `quote` in `ref`'s text; `note` follows the label in every message."""
    where = _label(ref)
    label = f"{label}: {note}"
    if context.texts.text(ref.id) is None:
        media = f"{_clip(ref.name, 60)}, {_clip(ref.media_type, 60)}"
        return _finding(
            rule,
            "open",
            f"{label}{ref.id} ({media}) has no text the referee can search"
            f" (binary, not UTF-8, or too large): quote {_quoted(quote)} not checked",
        )
    location = context.texts.locate(ref.id, quote)
    if location == "exact" or (location == "normalised" and match == "normalised"):
        return _finding(rule, "pass", f"{label}quote {_FOUND[location]} {where}: {_quoted(quote)}", observed=location)
    if location == "normalised":
        why = (
            f"occurs in {where} only after normalising case, Unicode or whitespace; this sheet requires an exact quote"
        )
    elif location == "inside":
        why = (
            f"occurs in {where} only inside a longer word or number (a quote may not cut one: “$7.5” of “$7.5 million”)"
        )
    else:
        why = f"does not occur in {where}, exactly or after normalising"
    return _finding(rule, "flag", f"{label}quote {_quoted(quote)} {why}", observed=location)


# -- citation -----------------------------------------------------------------


def check_citation(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, CitationParams)
    claims = _the_list(rule, context, "claims", params.max_claims, "claim")
    if isinstance(claims, Finding):
        return [claims]
    return [_check_claim(rule, context, params, i, claim) for i, claim in enumerate(claims)]


def _check_claim(rule: Rule, context: CheckContext, params: CitationParams, index: int, claim: object) -> Finding:
    label = f"claims[{index}]"
    if not isinstance(claim, dict):
        return _finding(rule, "flag", f"{label} is not an object: unsupported")
    cited = _cited(rule, context, label, claim.get("evidence_reference"))
    if isinstance(cited, Finding):
        return cited
    quote = claim.get("quote")
    if not params.require_quote and (quote is None or (isinstance(quote, str) and not quote.strip())):
        return _finding(rule, "pass", f"{label} cites {_label(cited)} (this sheet does not require a quote)")
    problem = _quote_problem(quote, params.min_quote_chars, params.max_quote_chars)
    if problem is not None or not isinstance(quote, str):
        return _finding(rule, "flag", f"{label} cites {_label(cited)}, but {problem}")
    return _searched(rule, context, label, cited, quote, params.match)


# -- extraction ---------------------------------------------------------------


def check_extraction(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, ExtractionParams)
    facts = _the_list(rule, context, "facts", params.max_facts, "fact")
    if isinstance(facts, Finding):
        return [facts]
    return [_check_fact(rule, context, params, i, fact) for i, fact in enumerate(facts)]


def _check_fact(rule: Rule, context: CheckContext, params: ExtractionParams, index: int, fact: object) -> Finding:
    """Plan: 1. the declared value; 2. the source's reference and quote; 3. a number of
    the quote equals the value; 4. the quote occurs in the cited text."""
    label = f"facts[{index}]"
    if not isinstance(fact, dict):
        return _finding(rule, "flag", f"{label} is not an object")
    if isinstance(fact.get("name"), str):
        label += f" {_clip(fact['name'], 64)}"
    # 1.
    declared = to_decimal(fact.get("value"))
    if declared is None:
        return _finding(rule, "flag", f"{label}: value {_clip(fact.get('value'))} is not a number")
    unit = fact.get("unit")
    unit_key = unit.strip().lower() if isinstance(unit, str) else ""
    label += f" = {fixed(declared)}" + (f" {_clip(unit, 40)}" if unit_key else "")
    # 2.
    source = fact.get("source")
    if not isinstance(source, dict):
        return _finding(rule, "flag", f"{label}: no source (evidence_reference and quote): unsupported")
    cited = _cited(rule, context, label, source.get("evidence_reference"))
    if isinstance(cited, Finding):
        return cited
    quote = source.get("quote")
    problem = _quote_problem(quote, params.min_quote_chars, params.max_quote_chars)
    if problem is not None or not isinstance(quote, str):
        return _finding(rule, "flag", f"{label} cites {_label(cited)}, but {problem}")
    # 3.
    read = numerals(quote)
    if not read:
        return _finding(rule, "flag", f"{label}: the quote states no number: {_quoted(quote)}", observed=str(declared))
    absolute = context.sheet.tolerances.for_units(unit).absolute_decimal
    readings = [(numeral, _readings(numeral, unit_key, params)) for numeral in read]
    for numeral, values in readings:
        for value in values:
            if within(declared, value, absolute):
                plus = f" (±{fixed(absolute)})" if absolute else ""
                equals = f"equals {_as_read(numeral, value)}{plus} in the quote; "
                # 4.
                found = _searched(rule, context, label, cited, quote, params.match, equals)
                if found.status == "pass":
                    return _finding(rule, "pass", found.message, observed=fixed(declared), expected=_number(value))
                return found
    stated = [_describe(numeral, values, unit) for numeral, values in readings]
    return _finding(
        rule,
        "flag",
        f"{label}: no number in the quote equals it; the quote reads {_listing(stated)}: {_quoted(quote)}",
        observed=fixed(declared),
        expected=_listing([_number(v) for _, values in readings for v in values]) or None,
    )


def _readings(numeral: Numeral, unit: str, params: ExtractionParams) -> list[Decimal]:
    """The values `numeral` may stand for in `unit` (module docstring); none if they disagree."""
    symbol = params.currency_units.get(unit)
    if symbol is not None and (numeral.percent or numeral.currency not in (None, symbol)):
        return []
    if numeral.percent and unit in params.fraction_units:
        return [CONTEXT.divide(numeral.value, Decimal(100))]
    return [numeral.value, *numeral.groups]


def _as_read(numeral: Numeral, value: Decimal) -> str:
    shown = _number(value)
    return f"“{_clip(numeral.text, 40)}”" + ("" if numeral.text == shown else f" read as {shown}")


def _describe(numeral: Numeral, values: list[Decimal], unit: object) -> str:
    if not values:
        what = "a percentage" if numeral.percent else f"in {numeral.currency}"
        return f"“{_clip(numeral.text, 40)}” ({what}, not {_clip(unit, 40)})"
    return " or ".join(_as_read(numeral, value) for value in values)

"""Decimal arithmetic shared by the evaluator and the rules.

Every number the referee compares is a `decimal.Decimal` computed in one
explicit, bounded context — never the thread-local default context and never
a float (`0.1 + 0.2 <= 0.3` is False in floats). Results are written into
findings as fixed-point strings so a receipt re-derives byte for byte.
"""

from __future__ import annotations

import decimal
import re
from decimal import ROUND_HALF_UP, Decimal

PRECISION = 34  # IEEE 754 decimal128 significand digits
MAX_ADJUSTED_EXPONENT = 99  # |x| < 10**100: ample for money and ratios, refuses 1e308-style blow-ups
MAX_PLACES = 20

# Traps turn silent NaN / Infinity into exceptions the evaluator translates;
# Emax/Emin bound every intermediate so no operation can grow without limit.
CONTEXT = decimal.Context(
    prec=PRECISION,
    rounding=ROUND_HALF_UP,
    Emax=MAX_ADJUSTED_EXPONENT,
    Emin=-MAX_ADJUSTED_EXPONENT,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)

# The submission's decimal-string form (JSON Schema `$defs/decimal` mirrors it).
_DECIMAL_TEXT = re.compile(r"-?(?:0|[1-9][0-9]{0,29})(?:\.[0-9]{1,20})?")


def to_decimal(value: object) -> Decimal | None:
    """A submitted number (JSON int, JSON float decoded as Decimal, or decimal string), else None.

    Booleans are refused (`True` is an int in Python); non-finite or
    out-of-range values are refused rather than clamped.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if _DECIMAL_TEXT.fullmatch(value) is None:
            return None
        value = Decimal(value)
    if isinstance(value, int):
        if value.bit_length() > 400:  # far beyond Emax; refuse before any conversion work
            return None
        value = Decimal(value)
    if not isinstance(value, Decimal) or not value.is_finite():
        return None
    if value and value.adjusted() > MAX_ADJUSTED_EXPONENT:
        return None
    if value and value.adjusted() < -MAX_ADJUSTED_EXPONENT:
        return None
    return CONTEXT.plus(value)


def round_half_up(value: Decimal, places: int) -> Decimal:
    """`value` rounded half-up to `places` decimal places (0 ≤ places ≤ MAX_PLACES)."""
    if not 0 <= places <= MAX_PLACES:
        raise ValueError(f"places must be between 0 and {MAX_PLACES}, got {places}")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -places and value.adjusted() + 1 + places > PRECISION:
        # Already has no more than `places` decimals, and padding it with zeros would
        # exceed the context's digits (quantize would raise): nothing to round.
        return value
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP, context=CONTEXT)


def fixed(value: Decimal) -> str:
    """Fixed-point text, never scientific notation: '0.0001', not '1E-4'."""
    if value.is_zero():
        value = value.copy_abs()  # "-0.00" is the same number; one spelling per number
    return format(value, "f")


def within(declared: Decimal, expected: Decimal, absolute: Decimal) -> bool:
    """|declared − expected| ≤ absolute, computed in the bounded context."""
    return CONTEXT.abs(CONTEXT.subtract(declared, expected)) <= absolute

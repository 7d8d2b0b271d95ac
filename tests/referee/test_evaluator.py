"""The safe evaluator: hand-checked figures, an exact oracle for pmt, and hostile input."""

from __future__ import annotations

import time
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from defendable_referee.errors import EvaluationError
from defendable_referee.evaluator import MAX_SOURCE_CHARS, evaluate, parse_expression
from defendable_referee.numeric import round_half_up

HANGS_AFTER_S = 2.0  # a generous bound that only a hang or blow-up would cross


def pmt_oracle(loan: int, annual_rate: Fraction, years: int) -> Fraction:
    """Closed form in exact rationals, independent of the evaluator: L·r / (1 − (1+r)^−n)."""
    r = annual_rate / 12
    n = years * 12
    return loan * r / (1 - 1 / (1 + r) ** n)


@pytest.mark.parametrize(
    ("loan", "rate", "years", "monthly"),
    [
        (7_500_000, "0.065", 30, "47405.10"),
        (100_000, "0.06", 30, "599.55"),
        (1_000_000, "0.05", 10, "10606.55"),
    ],
)
def test_pmt_matches_hand_figures_and_the_exact_oracle(loan: int, rate: str, years: int, monthly: str) -> None:
    variables = {"loan": Decimal(loan), "rate": Decimal(rate), "years": Decimal(years)}
    got = evaluate("pmt(rate / 12, years * 12, loan)", variables)
    exact = pmt_oracle(loan, Fraction(rate), years)
    assert round_half_up(got, 2) == Decimal(monthly)
    assert abs(Fraction(got) - exact) < Fraction(1, 10**20)


def test_cre_figures_match_references() -> None:
    ads = evaluate("12 * pmt(0.065 / 12, 30 * 12, 7500000)")
    assert round_half_up(ads, 2) == Decimal("568861.22")
    assert round_half_up(evaluate("900000 / ads", {"ads": ads}), 4) == Decimal("1.5821")
    assert evaluate("7500000 / 10000000") == Decimal("0.75")
    assert evaluate("900000 / 10000000") == Decimal("0.09")


def test_pmt_positive_loan_gives_positive_payment_and_zero_rate_is_straight_line() -> None:
    assert evaluate("pmt(0.01, 12, 1000)") > 0
    assert evaluate("pmt(0, 360, 18000000)") == Decimal(50000)


def test_pmt_whose_discount_underflows_the_range_is_pv_times_rate() -> None:
    # Regression: (1 + 0.5)^-600 ≈ 1e-106 is below the range, so the payment was refused;
    # it is far under the last of 1's 34 digits, so 1 − (1+r)^−n is exactly 1.
    assert evaluate("pmt(0.5, 600, 1000000)") == Decimal(500000)
    assert evaluate("pmt(1e-99, 10000, 1e99)") == Decimal("1e95")
    with pytest.raises(EvaluationError, match="out of range"):  # a growing discount still overflows
        evaluate("pmt(-0.5, 600, 1)")


def test_float_literals_are_read_exactly_after_line_breaks_and_multibyte_names() -> None:
    # Literal text is sliced by UTF-8 byte offsets per line; a wrong offset gives a
    # wrong number or a refusal, never 1.0.
    variables = {"é": Decimal("0.4")}
    assert evaluate("(é +\r\n 0.1 +\r 0.2 +\n\x0c 0.3)", variables) == Decimal("1.0")
    assert evaluate("(\n\n   1_0.2_5e-1\n)") == Decimal("1.025")


def test_float_literals_at_the_length_cap_are_read_in_linear_time() -> None:
    # Regression: ast.get_source_segment re-split the whole source for every literal,
    # so 399 of them in 2,000 characters took ~90 ms; now ~2 ms.
    body = "sum(" + ",".join([".5"] * 399) + ")"
    source = body + " #" + "x" * (MAX_SOURCE_CHARS - len(body) - 2)
    fastest = HANGS_AFTER_S
    for _ in range(3):  # fastest of three: one preemption on a shared box is not the code
        started = time.perf_counter()
        assert evaluate(source) == Decimal("199.5")
        fastest = min(fastest, time.perf_counter() - started)
    assert fastest < 0.050, f"{fastest * 1e3:.1f} ms"


def test_decimal_arithmetic_is_exact_where_floats_are_not() -> None:
    assert evaluate("0.1 + 0.2") == Decimal("0.3")
    assert evaluate("600000 / 500000") == Decimal("1.2")


def test_round_is_half_up_with_explicit_places() -> None:
    assert evaluate("round(2.5, 0)") == Decimal(3)
    assert evaluate("round(0.125, 2)") == Decimal("0.13")
    with pytest.raises(EvaluationError, match="round"):
        evaluate("round(2.5)")


def test_functions_and_operators_in_the_grammar() -> None:
    assert evaluate("min(3, 1, 2) + max(3, 1, 2) + sum(1, 2, 3) + abs(-4)") == Decimal(14)
    assert evaluate("-7 % 3") == Decimal(-1)  # Decimal remainder: sign of the dividend
    assert evaluate("2 ** 10 - +1") == Decimal(1023)
    assert evaluate("1_000.5 * 2") == Decimal("2001.0")


def test_names_resolve_only_from_variables() -> None:
    assert evaluate("x * 2", {"x": Decimal("1.5")}) == Decimal("3.0")
    assert parse_expression("a + b * pmt(c, 12, a)").names == frozenset({"a", "b", "c"})
    with pytest.raises(EvaluationError, match="unknown name 'y'"):
        evaluate("x + y", {"x": Decimal(1)})


HOSTILE = [
    "9**9**9**9",
    "(10**4000)*(10**4000)",
    "(10**4000000)*(10**4000000)",
    "__import__('os')",
    "().__class__",
    "().__class__.__bases__[0].__subclasses__()",
    '"a"*10**9',
    "[x for x in range(10**9)]",
    "(x for x in (1,))",
    "lambda: 0",
    "(" * 10_000 + "1" + ")" * 10_000,
    "(" * 500 + "1" + ")" * 500,
    "-" * 200_000 + "1",
    "-" * 1_000 + "1",
    "1e308*10",
    "1e99*100",
    "1/0",
    "1 % 0",
    "0 ** -1",
    "(-8) ** 0.5",
    "2 ** 0.5 ** -400",
    "True * 3",
    "None",
    "1j",
    "x",
    "_x",
    "__builtins__",
    "open('/etc/passwd')",
    "min(*[1])",
    "max(a=1)",
    "1 if 1 else 2",
    "1 < 2",
    "1 and 2",
    "(y := 1)",
    "f'{1}'",
    "~1",
    "1 << 10000",
    "pmt(0.01, 10**9, 1)",
    "pmt(-1, 12, 1)",
    "round(1, 10**9)",
    "1\x00",
    "",
    "1 +",
    "1+1+" * 450 + "1",
]


@pytest.mark.parametrize("source", HOSTILE, ids=lambda s: repr(s[:40]))
def test_hostile_expressions_are_refused_quickly(source: str) -> None:
    started = time.perf_counter()
    with pytest.raises(EvaluationError):
        evaluate(source)
    assert time.perf_counter() - started < HANGS_AFTER_S


def test_long_source_is_refused_before_parsing() -> None:
    with pytest.raises(EvaluationError, match=f"limit is {MAX_SOURCE_CHARS}"):
        evaluate("1" + " " * MAX_SOURCE_CHARS)


def test_out_of_range_variables_are_refused() -> None:
    with pytest.raises(EvaluationError, match="out of range"):
        evaluate("x", {"x": Decimal("1e400")})
    with pytest.raises(EvaluationError, match="finite"):
        evaluate("x", {"x": Decimal("NaN")})


# -- property test: any input gives a Decimal or EvaluationError -------------

_NAMES = ["a", "b", "rate", "missing", "_x", "__class__", "min"]
_VARIABLES = {"a": Decimal("7500000"), "b": Decimal("-0.5"), "rate": Decimal("0.065")}
_leaf = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=6).map(str),
    st.sampled_from(["0", "1e99", "1e-99", "9e308", "0.0", "1_0", "1e5", ".5", "5."]),
    st.sampled_from(_NAMES),
    st.sampled_from(["'a'", "True", "None", "()", "[]", "x.y", "a[0]", "lambda: 1", "...", "1j"]),
)
_ops = st.sampled_from(["+", "-", "*", "/", "%", "**", "//", "<<", "and", "<", "@"])
_funcs = st.sampled_from(["min", "max", "sum", "abs", "round", "pmt", "eval", "__import__", "pow"])


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, _ops, children).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        st.tuples(st.sampled_from(["-", "+", "--", "not "]), children).map("".join),
        children.map(lambda c: f"({c})"),
        st.tuples(_funcs, st.lists(children, max_size=4)).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
    )


_expressions = st.one_of(st.recursive(_leaf, _extend, max_leaves=40), st.text(max_size=60))


@settings(max_examples=1500, deadline=None)
@given(_expressions)
def test_any_expression_gives_a_decimal_or_evaluation_error(source: str) -> None:
    started = time.perf_counter()
    try:
        result = evaluate(source, _VARIABLES)
    except EvaluationError:
        pass
    else:
        assert isinstance(result, Decimal)
        assert result.is_finite()
    assert time.perf_counter() - started < HANGS_AFTER_S

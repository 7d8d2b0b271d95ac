"""Safe arithmetic over `Decimal` for submitted formulas — never `eval` (DESIGN.md §6).

Grammar (everything else is refused):
    numbers (int / decimal literals; no strings, no booleans, no complex),
    names (resolved only from the caller's variables; no leading underscore),
    binary  + - * / % **      (`%` is Decimal remainder: the sign follows the dividend),
    unary   + -,
    calls   min(a, ...), max(a, ...), sum(a, ...), abs(x),
            round(x, places)  half-up to an explicit number of places (0..20),
            pmt(rate, nper, pv) = pv·r / (1 − (1 + r)^−n), pv / n when r = 0.
            Sign convention: a positive loan `pv` gives a positive payment
            (numpy-financial's `pmt` returns the negative of this).

Why each bound exists (REFERENCES.md, "Safe evaluation pitfalls"): simpleeval
bounded `**` only, so `(10**4000000)*(10**4000000)` ran for seconds; a long
unary chain makes `ast.parse` raise MemoryError; attribute access and
generator frames have escaped sandboxes. Plan:

1. Bound the source *before* parsing: length, bracket nesting, unary runs.
2. Parse with `ast.parse(mode="eval")`; translate every parser failure.
3. Walk the tree iteratively with an allow-list, capping node count and
   depth, and lower it to a tiny immutable IR (no `ast` object survives).
4. Evaluate the IR in the bounded context `numeric.CONTEXT` (34 digits,
   |x| < 10**100, traps on). Every value is a 34-digit Decimal, so `*` `/`
   `+` cost O(1); `**` checks exponent and result magnitude before computing.
"""

from __future__ import annotations

import ast
import decimal
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from defendable_referee.errors import EvaluationError
from defendable_referee.numeric import CONTEXT, MAX_ADJUSTED_EXPONENT, MAX_PLACES, PRECISION, round_half_up

MAX_SOURCE_CHARS = 2_000
MAX_BRACKET_DEPTH = 32
MAX_UNARY_RUN = 16
MAX_NODES = 400
MAX_TREE_DEPTH = 64
MAX_EXPONENT = 10_000  # |e| for `**`; also the most periods `pmt` accepts
PARSED_CACHE_SIZE = 512  # at most ~512 × 400 nodes held
MAX_LITERAL_BITS = 400  # an int literal beyond ~10**120 is out of range anyway

_LINE_END = re.compile(rb"\r\n?|\n")  # how the tokenizer ends lines (form feed does not)


# -- IR ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Num:
    value: Decimal


@dataclass(frozen=True, slots=True)
class _Var:
    name: str


@dataclass(frozen=True, slots=True)
class _Unary:
    op: str
    operand: _Node


@dataclass(frozen=True, slots=True)
class _Binary:
    op: str
    left: _Node
    right: _Node


@dataclass(frozen=True, slots=True)
class _Apply:
    func: str
    args: tuple[_Node, ...]


_Node = _Num | _Var | _Unary | _Binary | _Apply

_BINARY_OPS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Mod: "%",
    ast.Pow: "**",
}
_UNARY_OPS: dict[type[ast.unaryop], str] = {ast.UAdd: "+", ast.USub: "-"}
_REFUSED_NAMES: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "generator expressions",
    ast.Compare: "comparisons",
    ast.BoolOp: "boolean operators",
    ast.IfExp: "conditional expressions",
    ast.NamedExpr: "assignment expressions",
    ast.JoinedStr: "f-strings",
    ast.Starred: "star arguments",
}


# -- public API -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed, validated formula. `names` are the variables it reads."""

    source: str
    names: frozenset[str]
    _root: _Node

    def evaluate(self, variables: Mapping[str, Decimal] | None = None) -> Decimal:
        with _arithmetic_errors():
            return _eval(self._root, _bind(self.names, variables or {}))


def parse_expression(source: str) -> Expression:
    """Validate `source` against the grammar above; raise EvaluationError if refused."""
    if not isinstance(source, str):
        raise EvaluationError(f"formula must be text, got {type(source).__name__}")
    return _parse_cached(source)


@lru_cache(maxsize=PARSED_CACHE_SIZE)
def _parse_cached(source: str) -> Expression:
    # Agents state the same few formulas run after run, and parsing (ast + screening +
    # lowering) was most of the math rule's cost. An Expression is immutable, so sharing
    # one is safe; refusals raise and are not cached.
    _prescreen(source)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise EvaluationError(f"syntax error: {exc.msg}") from None
    except (ValueError, MemoryError, RecursionError, OverflowError) as exc:
        # ValueError: NUL bytes; the others are what deep input does to CPython's parser.
        raise EvaluationError(f"formula could not be parsed: {type(exc).__name__}") from None
    names = _screen_tree(tree)
    with _arithmetic_errors():
        root = _lower(tree.body, _SourceText.of(source))
    return Expression(source=source, names=names, _root=root)


def evaluate(source: str, variables: Mapping[str, Decimal] | None = None) -> Decimal:
    """Parse and evaluate in one step."""
    return parse_expression(source).evaluate(variables)


@contextmanager
def _arithmetic_errors() -> Iterator[None]:
    """Translate the context's traps into EvaluationError with a factual message."""
    try:
        yield
    except decimal.Overflow:
        raise EvaluationError(f"result out of range: |x| must be below 1e{MAX_ADJUSTED_EXPONENT + 1}") from None
    except decimal.DivisionByZero:
        raise EvaluationError("division by zero") from None
    except decimal.DecimalException as exc:
        # InvalidOperation here means: undefined, or an exact result (`%`, `round`) needs
        # more significant digits than the context holds.
        raise EvaluationError(
            f"invalid arithmetic ({type(exc).__name__}): undefined or beyond {PRECISION} digits"
        ) from None


# -- 1. before parsing ------------------------------------------------------


def _prescreen(source: str) -> None:
    if len(source) > MAX_SOURCE_CHARS:
        raise EvaluationError(f"formula is {len(source)} characters; the limit is {MAX_SOURCE_CHARS}")
    depth = 0
    unary_run = 0
    for char in source:
        if char in "([{":
            depth += 1
            if depth > MAX_BRACKET_DEPTH:
                raise EvaluationError(f"brackets nest deeper than {MAX_BRACKET_DEPTH}")
        elif char in ")]}":
            depth -= 1
        if char in "+-~":
            unary_run += 1
            if unary_run > MAX_UNARY_RUN:
                raise EvaluationError(f"more than {MAX_UNARY_RUN} consecutive sign operators")
        elif not char.isspace():
            unary_run = 0


# -- 3. validate and lower --------------------------------------------------


def _screen_tree(tree: ast.Expression) -> frozenset[str]:
    """Iterative walk (no recursion on untrusted depth): allow-list, caps, names read."""
    names: set[str] = set()
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise EvaluationError(f"formula has more than {MAX_NODES} nodes")
        if depth > MAX_TREE_DEPTH:
            raise EvaluationError(f"formula nests deeper than {MAX_TREE_DEPTH}")
        children: Sequence[ast.AST]
        match node:
            case ast.BinOp(left=left, op=op, right=right):
                if type(op) not in _BINARY_OPS:
                    raise EvaluationError(f"operator {type(op).__name__} is not allowed")
                children = (left, right)
            case ast.UnaryOp(op=op, operand=operand):
                if type(op) not in _UNARY_OPS:
                    raise EvaluationError(f"operator {type(op).__name__} is not allowed")
                children = (operand,)
            case ast.Constant(value=value):
                _check_literal(value)
                children = ()
            case ast.Name(id=name):
                _check_name(name)
                names.add(name)
                children = ()
            case ast.Call(func=func, args=args, keywords=keywords):
                if not isinstance(func, ast.Name) or func.id not in _FUNCTIONS:
                    raise EvaluationError(f"only these functions may be called: {', '.join(sorted(_FUNCTIONS))}")
                if keywords:
                    raise EvaluationError("keyword arguments are not allowed")
                children = args
            case _:
                what = _REFUSED_NAMES.get(type(node), type(node).__name__)
                raise EvaluationError(f"{what} not allowed")
        stack.extend((child, depth + 1) for child in children)
    return frozenset(names)


def _check_literal(value: object) -> None:
    # bool is an int subclass: `True * 3` must not sneak through as a number.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EvaluationError(f"only numeric literals are allowed, got {type(value).__name__}")
    if isinstance(value, int) and value.bit_length() > MAX_LITERAL_BITS:
        raise EvaluationError("numeric literal out of range")


def _check_name(name: str) -> None:
    if name.startswith("_"):
        raise EvaluationError(f"name {name!r} is not allowed: names may not start with an underscore")


@dataclass(frozen=True, slots=True)
class _SourceText:
    """The formula as UTF-8 with each line's starting offset, computed once per parse.

    `ast.get_source_segment` re-splits the whole source, a character at a time in
    Python, on every call: 399 float literals in 2,000 characters took ~90 ms.
    """

    encoded: bytes
    line_starts: tuple[int, ...]

    @classmethod
    def of(cls, source: str) -> _SourceText:
        encoded = source.encode()  # cannot fail: ast.parse already refused lone surrogates
        return cls(encoded, (0, *(match.end() for match in _LINE_END.finditer(encoded))))

    def segment(self, node: ast.expr) -> str | None:
        """The text of `node`, as `ast.get_source_segment` gives it (offsets are UTF-8 bytes)."""
        if node.end_lineno is None or node.end_col_offset is None:
            return None
        start = self.line_starts[node.lineno - 1] + node.col_offset
        end = self.line_starts[node.end_lineno - 1] + node.end_col_offset
        return self.encoded[start:end].decode()


def _lower(node: ast.expr, source: _SourceText) -> _Node:
    """ast → IR. Recursion here is safe: `_screen_tree` already capped the depth."""
    match node:
        case ast.BinOp(left=left, op=op, right=right):
            return _Binary(_BINARY_OPS[type(op)], _lower(left, source), _lower(right, source))
        case ast.UnaryOp(op=op, operand=operand):
            return _Unary(_UNARY_OPS[type(op)], _lower(operand, source))
        case ast.Constant(value=value):
            return _Num(_literal(node, value, source))
        case ast.Name(id=name):
            return _Var(name)
        case ast.Call(func=ast.Name(id=func), args=args):
            return _Apply(func, tuple(_lower(arg, source) for arg in args))
    raise EvaluationError(f"{type(node).__name__} not allowed")  # unreachable after screening


def _literal(node: ast.expr, value: object, source: _SourceText) -> Decimal:
    if isinstance(value, float):
        # Read the literal's own text: the float has already lost digits (0.1) or
        # become inf (1e400). Decimal accepts Python's underscores and exponents.
        text = source.segment(node)
        if text is None:
            raise EvaluationError("numeric literal could not be read")
        exact = Decimal(text.replace("_", ""))
    else:
        assert isinstance(value, int)
        exact = Decimal(value)
    return _in_range(exact, "numeric literal")


def _in_range(value: Decimal, what: str) -> Decimal:
    if not value.is_finite():
        raise EvaluationError(f"{what} is not a finite number")
    if value and abs(value.adjusted()) > MAX_ADJUSTED_EXPONENT:
        raise EvaluationError(f"{what} out of range: 1e{value.adjusted()} (limit 1e±{MAX_ADJUSTED_EXPONENT})")
    return CONTEXT.plus(value)  # round to the context's 34 digits


def _bind(names: frozenset[str], variables: Mapping[str, Decimal]) -> dict[str, Decimal]:
    env: dict[str, Decimal] = {}
    for name in sorted(names):  # sorted: the first missing name reported is deterministic
        if name not in variables:
            raise EvaluationError(f"unknown name {name!r}: it is not among the given variables")
        value = variables[name]
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise EvaluationError(f"variable {name!r} is not a number")
        if isinstance(value, int) and value.bit_length() > MAX_LITERAL_BITS:
            raise EvaluationError(f"variable {name!r} out of range")
        env[name] = _in_range(Decimal(value), f"variable {name!r}")
    return env


# -- 4. evaluate ------------------------------------------------------------


def _eval(node: _Node, env: Mapping[str, Decimal]) -> Decimal:
    match node:
        case _Num(value=value):
            return value
        case _Var(name=name):
            return env[name]
        case _Unary(op=op, operand=operand):
            inner = _eval(operand, env)
            return CONTEXT.minus(inner) if op == "-" else CONTEXT.plus(inner)
        case _Binary(op=op, left=left, right=right):
            return _binary(op, _eval(left, env), _eval(right, env))
        case _Apply(func=func, args=args):
            return _FUNCTIONS[func]([_eval(arg, env) for arg in args])
    raise EvaluationError(f"unknown node {node!r}")  # unreachable: the IR is closed


def _binary(op: str, a: Decimal, b: Decimal) -> Decimal:
    if op == "+":
        return CONTEXT.add(a, b)
    if op == "-":
        return CONTEXT.subtract(a, b)
    if op == "*":
        return CONTEXT.multiply(a, b)
    if op in ("/", "%"):
        if b.is_zero():
            raise EvaluationError("division by zero")
        return CONTEXT.divide(a, b) if op == "/" else CONTEXT.remainder(a, b)
    return _power(a, b)


def _power(base: Decimal, exponent: Decimal) -> Decimal:
    """`base ** exponent`, refused *before* computing when it cannot fit the range."""
    if abs(exponent) > MAX_EXPONENT:
        raise EvaluationError(f"exponent {exponent} exceeds the limit of ±{MAX_EXPONENT}")
    integral = exponent == exponent.to_integral_value()
    if base.is_zero():
        if exponent <= 0:
            raise EvaluationError("0 raised to a zero or negative power is undefined")
        return Decimal(0)
    if base < 0 and not integral:
        raise EvaluationError("a negative number raised to a fractional power is not a real number")
    # log10|result| = exponent · log10|base|; refuse if that leaves the range.
    magnitude = CONTEXT.multiply(CONTEXT.log10(CONTEXT.abs(base)), exponent)
    if abs(magnitude) > MAX_ADJUSTED_EXPONENT:
        raise EvaluationError(f"result magnitude about 1e{magnitude:.0f} is out of range")
    return CONTEXT.power(base, exponent)


def _arity(name: str, args: Sequence[Decimal], low: int, high: int | None) -> None:
    if len(args) < low or (high is not None and len(args) > high):
        wanted = str(low) if low == high else f"at least {low}" if high is None else f"{low} to {high}"
        raise EvaluationError(f"{name}() takes {wanted} arguments, got {len(args)}")


def _integral(name: str, value: Decimal, low: int, high: int) -> int:
    if value != value.to_integral_value() or not low <= value <= high:
        raise EvaluationError(f"{name} must be a whole number from {low} to {high}, got {value}")
    return int(value)


def _min(args: Sequence[Decimal]) -> Decimal:
    _arity("min", args, 1, None)
    return min(args)


def _max(args: Sequence[Decimal]) -> Decimal:
    _arity("max", args, 1, None)
    return max(args)


def _sum(args: Sequence[Decimal]) -> Decimal:
    _arity("sum", args, 1, None)
    total = Decimal(0)
    for arg in args:
        total = CONTEXT.add(total, arg)
    return total


def _abs(args: Sequence[Decimal]) -> Decimal:
    _arity("abs", args, 1, 1)
    return CONTEXT.abs(args[0])


def _round(args: Sequence[Decimal]) -> Decimal:
    # Places are required: Python's round() defaults to banker's rounding to 0 places,
    # a silent surprise in money arithmetic.
    _arity("round", args, 2, 2)
    return round_half_up(args[0], _integral("round() places", args[1], 0, MAX_PLACES))


def _pmt(args: Sequence[Decimal]) -> Decimal:
    _arity("pmt", args, 3, 3)
    rate, nper, pv = args
    periods = _integral("pmt() nper", nper, 1, MAX_EXPONENT)
    if rate <= -1:
        raise EvaluationError(f"pmt() rate must be greater than -1, got {rate}")
    if rate.is_zero():
        return CONTEXT.divide(pv, Decimal(periods))
    # Not `_power`: its range check refused (1 + r)^-n below 1e-99 (pmt(0.5, 600, pv)),
    # where the exact answer is plain: that discount is far under the last of 1's 34
    # digits, so the denominator is 1. The context lets it underflow quietly (Underflow
    # is not trapped); periods ≤ MAX_EXPONENT keep the cost O(1); a growing discount
    # (rate < 0) still traps Overflow.
    discount = CONTEXT.power(CONTEXT.add(Decimal(1), rate), Decimal(-periods))
    denominator = CONTEXT.subtract(Decimal(1), discount)
    if denominator.is_zero():  # a rate so small that (1+r)^-n rounds to 1 in 34 digits
        return CONTEXT.divide(pv, Decimal(periods))
    return CONTEXT.divide(CONTEXT.multiply(pv, rate), denominator)


_FUNCTIONS: dict[str, Callable[[Sequence[Decimal]], Decimal]] = {
    "min": _min,
    "max": _max,
    "sum": _sum,
    "abs": _abs,
    "round": _round,
    "pmt": _pmt,
}

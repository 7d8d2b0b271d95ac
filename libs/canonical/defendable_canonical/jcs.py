"""RFC 8785 JSON Canonicalization Scheme (JCS), byte for byte.

Three entry points:

* `canonicalize(value)` - canonical bytes of a JSON-like Python value (the general path).
* `canonicalize_json(data)` - parse JSON text strictly, then canonicalize it.
* `canonical_struct(obj)` - canonical bytes of a msgspec Struct; the hot path for receipts.

Why `canonical_struct` may use ``msgspec.json.encode(order="sorted")``: for values with
no floats and no non-BMP characters in object keys, msgspec writes exactly the JCS bytes.
Checked empirically against msgspec 0.19-0.22 and in tests/canonical by property tests:

* strings (RFC 8785 §3.2.2.2): msgspec escapes only ``"``, ``\\`` and U+0000-U+001F, uses the
  short forms ``\\b \\t \\n \\f \\r`` and lowercase ``\\u00xx`` otherwise, and writes U+007F,
  U+2028, U+2029, ``/``, ``<`` and ``&`` raw - as JCS does. Lone surrogates raise.
* keys (§3.2.3): msgspec sorts by code point, which equals UTF-16 code-unit order unless a
  key holds a character above U+FFFF; Struct field names are fixed, so the plan vets them once.
* numbers (§3.2.2.3): integers print alike; floats do not (``1.0`` vs ``1``), so any float
  sends the value down the general path. I-JSON's integer range is checked by the plan.

Everything the plan cannot vouch for (floats, dicts, Raw, Any, custom types) takes the
general path, which is the reference: ``msgspec.to_builtins`` then `canonicalize`.
"""

from __future__ import annotations

import contextlib
import json
import math
import operator
from collections.abc import Callable
from typing import Final

import msgspec
from msgspec import inspect as mi

MAX_DEPTH: Final = 256
MAX_SAFE_INTEGER: Final = 2**53 - 1  # I-JSON (RFC 7493 §2.2), required by RFC 8785 §3.2.2.3

# RFC 8785 §3.2.2.2: escape only '"', '\' and U+0000-U+001F; the five short forms, else \u00xx.
_SHORT_ESCAPES: Final = {0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r"}
_ESCAPES: Final[dict[int, str]] = {
    0x22: '\\"',
    0x5C: "\\\\",
    **{c: _SHORT_ESCAPES.get(c, f"\\u{c:04x}") for c in range(0x20)},
}
_NEEDS_ESCAPE: Final = frozenset(chr(c) for c in _ESCAPES)

PathSegment = str | int


class CanonicalError(ValueError):
    """A value or text that has no RFC 8785 canonical form; the message says where and why."""


# ---------------------------------------------------------------- paths


def format_path(path: list[PathSegment]) -> str:
    """``$.a[3].b`` style; keys that are not plain identifiers are quoted, deep paths elided."""
    shown = path if len(path) <= 16 else path[:16]
    parts = ["$"]
    for segment in shown:
        if isinstance(segment, int):
            parts.append(f"[{segment}]")
        elif segment.isidentifier() and segment.isascii():
            parts.append(f".{segment}")
        else:
            parts.append(f"[{json.dumps(segment)}]")
    if len(path) > len(shown):
        parts.append(f"...({len(path) - len(shown)} levels more)")
    return "".join(parts)


def _fail(path: list[PathSegment], problem: str) -> CanonicalError:
    return CanonicalError(f"{format_path(path)}: {problem}")


# ---------------------------------------------------------------- scalars


def _string(text: str, path: list[PathSegment], what: str = "string") -> bytes:
    """RFC 8785 §3.2.2.2: minimal escaping, raw UTF-8 for everything else."""
    escaped = text.translate(_ESCAPES) if not _NEEDS_ESCAPE.isdisjoint(text) else text
    try:
        return b'"' + escaped.encode("utf-8") + b'"'
    except UnicodeEncodeError:
        raise _fail(path, _surrogate_problem(text, what)) from None


def _surrogate_problem(text: str, what: str) -> str:
    index = next(i for i, ch in enumerate(text) if 0xD800 <= ord(ch) <= 0xDFFF)
    return f"{what} holds a lone surrogate U+{ord(text[index]):04X} at index {index}; JSON text must be UTF-8"


def _integer(value: int, path: list[PathSegment]) -> bytes:
    """I-JSON (RFC 7493 §2.2, cited by RFC 8785 §3.2.2.3): integers beyond ±(2^53-1) lose precision."""
    if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return int.__repr__(value).encode()
    raise _fail(path, f"integer {value} is outside ±(2^53-1), the I-JSON range RFC 8785 requires")


def format_number(value: float) -> str:
    """ECMAScript Number.prototype.toString (ECMA-262 Number::toString), per RFC 8785 §3.2.2.3.

    Plan: 1. zero and exact small integers directly; 2. take the shortest round-trip digits
    from ``repr`` (the same digits ECMAScript picks); 3. place the decimal point by the
    ECMAScript rules on digits ``d`` (k of them) and point position ``n``.
    Raises ValueError for NaN and the infinities, which JSON cannot express.
    """
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not a JSON number")
    # 1. -0.0 prints as "0"; below 2^53 an integral double's shortest digits are its own.
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
        return str(int(value))
    sign = "-" if value < 0 else ""
    # 2. repr gives d.ddd[e±x]; turn it into digits `d` and n with value = 0.d × 10^n.
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    n = len(whole) + (int(exponent) if exponent else 0) - (len(whole + fraction) - len(digits))
    digits = digits.rstrip("0")
    return sign + _place_point(digits, n)


def _place_point(digits: str, n: int) -> str:
    """3. ECMA-262 Number::toString steps 6-10 for k digits and point position n."""
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return f"{digits[:n]}.{digits[n:]}"
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = n - 1
    mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"


def _float(value: float, path: list[PathSegment]) -> bytes:
    try:
        return format_number(value).encode()
    except ValueError:
        raise _fail(path, f"number {value!r} has no JSON form (RFC 8785 §3.2.2.3 forbids NaN and Infinity)") from None


# ---------------------------------------------------------------- containers


def _object(value: dict[object, object], out: list[bytes], path: list[PathSegment]) -> None:
    """RFC 8785 §3.2.3: members sorted by the UTF-16 code units of their keys, recursively."""
    keyed: list[tuple[bytes, str, object]] = []
    for key, item in value.items():
        if not isinstance(key, str):
            raise _fail(path, f"object key {key!r} has type {type(key).__name__}; JSON keys are strings")
        try:
            keyed.append((key.encode("utf-16-be"), key, item))
        except UnicodeEncodeError:
            raise _fail(path, _surrogate_problem(key, f"key {key!r}")) from None
    keyed.sort(key=lambda entry: entry[0])
    out.append(b"{")
    for index, (_, key, item) in enumerate(keyed):
        if index:
            out.append(b",")
        out.append(_string(key, path, "key"))
        out.append(b":")
        path.append(key)
        _emit(item, out, path)
        path.pop()
    out.append(b"}")


def _array(value: list[object] | tuple[object, ...], out: list[bytes], path: list[PathSegment]) -> None:
    """RFC 8785 §3.2.1: array order is significant and kept."""
    out.append(b"[")
    for index, item in enumerate(value):
        if index:
            out.append(b",")
        path.append(index)
        _emit(item, out, path)
        path.pop()
    out.append(b"]")


def _emit(value: object, out: list[bytes], path: list[PathSegment]) -> None:
    """Append the canonical bytes of `value`; `path` locates it for error messages."""
    if isinstance(value, str):
        out.append(_string(value, path))
    elif value is None:
        out.append(b"null")
    elif value is True:
        out.append(b"true")
    elif value is False:
        out.append(b"false")
    elif isinstance(value, int):
        out.append(_integer(value, path))
    elif isinstance(value, float):
        out.append(_float(value, path))
    elif isinstance(value, dict | list | tuple):
        if len(path) >= MAX_DEPTH:
            raise _fail(path, f"nesting deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            _object(value, out, path)
        else:
            _array(value, out, path)
    elif isinstance(value, msgspec.Raw):
        # Pre-encoded JSON (the contract's Raw fields) is parsed strictly and canonicalised in place.
        _emit(_parse(bytes(value), path), out, path)
    else:
        raise _fail(
            path, f"type {type(value).__name__} is not a JSON type (dict, list, tuple, str, int, float, bool, None)"
        )


def canonicalize(value: object) -> bytes:
    """RFC 8785 canonical bytes of a JSON-like value (dict with str keys, list/tuple, str,
    int, float, bool, None; msgspec.Raw is parsed as JSON text). Raises CanonicalError."""
    out: list[bytes] = []
    _emit(value, out, [])
    return b"".join(out)


# ---------------------------------------------------------------- JSON text


def _unique_object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """RFC 8785 §3.1 requires I-JSON input, and I-JSON (RFC 7493 §2.3) forbids duplicate names."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise CanonicalError(f"duplicate object key {key!r}; RFC 8785 §3.1 needs unique keys")
            seen.add(key)
    return result


def _reject_constant(name: str) -> object:
    raise CanonicalError(f"{name} is not JSON (RFC 8785 §3.2.2.3 forbids NaN and Infinity)")


def _parse_int(text: str) -> int | float:
    """Integer literals within ±(2^53-1) stay ints. Larger ones are accepted only when they are
    exactly the ECMAScript form of a double (as `canonicalize` prints 2.0**53 or 1e20), so the
    canonical form is a fixed point; anything else would silently lose digits (RFC 7493 §2.2)."""
    digits = len(text) - text.startswith("-")
    if digits <= 15:
        return int(text)
    if digits <= 400:  # beyond ~309 digits no double exists; also stays under Python's 4300-digit limit
        value = int(text)
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return value
        with contextlib.suppress(OverflowError):
            if format_number(float(value)) == text:
                return float(value)
    shown = text if len(text) <= 24 else text[:24] + "..."
    raise CanonicalError(f"integer {shown} is outside ±(2^53-1) and not exactly a double (I-JSON, RFC 7493 §2.2)")


def _parse(data: bytes, path: list[PathSegment]) -> object:
    """Strict JSON parse: UTF-8 only, no duplicate keys, no NaN/Infinity, nothing after the value."""
    where = f"{format_path(path)}: " if path else ""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CanonicalError(f"{where}not UTF-8: byte 0x{data[e.start]:02x} at offset {e.start}") from None
    try:
        return json.loads(text, object_pairs_hook=_unique_object, parse_constant=_reject_constant, parse_int=_parse_int)
    except CanonicalError as e:
        raise CanonicalError(f"{where}{e}") from None
    except json.JSONDecodeError as e:
        problem = "trailing data after the JSON value" if e.msg == "Extra data" else e.msg
        raise CanonicalError(f"{where}not JSON: {problem} at offset {e.pos}") from None
    except RecursionError:
        raise CanonicalError(f"{where}JSON nested too deeply to parse (limit {MAX_DEPTH})") from None


def canonicalize_json(data: bytes) -> bytes:
    """Parse JSON text strictly and return its RFC 8785 canonical bytes. Raises CanonicalError."""
    return canonicalize(_parse(bytes(data), []))


# ---------------------------------------------------------------- msgspec Structs

# Appends the integers found in a value (and, harmlessly, None or str from Optional/union
# fields) to a list; one C-level min/max then checks them all. Hot path: ~1 µs per receipt.
Gather = Callable[[object, list[object]], None]
_SORTED: Final = msgspec.json.Encoder(order="sorted")


class _Plan(msgspec.Struct, frozen=True):
    """Whether a Struct type may take the fast path, and how to collect its integers."""

    fast: bool
    gather: Gather | None


_PLANS: dict[type[msgspec.Struct], _Plan] = {}  # memo of pure type analysis; safe to share


def canonical_struct(obj: msgspec.Struct) -> bytes:
    """RFC 8785 canonical bytes of a msgspec Struct, as msgspec would encode it (field
    renames, tags and omit_defaults honoured). Fast path when the type allows; raises CanonicalError."""
    cls = type(obj)
    plan = _PLANS.get(cls) or _plan_for(cls)
    if plan.fast and (plan.gather is None or _ints_in_range(plan.gather, obj)):
        try:
            return _SORTED.encode(obj)
        except UnicodeEncodeError:
            pass  # a lone surrogate: the general path names where it is
    return canonicalize(msgspec.to_builtins(obj, builtin_types=(msgspec.Raw,), str_keys=True))


def _ints_in_range(gather: Gather, obj: object) -> bool:
    found: list[object] = []
    gather(obj, found)
    try:
        return not found or (min(found) >= -MAX_SAFE_INTEGER and max(found) <= MAX_SAFE_INTEGER)  # type: ignore[type-var, operator]  # TypeError handled below
    except TypeError:  # None or str mixed in from Optional/union fields
        return all(_in_range(value) for value in found)


def _plan_for(cls: type[msgspec.Struct]) -> _Plan:
    try:
        plan = _Plan(fast=True, gather=_gatherer(mi.type_info(cls), frozenset()))
    except _Ineligible:
        plan = _Plan(fast=False, gather=None)
    _PLANS[cls] = plan
    return plan


class _Ineligible(Exception):
    """The type may hold something msgspec encodes differently from JCS."""


def _in_range(value: object) -> bool:
    return not isinstance(value, int) or -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER


def _gatherer(t: mi.Type, visiting: frozenset[type]) -> Gather | None:
    """How to collect a type's integers (None: it has none); raise _Ineligible for anything
    the fast path cannot vouch for: floats, dicts (keys unknown), Raw, Any, custom types,
    recursive Structs. Like msgspec's own encoder, the plan trusts the annotations."""
    match t:
        case mi.StrType() | mi.BoolType() | mi.NoneType():
            return None
        case mi.IntType():
            return _gather_scalar
        case mi.LiteralType(values=values):
            if all(_in_range(v) and (not isinstance(v, str) or _bmp_only(v)) for v in values):
                return None
            raise _Ineligible
        case mi.ListType(item_type=item) | mi.VarTupleType(item_type=item):
            return _gather_each(_gatherer(item, visiting))
        case mi.TupleType(item_types=items):
            return _gather_each(_gather_any(tuple(_gatherer(i, visiting) for i in items)))
        case mi.UnionType(types=members):
            return _gather_any(tuple(_gatherer(m, visiting) for m in members))
        case mi.StructType():
            return _gather_struct(t, visiting)
        case _:
            raise _Ineligible


def _bmp_only(text: str) -> bool:
    return all(ord(ch) <= 0xFFFF for ch in text)


def _gather_scalar(value: object, found: list[object]) -> None:
    if isinstance(value, int):
        found.append(value)


def _gather_struct(t: mi.StructType, visiting: frozenset[type]) -> Gather | None:
    """Field names are fixed: vet them once for §3.2.3 order. Plain int fields are fetched
    with one attrgetter call; other int-bearing fields recurse."""
    names = [f.encode_name for f in t.fields] + ([t.tag_field] if isinstance(t.tag_field, str) else [])
    if t.cls in visiting or not all(_bmp_only(name) for name in names) or not _in_range(t.tag):
        raise _Ineligible
    inner = visiting | {t.cls}
    flat = [f.name for f in t.fields if isinstance(f.type, mi.IntType)]
    nested = [(f.name, g) for f in t.fields if not isinstance(f.type, mi.IntType) and (g := _gatherer(f.type, inner))]
    if not flat and not nested:
        return None
    cls = t.cls
    get_flat = operator.attrgetter(*flat) if len(flat) > 1 else None

    def gather(value: object, found: list[object]) -> None:
        if isinstance(value, cls):
            if get_flat is not None:
                found.extend(get_flat(value))
            elif flat:
                found.append(getattr(value, flat[0]))
            for name, nested_gather in nested:
                nested_gather(getattr(value, name), found)

    return gather


def _gather_each(item_gather: Gather | None) -> Gather | None:
    if item_gather is None:
        return None

    def gather(value: object, found: list[object]) -> None:
        if isinstance(value, list | tuple):
            for item in value:
                item_gather(item, found)

    return gather


def _gather_any(gathers: tuple[Gather | None, ...]) -> Gather | None:
    """Union members differ in Python type, and each gatherer ignores the others' values."""
    live = [g for g in gathers if g is not None]
    if len(live) <= 1:
        return live[0] if live else None

    def gather(value: object, found: list[object]) -> None:
        for member_gather in live:
            member_gather(value, found)

    return gather

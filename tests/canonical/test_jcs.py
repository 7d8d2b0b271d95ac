"""RFC 8785 canonical JSON: the RFC's own examples, edge tables, rejections, and a property
test against an independent implementation (`rfc8785`, Trail of Bits).

rfc8785 agrees with RFC 8785 on every input these tests generate (checked: Appendix B,
§3.2.2 and §3.2.3 samples). Its one difference is not in output: a lone surrogate in an
object key raises UnicodeEncodeError rather than its own error; only valid values are compared.
"""

from __future__ import annotations

import struct
from typing import Any

import msgspec
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from defendable_canonical.jcs import MAX_DEPTH, CanonicalError, canonicalize, canonicalize_json, format_number

SAFE = 2**53 - 1

# ---------------------------------------------------------------- RFC 8785 examples

# RFC 8785 §3.2.2 "Sample data": the JSON text as written in the RFC, and its canonical form.
RFC_SAMPLE_INPUT = rb"""{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"""
RFC_SAMPLE_OUTPUT = (
    b'{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    b'"string":"\xe2\x82\xac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
)


def test_rfc8785_sample_data_canonicalises_to_the_rfc_bytes() -> None:
    assert canonicalize_json(RFC_SAMPLE_INPUT) == RFC_SAMPLE_OUTPUT


# RFC 8785 §3.2.3 sorting example: keys ordered by UTF-16 code units, so the emoji (a
# surrogate pair, 0xD83D...) sorts before U+FB33 though its code point is larger.
RFC_SORTING_INPUT = {
    "\u20ac": "Euro Sign",
    "\r": "Carriage Return",
    "\ufb33": "Hebrew Letter Dalet With Dagesh",
    "1": "One",
    "\U0001f600": "Emoji: Grinning Face",
    "\u0080": "Control",
    "\u00f6": "Latin Small Letter O With Diaeresis",
}
RFC_SORTING_OUTPUT = (
    b'{"\\r":"Carriage Return","1":"One","\xc2\x80":"Control",'
    b'"\xc3\xb6":"Latin Small Letter O With Diaeresis","\xe2\x82\xac":"Euro Sign",'
    b'"\xf0\x9f\x98\x80":"Emoji: Grinning Face","\xef\xac\xb3":"Hebrew Letter Dalet With Dagesh"}'
)


def test_keys_sort_by_utf16_code_units_as_in_rfc8785_section_3_2_3() -> None:
    assert canonicalize(RFC_SORTING_INPUT) == RFC_SORTING_OUTPUT


def test_nested_objects_are_sorted_recursively() -> None:
    assert canonicalize({"b": {"z": 1, "a": [{"y": 2, "x": 3}]}, "a": None}) == (
        b'{"a":null,"b":{"a":[{"x":3,"y":2}],"z":1}}'
    )


# RFC 8785 Appendix B: IEEE 754 bit patterns and their ECMAScript serialisation.
APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "expected"), APPENDIX_B)
def test_numbers_serialise_as_in_rfc8785_appendix_b(bits: str, expected: str) -> None:
    value = struct.unpack(">d", bytes.fromhex(bits))[0]
    assert canonicalize(value) == expected.encode()
    assert canonicalize([value]) == b"[" + expected.encode() + b"]"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1"),
        (-0.0, "0"),
        (123.0, "123"),
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (1.5e-6, "0.0000015"),
        (1e16, "10000000000000000"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e300, "1.5e+300"),
        (-2.5e-10, "-2.5e-10"),
        (0.1 + 0.2, "0.30000000000000004"),
        (float(2**53), "9007199254740992"),
    ],
)
def test_ecmascript_number_formatting_edges(value: float, expected: str) -> None:
    assert format_number(value) == expected


# RFC 8785 §3.2.2.2: only '"', '\' and U+0000-U+001F are escaped, short forms where they exist.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\b\t\n\f\r", b'"\\b\\t\\n\\f\\r"'),
        ("\x00\x01\x1f", b'"\\u0000\\u0001\\u001f"'),
        ('"\\', b'"\\"\\\\"'),
        ("/", b'"/"'),
        ("\x7f", b'"\x7f"'),
        ("\u2028\u2029", b'"\xe2\x80\xa8\xe2\x80\xa9"'),
        ("<&>", b'"<&>"'),
        ("\U0001f600", b'"\xf0\x9f\x98\x80"'),
    ],
)
def test_strings_escape_exactly_what_jcs_escapes(text: str, expected: bytes) -> None:
    assert canonicalize(text) == expected


# ---------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("nan"), "$: number nan has no JSON form"),
        ({"a": [1.0, float("inf")]}, "$.a[1]: number inf has no JSON form"),
        ({"a": -float("inf")}, "$.a: number -inf"),
        ({"n": 2**53}, "$.n: integer 9007199254740992 is outside ±(2^53-1)"),
        ([-(2**53)], "$[0]: integer -9007199254740992 is outside"),
        ({"s": ["ok", "\ud800"]}, "$.s[1]: string holds a lone surrogate U+D800 at index 0"),
        ({"x y": {"\udc00k": 1}}, '$["x y"]: key'),
        ({1: "one"}, "$: object key 1 has type int"),
        ({"when": object()}, "$.when: type object is not a JSON type"),
        ({"b": b"bytes"}, "$.b: type bytes is not a JSON type"),
    ],
)
def test_values_without_a_canonical_form_are_refused_with_their_path(value: object, message: str) -> None:
    with pytest.raises(CanonicalError) as caught:
        canonicalize(value)
    assert str(caught.value).startswith(message)


def test_integers_at_the_ijson_limit_are_accepted() -> None:
    assert canonicalize([SAFE, -SAFE]) == b"[9007199254740991,-9007199254740991]"


def test_deep_nesting_is_refused_with_a_clear_error_not_a_recursion_error() -> None:
    deep: object = 0
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(CanonicalError, match=f"nesting deeper than {MAX_DEPTH} levels"):
        canonicalize(deep)


def test_nesting_at_the_limit_is_accepted() -> None:
    deep: object = 0
    for _ in range(MAX_DEPTH):
        deep = {"a": deep}
    assert canonicalize(deep).count(b"{") == MAX_DEPTH


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b'{"a":1,"a":2}', "duplicate object key 'a'"),
        (b'{"x":{"b":1,"b":1}}', "duplicate object key 'b'"),
        (b"[1] [2]", "not JSON: trailing data after the JSON value at offset 4"),
        (b'{"a":1}x', "not JSON: trailing data"),
        (b'["\xff"]', "not UTF-8: byte 0xff at offset 2"),
        (b"[NaN]", "NaN is not JSON"),
        (b"[-Infinity]", "-Infinity is not JSON"),
        (b"[1e400]", "$[0]: number inf has no JSON form"),
        (b"[12345678901234567890]", "integer 12345678901234567890 is outside"),
        (b'{"a":"\\ud800"}', "$.a: string holds a lone surrogate"),
        (b"[" * 300 + b"]" * 300, "nesting deeper than 256 levels"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply to parse"),
        (b"{'a':1}", "not JSON: Expecting property name enclosed in double quotes"),
        (b"", "not JSON"),
    ],
)
def test_json_text_without_a_canonical_form_is_refused_with_a_reason(text: bytes, message: str) -> None:
    with pytest.raises(CanonicalError) as caught:
        canonicalize_json(text)
    assert message in str(caught.value)


@pytest.mark.parametrize("literal", [b"9007199254740992", b"-9007199254740992", b"295147905179352830000", b"1e+21"])
def test_canonical_forms_of_large_doubles_are_accepted_back_as_json_text(literal: bytes) -> None:
    assert canonicalize_json(b"[" + literal + b"]") == b"[" + literal + b"]"


def test_integer_literals_that_would_lose_digits_are_refused() -> None:
    with pytest.raises(CanonicalError, match="9007199254740993 is outside"):
        canonicalize_json(b"[9007199254740993]")


def test_json_text_round_trips_numbers_through_ecmascript_form() -> None:
    assert canonicalize_json(b"[1.0, -0, 1E2, 0.1e-6, 1E22]") == b"[1,0,100,1e-7,1e+22]"


def test_raw_json_inside_a_value_is_canonicalised_in_place() -> None:
    assert canonicalize({"b": msgspec.Raw(b'{"z": 1.0, "a": 2}'), "a": 1}) == b'{"a":1,"b":{"a":2,"z":1}}'


def test_raw_json_with_duplicate_keys_is_refused_with_its_path() -> None:
    with pytest.raises(CanonicalError, match=r"^\$\.b: duplicate object key 'k'"):
        canonicalize({"b": msgspec.Raw(b'{"k":1,"k":2}')})


# ---------------------------------------------------------------- property: agrees with rfc8785

EDGE_FLOATS = [0.0, -0.0, 5e-324, -5e-324, 1e-7, 1e-6, 1e21, 1e20, 1.7976931348623157e308, 2.0**53, 0.1]
keys = st.one_of(
    st.text(max_size=8),
    st.text(alphabet=st.characters(min_codepoint=0xD7F0, max_codepoint=0x1F64F, exclude_categories=["Cs"]), max_size=4),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-SAFE, max_value=SAFE),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(EDGE_FLOATS),
    st.text(),
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(keys, children, max_size=6),
    max_leaves=40,
)


@settings(max_examples=600)
@given(json_values)
def test_canonical_bytes_equal_the_independent_rfc8785_implementation(value: Any) -> None:
    assert canonicalize(value) == rfc8785.dumps(value)


@settings(max_examples=300)
@given(json_values)
def test_canonical_bytes_reparse_to_the_same_value_and_are_a_fixed_point(value: object) -> None:
    data = canonicalize(value)
    assert canonicalize_json(data) == data


@settings(max_examples=300)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_finite_float_prints_as_a_shortest_round_trip_ecmascript_number(value: float) -> None:
    text = format_number(value)
    assert float(text) == value
    assert text.encode() == rfc8785.dumps(value)

"""`canonical_struct`: the msgspec fast path writes exactly the bytes of the general path.

The fast path is ``msgspec.json.encode(order="sorted")``; it is only taken for Struct types
whose values cannot hold floats, dict keys, Raw or other types msgspec writes differently
from RFC 8785, and only after the integers are checked against I-JSON's ±(2^53-1).
"""

from __future__ import annotations

import typing
from typing import Any

import msgspec
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from defendable_canonical import jcs
from defendable_canonical.jcs import CanonicalError, canonical_struct, canonicalize
from defendable_canonical.model import EvidenceRef, ReceiptPayload
from defendable_canonical.perf import typical_payload


def general_path(obj: msgspec.Struct) -> bytes:
    return canonicalize(msgspec.to_builtins(obj, str_keys=True))


def test_receipt_payloads_take_the_fast_path() -> None:
    canonical_struct(typical_payload())
    assert jcs._PLANS[ReceiptPayload].fast


def test_typical_payload_bytes_equal_the_general_path_and_rfc8785() -> None:
    payload = typical_payload(7)
    assert canonical_struct(payload) == general_path(payload) == rfc8785.dumps(msgspec.to_builtins(payload))


def every_field(tp: Any) -> st.SearchStrategy[Any]:
    """Every field of a Struct from its annotation, defaulted ones too (st.builds would pass
    msgspec's default factories through): arbitrary unicode (non-BMP included) in every
    string, integers both inside and outside ±(2^53-1)."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return st.builds(tp, **{f.name: every_field(f.type) for f in msgspec.structs.fields(tp)})
    if typing.get_origin(tp) is list:
        return st.lists(every_field(typing.get_args(tp)[0]), max_size=4)
    return st.from_type(tp)


@settings(max_examples=300)
@given(every_field(ReceiptPayload))
def test_fast_path_equals_general_path_for_any_receipt_payload(payload: ReceiptPayload) -> None:
    try:
        expected = general_path(payload)
    except CanonicalError:
        with pytest.raises(CanonicalError):
            canonical_struct(payload)
        return
    assert canonical_struct(payload) == expected


@pytest.mark.parametrize("size", [2**53, -(2**53), 2**64])
def test_struct_integers_beyond_ijson_are_refused_with_their_path(size: int) -> None:
    payload = msgspec.structs.replace(
        typical_payload(), evidence=[EvidenceRef(id="e", name="n", media_type="m", size=size, sha256="s")]
    )
    with pytest.raises(CanonicalError, match=r"^\$\.evidence\[0\]\.size: integer"):
        canonical_struct(payload)


def test_lone_surrogate_in_a_struct_is_refused_with_its_path() -> None:
    payload = msgspec.structs.replace(typical_payload(), project="bad\ud800")
    with pytest.raises(CanonicalError, match=r"^\$\.project: string holds a lone surrogate U\+D800 at index 3"):
        canonical_struct(payload)


class WithFloat(msgspec.Struct):
    ratio: float
    name: str


class WithDict(msgspec.Struct):
    labels: dict[str, int]


class Tagged(msgspec.Struct, tag="t", rename="camel"):
    some_field: int
    other: list[int] = []


class WithRaw(msgspec.Struct):
    raw: msgspec.Raw


def test_structs_with_floats_take_the_general_path_and_print_ecmascript_numbers() -> None:
    assert canonical_struct(WithFloat(ratio=1.0, name="x")) == b'{"name":"x","ratio":1}'
    assert canonical_struct(WithFloat(ratio=1e21, name="x")) == b'{"name":"x","ratio":1e+21}'
    assert not jcs._PLANS[WithFloat].fast


def test_structs_with_dicts_sort_non_bmp_keys_by_utf16() -> None:
    value = WithDict(labels={"\ufb33": 1, "\U0001f600": 2})
    assert canonical_struct(value) == '{"labels":{"\U0001f600":2,"\ufb33":1}}'.encode()
    assert msgspec.json.encode(value, order="sorted") != canonical_struct(value)  # why dicts are ineligible


def test_tags_and_renames_are_honoured_like_msgspec_encodes_them() -> None:
    value = Tagged(some_field=3, other=[2**53 - 1])
    assert canonical_struct(value) == b'{"other":[9007199254740991],"someField":3,"type":"t"}'
    with pytest.raises(CanonicalError, match=r"^\$\.other\[0\]"):
        canonical_struct(Tagged(some_field=3, other=[2**53]))


def test_raw_fields_are_parsed_and_canonicalised() -> None:
    assert canonical_struct(WithRaw(raw=msgspec.Raw(b'{"b": 1.50, "a": []}'))) == b'{"raw":{"a":[],"b":1.5}}'


def test_msgspec_escaping_matches_jcs_for_every_char_below_0x80_and_the_separators() -> None:
    text = "".join(chr(c) for c in range(0x80)) + "\u2028\u2029\ufeff"
    assert msgspec.json.encode(text) == canonicalize(text) == rfc8785.dumps(text)

"""Cook receipts: exact hash constructions, msgspec round trips, RFC 8785 bytes, and no floats."""

from __future__ import annotations

import hashlib

import msgspec
import pytest
import rfc8785
from msgspec import inspect as mi

from defendable_canonical import jcs
from defendable_canonical.cook import (
    COOK_RECEIPT_SCHEMA,
    LIFT_METHOD,
    CookDataset,
    CookItemScore,
    CookLift,
    CookReceiptBody,
    CookReceiptPayload,
    CookSide,
    EvalItem,
    EvalSetRef,
    build_cook_payload,
    cook_seed,
    eval_set_problems,
    eval_set_sha256,
)
from defendable_canonical.jcs import canonical_struct
from defendable_canonical.model import Approval, FlightSheetRef, ReceiptBody, ReceiptPayload
from defendable_canonical.receipt import receipt_hash

ITEMS = [EvalItem(id="q1", sha256="sha256:" + "1" * 64), EvalItem(id="q2", sha256="sha256:" + "2" * 64)]


def test_eval_set_hash_is_sha256_of_the_jcs_item_list_in_order() -> None:
    text = f'[{{"id":"q1","sha256":"sha256:{"1" * 64}"}},{{"id":"q2","sha256":"sha256:{"2" * 64}"}}]'
    assert eval_set_sha256(ITEMS) == "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    assert rfc8785.dumps([msgspec.to_builtins(i) for i in ITEMS]) == text.encode()
    assert eval_set_sha256(ITEMS[::-1]) != eval_set_sha256(ITEMS)  # order is part of the set


@pytest.mark.parametrize(
    ("items", "problem"),
    [
        ([], "eval set has no items"),
        ([ITEMS[0], ITEMS[0]], "eval set lists item ids more than once: 'q1'"),
        ([EvalItem(id="q3", sha256="deadbeef")], "eval set items without a sha256:<64 hex> content digest: 'q3'"),
    ],
)
def test_a_malformed_eval_set_has_no_hash(items: list[EvalItem], problem: str) -> None:
    assert eval_set_problems(items) == [problem]
    with pytest.raises(ValueError, match=problem):
        eval_set_sha256(items)


def test_cook_seed_is_sha256_of_the_documented_jcs_object() -> None:
    es, sheet = "sha256:" + "e" * 64, "sha256:" + "f" * 64
    text = (
        '{"domain":"defendablecloud.cook-seed/v1",'
        f'"eval_set":"{es}","flight_sheet":"{sheet}","post":["b1","b2"],"pre":["a1","a2"]}}'
    )
    assert cook_seed(es, sheet, ["a1", "a2"], ["b1", "b2"]) == "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    assert cook_seed(es, sheet, ["a2", "a1"], ["b1", "b2"]) != cook_seed(es, sheet, ["a1", "a2"], ["b1", "b2"])


def body() -> CookReceiptBody:
    return CookReceiptBody(
        schema=COOK_RECEIPT_SCHEMA,
        org_id="org_1",
        run_id="cook_1",
        project="wacc",
        flight_sheet=FlightSheetRef(id="fin_wacc_calculation_v1", version="1.0.0", sha256="sha256:" + "a" * 64),
        base_model="llama-3.1-8b",
        cooked_model="llama-3.1-8b-cook-7",
        dataset=CookDataset(name="wacc-sft", version="3", sha256="sha256:" + "d" * 64),
        eval_set=EvalSetRef(name="wacc-holdout", sha256=eval_set_sha256(ITEMS), items=2),
        pre=CookSide(
            mean_score="60.0000",
            items=[
                CookItemScore(item_id="q1", run_id="r_pre_1", score="50.00"),
                CookItemScore(item_id="q2", run_id="r_pre_2", score="70.00"),
            ],
        ),
        post=CookSide(
            mean_score="66.6650",
            items=[
                CookItemScore(item_id="q1", run_id="r_post_1", score="58.33"),
                CookItemScore(item_id="q2", run_id="r_post_2", score="75.00"),
            ],
        ),
        lift=CookLift(
            method=LIFT_METHOD,
            mean_difference="6.6650",
            lower="5.0000",
            upper="8.3300",
            confidence="0.95",
            resamples=10_000,
            seed=cook_seed(
                eval_set_sha256(ITEMS), "sha256:" + "a" * 64, ["r_pre_1", "r_pre_2"], ["r_post_1", "r_post_2"]
            ),
            noise_floor="0",
        ),
        approval=Approval(approver="ana@example.com", decided_at="2026-05-01T12:00:00Z", note="ship it"),
    )


def test_the_body_round_trips_through_msgspec_json() -> None:
    original = body()
    assert msgspec.json.decode(msgspec.json.encode(original), type=CookReceiptBody) == original


def test_the_payload_canonicalises_with_the_projects_jcs_byte_for_byte() -> None:
    payload = build_cook_payload(body(), 7, "sha256:" + "9" * 64, "2026-05-01T12:00:01Z")
    data = canonical_struct(payload)
    assert jcs._PLANS[CookReceiptPayload].fast  # the hot path vouches for the type: no floats, no dicts
    assert data == jcs.canonicalize(msgspec.to_builtins(payload)) == rfc8785.dumps(msgspec.to_builtins(payload))
    assert jcs.canonicalize_json(data) == data
    decoded = msgspec.json.decode(data, type=CookReceiptPayload)
    assert decoded == payload
    assert receipt_hash(data) == "sha256:" + hashlib.sha256(data).hexdigest()
    assert decoded.schema == "defendablecloud.cook-receipt/v1"


def test_the_payload_adds_exactly_the_ledger_chain_fields_where_receipt_payload_has_them() -> None:
    body_fields = [f.name for f in msgspec.structs.fields(CookReceiptBody)]
    payload_fields = [f.name for f in msgspec.structs.fields(CookReceiptPayload)]
    assert payload_fields == [*body_fields[:2], "seq", "parent_hash", *body_fields[2:], "minted_at"]
    eval_fields = [f.name for f in msgspec.structs.fields(ReceiptPayload)]
    eval_body = [f.name for f in msgspec.structs.fields(ReceiptBody)]
    assert eval_fields == [*eval_body[:2], "seq", "parent_hash", *eval_body[2:], "minted_at"]
    assert not {"seq", "parent_hash", "minted_at"} & set(body_fields)


def _no_floats(t: mi.Type, seen: set[type]) -> list[str]:
    match t:
        case mi.FloatType() | mi.DecimalType():
            return [repr(t)]
        case mi.StructType(cls=cls, fields=fields):
            if cls in seen:
                return []
            seen.add(cls)
            return [bad for f in fields for bad in _no_floats(f.type, seen)]
        case mi.ListType(item_type=item):
            return _no_floats(item, seen)
        case mi.UnionType(types=members):
            return [bad for m in members for bad in _no_floats(m, seen)]
        case mi.StrType() | mi.IntType() | mi.BoolType() | mi.NoneType() | mi.LiteralType():
            return []
        case _:
            return [f"unexpected {t!r}"]


def _values(value: object) -> list[object]:
    if isinstance(value, dict):
        return [v for item in value.values() for v in _values(item)]
    if isinstance(value, list):
        return [v for item in value for v in _values(item)]
    return [value]


def test_no_floats_anywhere_in_the_schema_or_the_bytes() -> None:
    assert _no_floats(mi.type_info(CookReceiptPayload), set()) == []
    payload = build_cook_payload(body(), 1, "sha256:" + "0" * 64, "2026-05-01T12:00:01Z")
    decoded = msgspec.json.decode(canonical_struct(payload))  # untyped: floats would surface as float
    assert not [v for v in _values(decoded) if isinstance(v, float)]

"""Incident and unlock receipts: hashed like every receipt, self-describing, no floats anywhere."""

from __future__ import annotations

import msgspec
import pytest
import rfc8785
from msgspec import inspect as mi

from defendable_canonical.digest import GENESIS_HASH, sha256_digest
from defendable_canonical.incident import (
    UNLOCK_RECEIPT_SCHEMA,
    DarkAgentTrigger,
    GovernancePolicyRef,
    HighFlagsTrigger,
    IncidentReceiptBody,
    IncidentReceiptPayload,
    SpendCapTrigger,
    UnlockReceiptPayload,
    UnlockRecord,
    build_incident_payload,
    build_unlock_payload,
    decode_incident_payload,
    decode_unlock_payload,
    rfc3339_ms,
)
from defendable_canonical.jcs import CanonicalError, canonical_struct
from defendable_canonical.model import INCIDENT_RECEIPT_SCHEMA, AgentProfile, Approval, ReceiptBody, ReceiptPayload

PROFILE = AgentProfile(model="gpt-5", harness="langgraph@0.3", tools=["python", "search"], runtime="py3.12")
CLAUSE: dict[str, str | int | None] = {
    "id": "gov.high_flags.agent_work",
    "kind": "high_flags",
    "lane": "agent_work",
    "count": 3,
    "window_s": 86400,
    "response": "lock_lane",
}
POLICY = GovernancePolicyRef(
    id="default_governance_v1",
    version="1.0.0",
    sha256="sha256:" + "ab" * 32,
    clause_id="gov.high_flags.agent_work",
    clause=dict(CLAUSE),
)
ACK = Approval(approver="ops@acme.test", decided_at="2026-01-01T03:00:00.000Z", note="retraining")
PROFILE_KEY = "sha256:" + "cd" * 32


def body(**changes: object) -> IncidentReceiptBody:
    fields: dict[str, object] = {
        "org_id": "org_acme",
        "incident_id": "inc_0123456789abcdef0123456789abcdef",
        "kind": "high_flags",
        "lane": "agent_work",
        "agent_profile": PROFILE,
        "profile_key": PROFILE_KEY,
        "trigger": HighFlagsTrigger(
            count=3,
            window_s=86400,
            first_at="2026-01-01T00:00:00.000Z",
            last_at="2026-01-01T02:00:00.000Z",
            run_ids=["run_0", "run_1", "run_2"],
            runs=3,
        ),
        "response": "lock_lane",
        "policy": POLICY,
        "opened_at": "2026-01-01T02:00:00.000Z",
        "acknowledgement": ACK,
        **changes,
    }
    return IncidentReceiptBody(**fields)  # type: ignore[arg-type]  # fields checked by the constructor


def test_incident_payload_is_the_body_plus_the_chain_fields_as_for_eval_receipts() -> None:
    payload = build_incident_payload(body(), 7, GENESIS_HASH, "2026-01-01T03:00:01.000Z")
    assert payload.schema == INCIDENT_RECEIPT_SCHEMA == "defendablecloud.incident-receipt/v1"
    assert (payload.seq, payload.parent_hash, payload.minted_at) == (7, GENESIS_HASH, "2026-01-01T03:00:01.000Z")
    body_fields = set(IncidentReceiptBody.__struct_fields__)
    chain = set(ReceiptPayload.__struct_fields__) - set(ReceiptBody.__struct_fields__)
    assert chain == {"seq", "parent_hash", "minted_at"}
    assert set(IncidentReceiptPayload.__struct_fields__) == body_fields | chain


def test_incident_payload_bytes_are_rfc8785_and_decode_back_to_the_same_payload() -> None:
    payload = build_incident_payload(body(), 1, GENESIS_HASH, "2026-01-01T03:00:01.000Z")
    data = canonical_struct(payload)
    assert data == rfc8785.dumps(msgspec.to_builtins(payload))  # an independent JCS implementation
    assert decode_incident_payload(data) == payload
    # Golden: the bytes of this version's format are fixed; a change here breaks every verifier.
    assert sha256_digest(data) == "sha256:a46b4a3d272f6d1417cf8d9211dbbc2e7bcd0b91918d6681592cb49b19709047"


def test_the_receipt_carries_the_clause_itself_beside_the_policy_hash() -> None:
    data = canonical_struct(build_incident_payload(body(), 1, GENESIS_HASH, "2026-01-01T03:00:01.000Z"))
    assert (
        b'"policy":{"clause":{"count":3,"id":"gov.high_flags.agent_work","kind":"high_flags","lane":"agent_work",'
        b'"response":"lock_lane","window_s":86400},"clause_id":"gov.high_flags.agent_work"' in data
    )
    assert b'"trigger":{"count":3,"first_at":"2026-01-01T00:00:00.000Z","kind":"high_flags"' in data


@pytest.mark.parametrize(
    "trigger",
    [
        SpendCapTrigger(
            window_s=3600,
            window_start="2026-01-01T00:00:00.000Z",
            window_end="2026-01-01T01:00:00.000Z",
            tokens=1001,
            cost="10.000000000001",
            currency="USD",
            max_tokens=1000,
            max_cost="10.00",
            breached=["tokens", "cost"],
            run_ids=["run_0"],
            runs=1,
        ),
        DarkAgentTrigger(
            heartbeat_window_s=900,
            last_heartbeat_at="2026-01-01T00:00:00.000Z",
            detected_at="2026-01-01T00:15:00.000Z",
            silent_s=900,
        ),
    ],
    ids=["spend_cap", "dark_agent"],
)
def test_every_trigger_kind_round_trips(trigger: SpendCapTrigger | DarkAgentTrigger) -> None:
    kind = type(trigger).__struct_config__.tag
    payload = build_incident_payload(
        body(kind=kind, trigger=trigger, lane="*"), 2, GENESIS_HASH, "2026-01-01T03:00:01Z"
    )
    data = canonical_struct(payload)
    assert data == rfc8785.dumps(msgspec.to_builtins(payload))
    assert decode_incident_payload(data) == payload


def test_a_trigger_of_another_kind_than_the_incident_is_refused_when_built_and_when_decoded() -> None:
    dark = DarkAgentTrigger(
        heartbeat_window_s=900,
        last_heartbeat_at="2026-01-01T00:00:00.000Z",
        detected_at="2026-01-01T00:15:00.000Z",
        silent_s=900,
    )
    with pytest.raises(ValueError, match=r"^incident of kind 'high_flags' carries a 'dark_agent' trigger$"):
        body(trigger=dark)
    good = msgspec.to_builtins(build_incident_payload(body(), 1, GENESIS_HASH, "2026-01-01T03:00:01.000Z"))
    good["kind"] = "dark_agent"
    with pytest.raises(CanonicalError, match="carries a 'high_flags' trigger"):
        decode_incident_payload(msgspec.json.encode(good))


def test_an_eval_receipt_or_an_unlock_receipt_is_not_an_incident_receipt() -> None:
    record = unlock_record()
    data = canonical_struct(build_unlock_payload(record, 3, GENESIS_HASH, "2026-01-01T04:00:01.000Z"))
    with pytest.raises(CanonicalError, match=r"^not an incident receipt payload: "):
        decode_incident_payload(data)
    wrong_schema = msgspec.to_builtins(build_incident_payload(body(), 1, GENESIS_HASH, "2026-01-01T03:00:01.000Z"))
    wrong_schema["schema"] = "defendablecloud.eval-receipt/v1"
    with pytest.raises(CanonicalError, match=r"schema is 'defendablecloud.eval-receipt/v1'$"):
        decode_incident_payload(msgspec.json.encode(wrong_schema))


def unlock_record() -> UnlockRecord:
    return UnlockRecord(
        org_id="org_acme",
        unlock_id="unl_0123456789abcdef0123456789abcdef",
        incident_id="inc_0123456789abcdef0123456789abcdef",
        lane="agent_work",
        agent_profile=PROFILE,
        profile_key=PROFILE_KEY,
        policy=POLICY,
        locked_at="2026-01-01T02:00:00.000Z",
        approval=Approval(approver="lead@acme.test", decided_at="2026-01-01T04:00:00.000Z", note="retrained"),
    )


def test_unlock_receipt_is_its_own_schema_on_the_same_chain() -> None:
    record = unlock_record()
    payload = build_unlock_payload(record, 9, "sha256:" + "ef" * 32, "2026-01-01T04:00:01.000Z")
    assert payload.schema == UNLOCK_RECEIPT_SCHEMA == "defendablecloud.unlock-receipt/v1"
    assert set(UnlockReceiptPayload.__struct_fields__) == set(UnlockRecord.__struct_fields__) | {
        "seq",
        "parent_hash",
        "minted_at",
    }
    data = canonical_struct(payload)
    assert data == rfc8785.dumps(msgspec.to_builtins(payload))
    assert decode_unlock_payload(data) == payload
    with pytest.raises(CanonicalError, match=r"^not an unlock receipt payload: "):
        decode_unlock_payload(canonical_struct(build_incident_payload(body(), 1, GENESIS_HASH, "x")))


def _types(t: mi.Type, seen: set[type]) -> list[mi.Type]:
    found: list[mi.Type] = [t]
    match t:
        case mi.StructType(cls=cls) if cls not in seen:
            seen.add(cls)
            for f in t.fields:
                found += _types(f.type, seen)
        case mi.ListType(item_type=item):
            found += _types(item, seen)
        case mi.DictType(key_type=k, value_type=v):
            found += _types(k, seen) + _types(v, seen)
        case mi.UnionType(types=members):
            for m in members:
                found += _types(m, seen)
    return found


@pytest.mark.parametrize("cls", [IncidentReceiptPayload, UnlockReceiptPayload])
def test_no_receipt_field_can_hold_a_float(cls: type[msgspec.Struct]) -> None:
    kinds = {type(t).__name__ for t in _types(mi.type_info(cls), set())}
    assert "FloatType" not in kinds and "AnyType" not in kinds and "DecimalType" not in kinds


@pytest.mark.parametrize(
    ("unix_ns", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (1_767_225_600_000_000_000, "2026-01-01T00:00:00.000Z"),
        (1_767_225_600_123_999_999, "2026-01-01T00:00:00.123Z"),  # truncated, never rounded up
        (1_767_225_599_999_999_999, "2025-12-31T23:59:59.999Z"),
    ],
)
def test_instants_are_rfc3339_utc_with_milliseconds(unix_ns: int, text: str) -> None:
    assert rfc3339_ms(unix_ns) == text

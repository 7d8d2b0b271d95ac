"""One chain per org holds every kind of receipt: each is built, decoded and verified as the kind its schema names."""

from __future__ import annotations

import msgspec
import pytest
import rfc8785

from defendable_canonical.chain import verify_chain
from defendable_canonical.cook import CookReceiptPayload
from defendable_canonical.digest import GENESIS_HASH, sha256_digest
from defendable_canonical.incident import (
    INCIDENT_KINDS,
    UNLOCK_RECEIPT_SCHEMA,
    IncidentReceiptPayload,
    UnlockReceiptPayload,
)
from defendable_canonical.jcs import CanonicalError, canonical_struct
from defendable_canonical.model import (
    COOK_RECEIPT_SCHEMA,
    EVAL_RECEIPT_SCHEMA,
    INCIDENT_RECEIPT_SCHEMA,
    RECEIPT_SCHEMA,
    ReceiptPayload,
    StoredReceipt,
)
from defendable_canonical.perf import typical_body
from defendable_canonical.receipt import (
    PAYLOAD_TYPES,
    build_any_payload,
    build_payload,
    decode_any_payload,
    payload_bytes,
    receipt_hash,
    schema_problem,
)
from defendable_canonical.sample import (
    MIXED_KINDS,
    sample_body,
    sample_cook_body,
    sample_eval_body,
    sample_incident_body,
    sample_mixed_chain,
    sample_trail,
    sample_unlock_record,
)
from defendable_canonical.verification import all_passed, verify_document

MINTED_AT = "2026-01-02T03:04:06Z"
# typical_body(1) at seq 1 after genesis, hashed by the version before execution trails existed
# (18fc08f~1): adding the optional trail must leave every trail-less receipt's bytes alone.
GOLDEN_WITHOUT_TRAIL = "sha256:2e5142910b5bccaf8ef9b51ba8561cc6335d796180a1c5899648ff24d39f98ab"


def relabelled(receipt: StoredReceipt, **changes: object) -> StoredReceipt:
    """The receipt with payload members replaced, canonical and re-hashed, so only the content is at fault."""
    value = msgspec.json.decode(bytes(receipt.payload))
    value.update(changes)
    data = rfc8785.dumps(value)
    return msgspec.structs.replace(receipt, payload=msgspec.Raw(data), receipt_hash=sha256_digest(data))


def relinked(receipts: list[StoredReceipt]) -> list[StoredReceipt]:
    """Re-chain receipts after editing one, so that only the edited content can fail."""
    out: list[StoredReceipt] = []
    parent = str(GENESIS_HASH)
    for receipt in receipts:
        value = msgspec.json.decode(bytes(receipt.payload))
        value["parent_hash"] = parent
        data = rfc8785.dumps(value)
        digest = sha256_digest(data)
        out.append(StoredReceipt(seq=receipt.seq, receipt_hash=digest, parent_hash=parent, payload=msgspec.Raw(data)))
        parent = digest
    return out


# ---------------------------------------------------------------- the execution trail on eval receipts


def test_a_receipt_without_a_trail_hashes_byte_for_byte_as_before_trails_existed() -> None:
    body = typical_body(1)
    assert body.execution_trail is msgspec.UNSET
    data = payload_bytes(build_payload(body, 1, GENESIS_HASH, MINTED_AT))
    assert b"execution_trail" not in data
    assert receipt_hash(data) == GOLDEN_WITHOUT_TRAIL
    assert data == rfc8785.dumps(msgspec.to_builtins(build_payload(body, 1, GENESIS_HASH, MINTED_AT)))


def test_a_receipt_with_a_trail_carries_it_into_the_hashed_payload() -> None:
    body = sample_eval_body(1, trail=True)
    payload = build_payload(body, 1, GENESIS_HASH, MINTED_AT)
    assert payload.execution_trail == sample_trail()
    data = payload_bytes(payload)
    assert data == rfc8785.dumps(msgspec.to_builtins(payload))  # an independent JCS implementation
    assert b'"execution_trail":{"bundle_sha256":"sha256:' in data
    assert receipt_hash(data) != GOLDEN_WITHOUT_TRAIL
    decoded = decode_any_payload(data)
    assert isinstance(decoded, ReceiptPayload) and decoded == payload


# ---------------------------------------------------------------- one builder and one decoder for every kind


@pytest.mark.parametrize(
    ("kind", "schema", "payload_type"),
    [
        ("eval", EVAL_RECEIPT_SCHEMA, ReceiptPayload),
        ("trail", EVAL_RECEIPT_SCHEMA, ReceiptPayload),
        ("cook", COOK_RECEIPT_SCHEMA, CookReceiptPayload),
        ("incident", INCIDENT_RECEIPT_SCHEMA, IncidentReceiptPayload),
        ("unlock", UNLOCK_RECEIPT_SCHEMA, UnlockReceiptPayload),
    ],
)
def test_every_kind_builds_decodes_back_as_itself_and_is_rfc8785(
    kind: str, schema: str, payload_type: type[msgspec.Struct]
) -> None:
    body = sample_body(kind, 3)
    payload = build_any_payload(body, 5, "sha256:" + "ab" * 32, MINTED_AT)
    assert type(payload) is payload_type and payload.schema == schema and schema_problem(body) is None
    assert (payload.seq, payload.parent_hash, payload.minted_at) == (5, "sha256:" + "ab" * 32, MINTED_AT)
    data = payload_bytes(payload)
    assert data == canonical_struct(payload) == rfc8785.dumps(msgspec.to_builtins(payload))
    assert decode_any_payload(data) == payload


def test_the_lane_receipt_schema_reads_as_an_eval_receipt_payload() -> None:
    body = msgspec.structs.replace(typical_body(2), lane="dataset", schema=RECEIPT_SCHEMA)
    data = payload_bytes(build_payload(body, 1, GENESIS_HASH, MINTED_AT))
    assert type(decode_any_payload(data)) is ReceiptPayload
    assert set(PAYLOAD_TYPES) == {
        EVAL_RECEIPT_SCHEMA,
        RECEIPT_SCHEMA,
        COOK_RECEIPT_SCHEMA,
        INCIDENT_RECEIPT_SCHEMA,
        UNLOCK_RECEIPT_SCHEMA,
    }


def test_a_body_whose_schema_names_another_kind_is_refused_before_minting() -> None:
    cook = msgspec.structs.replace(sample_cook_body(), schema=EVAL_RECEIPT_SCHEMA)
    assert schema_problem(cook) == (
        "a CookReceiptBody must have schema 'defendablecloud.cook-receipt/v1', not 'defendablecloud.eval-receipt/v1'"
    )
    unknown = msgspec.structs.replace(typical_body(1), schema="defendablecloud.pizza/v1")
    problem = schema_problem(unknown)
    assert problem is not None and "'defendablecloud.eval-receipt/v1' or 'defendablecloud.receipt/v1'" in problem


def test_decoding_names_an_unknown_schema_and_a_payload_that_is_not_what_its_schema_says() -> None:
    data = payload_bytes(build_any_payload(sample_unlock_record(), 1, GENESIS_HASH, MINTED_AT))
    value = msgspec.json.decode(data)
    with pytest.raises(CanonicalError, match=r"^unknown receipt schema 'defendablecloud.pizza/v1'$"):
        decode_any_payload(rfc8785.dumps(value | {"schema": "defendablecloud.pizza/v1"}))
    with pytest.raises(CanonicalError, match=r"^payload is not a defendablecloud.cook-receipt/v1 payload: "):
        decode_any_payload(rfc8785.dumps(value | {"schema": COOK_RECEIPT_SCHEMA}))
    with pytest.raises(CanonicalError, match=r"^payload is not a defendablecloud.eval-receipt/v1 payload: "):
        decode_any_payload(rfc8785.dumps(value | {"schema": EVAL_RECEIPT_SCHEMA}))
    with pytest.raises(CanonicalError, match=r"^payload is not a receipt payload: "):
        decode_any_payload(b"[1, 2]")


# ---------------------------------------------------------------- chains that mix the kinds


@pytest.fixture(scope="module")
def mixed() -> list[StoredReceipt]:
    return sample_mixed_chain(4 * len(MIXED_KINDS))


def test_a_chain_mixing_every_kind_verifies_in_both_modes(mixed: list[StoredReceipt]) -> None:
    kinds = {type(decode_any_payload(bytes(r.payload))) for r in mixed}
    assert kinds == {ReceiptPayload, CookReceiptPayload, IncidentReceiptPayload, UnlockReceiptPayload}
    for strict in (True, False):
        report = verify_chain(mixed, strict_canonical=strict)
        assert (report.ok, report.length, report.head) == (True, len(mixed), mixed[-1].receipt_hash), report


def test_an_unknown_schema_on_the_chain_is_a_bad_link_that_names_it(mixed: list[StoredReceipt]) -> None:
    index = MIXED_KINDS.index("cook") + len(MIXED_KINDS)  # seq 8, a cook receipt
    edited = relinked(
        [*mixed[:index], relabelled(mixed[index], schema="defendablecloud.pizza/v1"), *mixed[index + 1 :]]
    )
    report = verify_chain(edited)
    assert report.first_bad is not None
    assert report.first_bad.reason == f"seq {index + 1}: unknown receipt schema 'defendablecloud.pizza/v1'"
    assert report.head == edited[index - 1].receipt_hash
    assert verify_chain(edited, strict_canonical=False).ok  # the lax mode reads the chain fields only


def test_a_receipt_relabelled_as_another_kind_fails_strict_verification(mixed: list[StoredReceipt]) -> None:
    index = MIXED_KINDS.index("incident")
    edited = relinked([*mixed[:index], relabelled(mixed[index], schema=UNLOCK_RECEIPT_SCHEMA), *mixed[index + 1 :]])
    report = verify_chain(edited)
    assert report.first_bad is not None and report.first_bad.seq == index + 1
    assert report.first_bad.reason.startswith(f"seq {index + 1}: payload is not a {UNLOCK_RECEIPT_SCHEMA} payload: ")


def test_an_incident_whose_trigger_contradicts_its_kind_fails_strict_verification(mixed: list[StoredReceipt]) -> None:
    index = MIXED_KINDS.index("incident")
    edited = relinked([*mixed[:index], relabelled(mixed[index], kind="dark_agent"), *mixed[index + 1 :]])
    report = verify_chain(edited)
    assert report.first_bad is not None and report.first_bad.seq == index + 1
    assert "carries a 'high_flags' trigger" in report.first_bad.reason


def test_a_tampered_cook_receipt_is_named_by_seq(mixed: list[StoredReceipt]) -> None:
    index = MIXED_KINDS.index("cook")
    data = bytes(mixed[index].payload).replace(b'"resamples":10000', b'"resamples":10001')
    tampered = [*mixed[:index], msgspec.structs.replace(mixed[index], payload=msgspec.Raw(data)), *mixed[index + 1 :]]
    report = verify_chain(tampered)
    assert report.first_bad is not None and report.first_bad.reason.startswith(f"seq {index + 1}: payload hashes to")


def test_non_canonical_bytes_of_an_incident_receipt_are_named_in_strict_mode(mixed: list[StoredReceipt]) -> None:
    index = MIXED_KINDS.index("incident")  # its clause is a dict: the general canonical path
    pretty = msgspec.json.format(bytes(mixed[index].payload), indent=1)
    receipt = msgspec.structs.replace(mixed[index], payload=msgspec.Raw(pretty), receipt_hash=sha256_digest(pretty))
    report = verify_chain([*mixed[:index], receipt])
    assert report.first_bad is not None
    assert (
        report.first_bad.reason
        == f"seq {index + 1}: payload bytes are not RFC 8785 canonical (first difference at byte 1)"
    )


# ---------------------------------------------------------------- receipt documents (share links, the CLI)


def document(receipt: StoredReceipt) -> dict[str, object]:
    return {"receipt_hash": receipt.receipt_hash, "payload": msgspec.json.decode(bytes(receipt.payload))}


@pytest.mark.parametrize("kind", sorted(set(MIXED_KINDS)))
def test_a_document_of_every_kind_passes_the_schema_check(mixed: list[StoredReceipt], kind: str) -> None:
    receipt = mixed[MIXED_KINDS.index(kind)]
    checks = {c.name: c for c in verify_document(document(receipt))}
    assert checks["receipt schema"].outcome == "PASS", checks
    assert checks["receipt hash"].outcome == "PASS"


def test_a_document_with_an_unknown_schema_fails_the_schema_check_naming_it(mixed: list[StoredReceipt]) -> None:
    receipt = relabelled(mixed[MIXED_KINDS.index("unlock")], schema="defendablecloud.pizza/v1")
    checks = verify_document(document(receipt))
    schema = next(c for c in checks if c.name == "receipt schema")
    assert (schema.outcome, schema.detail) == (
        "FAIL",
        "unknown receipt schema: the payload has schema 'defendablecloud.pizza/v1'",
    )
    assert not all_passed(checks)


def test_a_document_that_is_not_what_its_schema_says_fails_the_schema_check(mixed: list[StoredReceipt]) -> None:
    receipt = relabelled(mixed[MIXED_KINDS.index("cook")], schema=INCIDENT_RECEIPT_SCHEMA)
    schema = next(c for c in verify_document(document(receipt)) if c.name == "receipt schema")
    assert schema.outcome == "FAIL" and schema.detail.startswith(
        f"the payload is not a {INCIDENT_RECEIPT_SCHEMA} receipt"
    )


def test_sample_incident_bodies_of_every_trigger_kind_verify_on_one_chain() -> None:
    parent, chain = str(GENESIS_HASH), []
    for seq, kind in enumerate(INCIDENT_KINDS, start=1):
        data = payload_bytes(build_any_payload(sample_incident_body(seq, kind=kind), seq, parent, MINTED_AT))
        chain.append(
            StoredReceipt(seq=seq, receipt_hash=receipt_hash(data), parent_hash=parent, payload=msgspec.Raw(data))
        )
        parent = receipt_hash(data)
    assert verify_chain(chain).ok

"""Redacted receipt fields (docs/redaction.md): salted HMAC-SHA256 commitments in the hashed
payload, a disclosure per field that anyone checks, and a verifier that names what is hidden."""

from __future__ import annotations

import hashlib
import hmac

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from defendable_canonical.jcs import canonicalize
from defendable_canonical.model import Approval, EvidenceRef, ReceiptBody, Signature
from defendable_canonical.perf import typical_body
from defendable_canonical.receipt import build_payload, payload_bytes, receipt_hash
from defendable_canonical.redaction import REDACTABLE_FIELDS, Disclosure, commit, opens, redact_body
from defendable_canonical.signature import b64url, key_id
from defendable_canonical.verification import Check, all_passed, verify_document
from defendable_canonical.verify_redaction import REDACTED, REVEALED

GENESIS = "sha256:" + "0" * 64
ALL = list(REDACTABLE_FIELDS)


def body_with(names: list[str], approver: str = "ana@example.com", note: str = "looks right") -> ReceiptBody:
    refs = [
        EvidenceRef(id=f"ev_{i}", name=n, media_type="text/plain", size=1, sha256="sha256:" + "a" * 64)
        for i, n in enumerate(names)
    ]
    approval = Approval(approver=approver, decided_at="2026-12-04T01:00:00Z", note=note)
    return msgspec.structs.replace(typical_body(1, "org_r"), evidence=refs, approval=approval)


KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"redaction ledger").digest())
PUBLIC = KEY.public_key().public_bytes_raw()


def signed(payload: object, data: bytes) -> dict[str, object]:
    digest = receipt_hash(data)
    sig = Signature(kid=key_id(PUBLIC), public_key=b64url(PUBLIC), sig=b64url(KEY.sign(bytes.fromhex(digest[7:]))))
    return {"receipt_hash": digest, "payload": payload, "signature": msgspec.to_builtins(sig)}


def document(body: ReceiptBody) -> dict[str, object]:
    data = payload_bytes(build_payload(body, 1, GENESIS, "2026-12-04T01:00:01Z"))
    return signed(msgspec.json.decode(data), data)


def by_name(checks: list[Check], name: str) -> Check:
    return next(c for c in checks if c.name == name)


def test_the_commitment_is_hmac_sha256_of_the_value_keyed_by_the_salt() -> None:
    salt = bytes(range(32))
    expected = hmac.new(salt, b"ana@example.com", hashlib.sha256).hexdigest()
    assert commit("ana@example.com", salt) == "hmac-sha256:" + expected


def test_redacting_every_field_hides_the_values_and_lists_the_paths() -> None:
    body, disclosures = redact_body(body_with(["contract.pdf", "bank.csv"]), ALL)
    assert body.redacted == ["approval.approver", "approval.note", "evidence[0].name", "evidence[1].name"]
    encoded = msgspec.json.encode(body)
    for secret in (b"contract.pdf", b"bank.csv", b"ana@example.com", b"looks right"):
        assert secret not in encoded
    assert sorted(d.path for d in disclosures) == body.redacted
    assert {d.value for d in disclosures} == {"contract.pdf", "bank.csv", "ana@example.com", "looks right"}
    assert len({d.salt for d in disclosures}) == 4  # a salt per field: one revealed salt opens one field


def test_the_same_value_commits_differently_each_time() -> None:
    a, _ = redact_body(body_with([]), ["approval.approver"])
    b, _ = redact_body(body_with([]), ["approval.approver"])
    assert a.approval.approver != b.approval.approver  # no dictionary attack across receipts


def test_nothing_to_redact_leaves_the_body_and_its_hash_as_they_were() -> None:
    plain = body_with([])
    assert redact_body(plain, []) == (plain, [])
    assert redact_body(plain, ["evidence.name"]) == (plain, [])  # no evidence: nothing hidden
    assert b"redacted" not in payload_bytes(build_payload(plain, 1, GENESIS, "2026-12-04T01:00:01Z"))


def test_an_unknown_field_is_refused() -> None:
    with pytest.raises(ValueError, match="not a redactable field"):
        redact_body(body_with([]), ["approval.decided_at"])


def test_a_redacted_receipt_verifies_and_names_the_hidden_fields() -> None:
    body, _ = redact_body(body_with(["a.txt"]), ["evidence.name", "approval.approver"])
    checks = verify_document(document(body))
    assert all_passed(checks)
    assert by_name(checks, REDACTED).outcome == "PASS"
    assert "approval.approver, evidence[0].name" in by_name(checks, REDACTED).detail
    assert by_name(checks, REVEALED).outcome == "SKIPPED"


def test_revealing_a_field_checks_value_and_salt_and_keeps_the_hash() -> None:
    body, disclosures = redact_body(body_with(["a.txt"]), ALL)
    doc = document(body)
    approver = next(d for d in disclosures if d.path == "approval.approver")
    checks = verify_document(doc, disclosures=[approver])
    assert all_passed(checks)
    assert by_name(checks, REVEALED).detail == "approval.approver = 'ana@example.com'"
    assert document(body)["receipt_hash"] == doc["receipt_hash"]  # revealing changes no byte


@pytest.mark.parametrize(
    "change",
    [
        {"value": "eve@example.com"},  # another value under the same salt
        {"salt": "00" * 32},  # the right value with a guessed salt
        {"salt": "zz"},  # not a salt
        {"path": "approval.note"},  # a disclosure shown for another field
    ],
)
def test_a_wrong_disclosure_fails(change: dict[str, str]) -> None:
    body, disclosures = redact_body(body_with([]), ALL)
    approver = next(d for d in disclosures if d.path == "approval.approver")
    checks = verify_document(document(body), disclosures=[msgspec.structs.replace(approver, **change)])
    assert by_name(checks, REVEALED).outcome == "FAIL"
    assert not all_passed(checks)


def test_a_disclosure_of_a_field_that_is_not_redacted_fails() -> None:
    body, _ = redact_body(body_with([]), ["approval.note"])
    fake = Disclosure(path="approval.approver", value="ana@example.com", salt="00" * 32)
    assert by_name(verify_document(document(body), disclosures=[fake]), REVEALED).outcome == "FAIL"


@pytest.mark.parametrize(
    "redacted",
    [
        ["approval.approver"],  # listed, but the value is plain
        ["approval.decided_at"],  # not a redactable field
        ["evidence[7].name"],  # no such evidence
        "approval.approver",  # not a list
        ["approval.note", "approval.note"],
    ],
)
def test_a_bad_redacted_list_fails_even_with_a_correct_hash(redacted: object) -> None:
    body, _ = redact_body(body_with([]), ["approval.note"])
    doc = document(body)
    payload = dict(doc["payload"])  # type: ignore[call-overload]
    payload["redacted"] = redacted
    checks = verify_document(signed(payload, canonicalize(payload)))
    assert by_name(checks, "receipt hash").outcome == "PASS"
    assert by_name(checks, REDACTED).outcome == "FAIL"


def test_opens_compares_in_constant_time_and_refuses_a_malformed_commitment() -> None:
    d = Disclosure(path="approval.note", value="x", salt="11" * 32)
    assert opens(d, commit("x", bytes.fromhex("11" * 32)))
    assert not opens(d, "hmac-sha256:" + "0" * 63)
    assert not opens(d, None)

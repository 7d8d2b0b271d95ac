"""`defendable verify`'s pure core over the transparency log (docs/transparency.md): a share
document's proof against a trusted key set and witness policy, and a whole exported chain.

The log is built in memory as the ledger builds it (`tlog_kit.Log`: MerkleTree, the ledger's
Ed25519 key as the log's note key, `sign_checkpoint`, `build_tlog_proof`, `cosign`). The
exhaustive tests flip every byte of a stored share document, of its proof package and of its
checkpoint's signature lines, one at a time and two ways, and no mutation may verify.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from defendable_canonical.checkpoint import Checkpoint, sign_checkpoint
from defendable_canonical.cosignature import cosign
from defendable_canonical.note import Ed25519Signer
from defendable_canonical.tlog_proof import build_tlog_proof
from defendable_canonical.verification import Check, all_passed, verify_document
from defendable_canonical.verify_export import EXPORT_CHECKS, verify_chain_export
from defendable_canonical.verify_transparency import (
    TRANSPARENCY_CHECKS,
    KeySetError,
    Trust,
    parse_key_set,
    witness_policy,
)

from .tlog_kit import T0, WITNESSES, Log, vkeys

OTHER_SEED = hashlib.sha256(b"another ledger").digest()


@pytest.fixture(scope="module")
def log() -> Log:
    return Log(11)


def outcomes(checks: list[Check]) -> dict[str, str]:
    return {c.name: c.outcome for c in checks}


def by_name(checks: list[Check], name: str) -> Check:
    return next(c for c in checks if c.name == name)


def verify(data: bytes, trust: Trust | None) -> list[Check]:
    return verify_document(msgspec.json.decode(data), trust)


# ---------------------------------------------------------------- one receipt, as shared


def test_a_share_document_verifies_every_transparency_check_against_the_key_set_and_witnesses(log: Log) -> None:
    checks = verify(log.share_document(6), log.trust())
    assert all(c.outcome == "PASS" for c in checks if c.name not in ("chain links", "redacted fields")), checks
    assert all_passed(checks)
    assert [c.name for c in checks][-len(TRANSPARENCY_CHECKS) :] == list(TRANSPARENCY_CHECKS)
    assert by_name(checks, "leaf index").detail == "leaf 6 is the receipt at seq 7"
    assert by_name(checks, "log origin").detail.startswith("defendable.example/log/org_42, the log of org org_42")
    assert "w0.example" in by_name(checks, "witness cosignatures").detail


def test_without_a_trust_root_the_proof_is_checked_against_the_receipts_own_key_and_says_so(log: Log) -> None:
    checks = verify(log.share_document(2), None)
    assert all_passed(checks)
    got = outcomes(checks)
    assert got["signing key known"] == got["log key known"] == got["witness cosignatures"] == "SKIPPED"
    assert got["inclusion proof (RFC 9162)"] == got["checkpoint signature (log key)"] == "PASS"
    assert (
        by_name(checks, "witness cosignatures").detail == "no witness keys configured: 2 cosignature lines not checked"
    )


def test_a_document_without_a_proof_skips_the_transparency_checks(log: Log) -> None:
    checks = verify(log.receipt_document(4), log.trust(quorum=None, cosigners=()))
    for name in TRANSPARENCY_CHECKS:
        assert (by_name(checks, name).outcome, by_name(checks, name).detail) == ("SKIPPED", "no proof in this document")
    assert all_passed(checks)
    assert outcomes(checks)["signing key known"] == "PASS"


def test_a_document_without_a_proof_fails_a_witness_policy(log: Log) -> None:
    checks = verify(log.receipt_document(4), log.trust())
    assert by_name(checks, "witness cosignatures").outcome == "FAIL"
    assert not all_passed(checks)


def test_existing_verification_without_trust_is_unchanged_for_plain_receipts(log: Log) -> None:
    checks = verify_document(msgspec.json.decode(log.receipt_document(0)))
    assert all_passed(checks)
    assert [c.name for c in checks[:4]] == [
        "canonical form (RFC 8785)",
        "receipt hash",
        "receipt schema",
        "signature (Ed25519)",
    ]


def test_a_get_receipts_body_verifies_its_links_are_urls_not_chain_links(log: Log) -> None:
    doc = msgspec.json.decode(log.receipt_document(0))
    doc["links"] = {
        "share": "https://x.example/share/t",
        "pdf": "https://x.example/r.pdf",
        "json": "https://x.example/r",
    }
    checks = verify_document(doc)
    assert all_passed(checks), checks
    assert by_name(checks, "chain links").outcome == "SKIPPED"
    doc["links"] = "not links"
    assert by_name(verify_document(doc), "chain links").outcome == "FAIL"


@pytest.mark.parametrize(
    ("quorum", "cosigners", "outcome"),
    [
        (None, WITNESSES[:2], "PASS"),  # both pinned witnesses cosigned
        (1, WITNESSES, "PASS"),  # 1 of 3 pinned: two cosigned
        (2, WITNESSES, "PASS"),
        (3, WITNESSES, "FAIL"),  # w2 never cosigned
        (None, WITNESSES[2:], "FAIL"),  # the one pinned witness did not cosign
    ],
)
def test_witness_cosignatures_against_a_k_of_n_policy(
    log: Log, quorum: int | None, cosigners: list[Any], outcome: str
) -> None:
    checks = verify(log.share_document(5), log.trust(quorum, cosigners))
    assert by_name(checks, "witness cosignatures").outcome == outcome
    assert all_passed(checks) == (outcome == "PASS")
    if outcome == "FAIL":
        assert "missing: w2.example" in by_name(checks, "witness cosignatures").detail


def test_a_cosignature_dated_after_now_fails(log: Log) -> None:
    trust = log.trust()
    early = Trust(keys=trust.keys, witnesses=trust.witnesses, now=T0)  # w1 signed at T0 + 1
    assert by_name(verify(log.share_document(5), early), "witness cosignatures").outcome == "FAIL"


def test_a_forged_cosignature_by_a_pinned_witness_fails(log: Log) -> None:
    impostor = type(WITNESSES[0]).from_seed("w0.example", hashlib.sha256(b"impostor").digest())
    note = cosign(log.checkpoint(11, cosigners=WITNESSES[1:2]), impostor, T0)
    doc = log.share_document(3, proof=log.proof(3, checkpoint=note))
    checks = verify(doc, log.trust())
    assert by_name(checks, "witness cosignatures").outcome == "FAIL"  # wrong key id: ignored, so 1 of 2


def test_a_proof_for_another_leaf_fails_the_leaf_index_and_the_inclusion(log: Log) -> None:
    receipt = log.receipts[3].receipt_hash
    proof = build_tlog_proof(receipt, 4, log.tree.inclusion_proof(4, 11), log.checkpoint(11))
    data = log.share_document(3, proof=proof).replace(b'"leaf_index":3', b'"leaf_index":4')
    got = outcomes(verify(data, log.trust()))
    assert got["leaf index"] == got["inclusion proof (RFC 9162)"] == "FAIL"


def test_a_proof_of_another_receipt_fails(log: Log) -> None:
    data = log.share_document(3, proof=log.proof(4)).replace(b'"leaf_index":3', b'"leaf_index":4')
    checks = verify(data, log.trust())
    assert by_name(checks, "proof package (C2SP tlog-proof)").outcome == "FAIL"
    assert not all_passed(checks)


def test_the_document_must_agree_with_its_proof_on_origin_index_and_size(log: Log) -> None:
    for old, new in [(b'"tree_size":11', b'"tree_size":12'), (b'log/org_42",', b'log/org_43",')]:
        data = log.share_document(3).replace(old, new, 1)
        assert data != log.share_document(3)
        assert by_name(verify(data, log.trust()), "proof package (C2SP tlog-proof)").outcome == "FAIL"


def test_a_key_set_without_the_ledger_key_fails_the_signing_and_log_keys(log: Log) -> None:
    stranger = Log(1, seed=OTHER_SEED)
    trust = Trust(keys=parse_key_set(stranger.key_set()), source="a stranger's keys")
    got = outcomes(verify(log.share_document(1), trust))
    assert got["signing key known"] == got["log key known"] == got["checkpoint signature (log key)"] == "FAIL"


def test_a_log_of_another_origin_prefix_fails_the_origin(log: Log) -> None:
    elsewhere = Log(11, prefix="evil.example/log")
    trust = Trust(keys=parse_key_set(log.key_set()), source="the real key set")
    checks = verify(elsewhere.share_document(1), trust)
    assert by_name(checks, "log origin").outcome == "FAIL"


def test_after_a_key_rotation_the_key_set_names_both_keys_and_the_proof_verifies(log: Log) -> None:
    new = Ed25519Signer.from_seed(log.origin, OTHER_SEED)
    note = sign_checkpoint(Checkpoint(log.origin, 11, log.tree.root()), new, previous=None)
    doc = log.share_document(2, proof=log.proof(2, checkpoint=note))
    keys = Log(1, seed=OTHER_SEED).key_set(extra=[log.log.public_key])
    trust = Trust(keys=parse_key_set(keys), source="the rotated key set")
    checks = verify(doc, trust)
    assert all_passed(checks), checks
    assert "(retired)" in by_name(checks, "signing key known").detail
    assert "(active)" in by_name(checks, "log key known").detail
    # without the key set the receipt's own (old) key is all there is, and it did not sign the checkpoint
    assert by_name(verify(doc, None), "checkpoint signature (log key)").outcome == "FAIL"


def test_a_malformed_key_set_is_refused() -> None:
    for bad in [b"{}", b'{"keys": []}', b'{"keys": [{"kid": "00", "public_key": "AAAA"}]}', b"[1]"]:
        with pytest.raises(KeySetError):
            parse_key_set(bad)


def test_a_witness_policy_needs_keys_of_cosigner_type_and_a_possible_quorum() -> None:
    assert witness_policy([]) is None
    assert witness_policy(vkeys(WITNESSES), 2) is not None
    for args in [(vkeys(WITNESSES), 4), (vkeys(WITNESSES), 0), ([], 1), (["not+a+key"], None)]:
        with pytest.raises(ValueError):
            witness_policy(*args)
    log_key = Log(1).log.verifier().vkey  # an Ed25519 note key (0x01), not a cosigner (0x04)
    with pytest.raises(ValueError):
        witness_policy([log_key])


# ---------------------------------------------------------------- every single-byte change fails


def mutations(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
    """Each byte in [start, end) changed two ways: XOR 0x01, and to another printable character."""
    for i in range(start, len(data) if end is None else end):
        b = data[i]
        other = 33 + (b - 33 + 1 + i % 93) % 94  # printable, never b itself
        for new in (b ^ 0x01, other):
            yield i, data[:i] + bytes([new]) + data[i + 1 :]


def refuses(data: bytes, trust: Trust) -> bool:
    """True when the document is unusable (not JSON) or some check fails."""
    try:
        doc = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return True
    return not all_passed(verify_document(doc, trust))


def test_every_single_byte_change_to_a_stored_share_document_fails(log: Log) -> None:
    data, trust = log.share_document(6), log.trust()
    assert not refuses(data, trust)
    passed = [i for i, mutated in mutations(data) if not refuses(mutated, trust)]
    assert passed == [], [data[i - 20 : i + 20] for i in passed]


def proof_regions(proof: bytes) -> dict[str, tuple[int, int]]:
    """Byte ranges of a tlog-proof: its header and hashes, the checkpoint text, each signature line."""
    split = proof.index(b"\n\n") + 2
    text_end = proof.index(b"\n\n", split) + 2
    regions = {"proof lines": (0, split), "checkpoint text": (split, text_end)}
    at = text_end
    for line in proof[text_end:].splitlines(keepends=True):
        name = line.split(b" ")[1].decode()
        regions[f"signature line of {name}"] = (at, at + len(line))
        at += len(line)
    return regions


def test_the_regions_cover_the_whole_proof(log: Log) -> None:
    proof = log.proof(6)
    regions = proof_regions(proof)
    assert sorted(regions) == sorted(
        ["proof lines", "checkpoint text", f"signature line of {log.origin}"]
        + [f"signature line of {w.name}" for w in WITNESSES[:2]]
    )
    assert sum(end - start for start, end in regions.values()) == len(proof)


@pytest.mark.parametrize(
    "region",
    ["proof lines", "checkpoint text", "signature line of log", "signature line of w0", "signature line of w1"],
)
def test_every_single_byte_change_to_the_proof_package_fails(log: Log, region: str) -> None:
    """The proof as `proof.tlog` holds it (raw bytes, not JSON-escaped), put into the document as
    the package verifier does; the checkpoint and each signature line on its own."""
    proof, trust = log.proof(6), log.trust()
    names = {"log": log.origin, "w0": "w0.example", "w1": "w1.example"}
    key = region if not region.startswith("signature") else f"signature line of {names[region.split()[-1]]}"
    start, end = proof_regions(proof)[key]
    doc: dict[str, Any] = msgspec.json.decode(log.receipt_document(6))

    def with_proof(p: bytes) -> dict[str, Any]:
        return doc | {
            "transparency": {
                "origin": log.origin,
                "leaf_index": 6,
                "tree_size": 11,
                "proof": p.decode(errors="surrogateescape"),
            }
        }

    assert all_passed(verify_document(with_proof(proof), trust))
    passed = [i for i, p in mutations(proof, start, end) if all_passed(verify_document(with_proof(p), trust))]
    assert passed == [], [proof[i - 20 : i + 20] for i in passed]


def test_every_single_byte_change_to_the_key_sets_kid_or_key_is_refused_or_fails(log: Log) -> None:
    """The trust root itself: a changed kid or public key either does not parse or no longer vouches."""
    keys, data = log.key_set(prefix=False), log.share_document(6)
    public = log.signatures[0].public_key.encode()
    for value in (log.signatures[0].kid.encode(), public):
        start = keys.index(b'"%s"' % value) + 1
        for _, mutated in mutations(keys, start, start + len(value)):
            try:
                trust = Trust(keys=parse_key_set(mutated), source="mutated")
            except KeySetError:
                continue
            assert not all_passed(verify(data, trust))


# ---------------------------------------------------------------- a whole exported chain


def test_an_exported_chain_verifies_every_check(log: Log) -> None:
    checks = verify_chain_export(log.export([1, 4, 8, 11]), log.trust(), witnessed=log.checkpoint(11))
    assert [c.name for c in checks] == list(EXPORT_CHECKS)
    assert all(c.outcome == "PASS" for c in checks), checks


def test_an_export_without_trust_or_witnessed_checkpoint_says_what_it_could_not_check(log: Log) -> None:
    checks = verify_chain_export(log.export([4, 11]))
    assert all_passed(checks)
    got = outcomes(checks)
    assert got["signing keys known"] == got["log key known"] == got["witness cosignatures"] == "SKIPPED"
    assert by_name(checks, "witnessed checkpoint (truncation)").detail.startswith("no witnessed checkpoint given")


def test_an_export_shorter_than_a_witnessed_checkpoint_fails_as_a_deleted_tail(log: Log) -> None:
    checks = verify_chain_export(log.export([4, 8], receipts=8), log.trust(), witnessed=log.checkpoint(11))
    truncation = by_name(checks, "witnessed checkpoint (truncation)")
    assert truncation.outcome == "FAIL" and truncation.detail.startswith("tail deleted or history rewritten")
    assert "size 11" in truncation.detail and "8 receipts" in truncation.detail


def test_an_export_with_another_history_fails_at_the_witnessed_size(log: Log) -> None:
    rewritten = Log(11, org_id="org_42", evidence={"x.txt": b"other history"})  # same org and key, other receipts
    checks = verify_chain_export(rewritten.export([11]), rewritten.trust(), witnessed=log.checkpoint(8))
    truncation = by_name(checks, "witnessed checkpoint (truncation)")
    assert truncation.outcome == "FAIL" and "at size 8 the export's root is" in truncation.detail
    assert by_name(checks, "Merkle roots").outcome == "PASS"  # its own checkpoints match: only the witness tells


def test_an_export_whose_checkpoint_is_larger_than_its_receipts_fails(log: Log) -> None:
    checks = verify_chain_export(log.export([4, 11], receipts=9), log.trust())
    assert by_name(checks, "Merkle roots").outcome == "FAIL"


def test_an_export_with_a_checkpoint_of_another_root_fails(log: Log) -> None:
    lines = log.export([4, 11])
    forged = Log(11, evidence={"y": b"y"})  # same key: the signature verifies, the root is not of these leaves
    lines[-1] = forged.export([11])[-1]
    checks = verify_chain_export(lines, log.trust())
    assert by_name(checks, "Merkle roots").outcome == "FAIL"
    assert by_name(checks, "checkpoint signatures (log key)").outcome == "PASS"


def test_an_export_with_a_changed_receipt_fails_its_chain_and_roots(log: Log) -> None:
    lines = log.export([11])
    lines[5] = lines[5].replace(b'"score":"66.67"', b'"score":"99.99"')
    got = outcomes(verify_chain_export(lines, log.trust()))
    assert got["receipts (hash, canonical form, parent links)"] == "FAIL"
    assert got["Merkle roots"] == "FAIL"


def test_an_export_with_a_removed_receipt_fails(log: Log) -> None:
    lines = log.export([11])
    del lines[3]
    got = outcomes(verify_chain_export(lines, log.trust()))
    assert got["receipts (hash, canonical form, parent links)"] == "FAIL"


def test_an_export_with_a_forged_signature_or_checkpoint_signature_fails(log: Log) -> None:
    stranger = Log(11, seed=OTHER_SEED)
    lines = log.export([11])
    lines[2] = stranger.export([11])[2]  # another key's receipt 3: other signature, same payload bytes
    assert outcomes(verify_chain_export(lines, log.trust()))["signing keys known"] == "FAIL"
    lines = log.export([4]) + stranger.export([11])[-1:]
    assert outcomes(verify_chain_export(lines, log.trust()))["checkpoint signatures (log key)"] == "FAIL"


def test_an_export_with_a_signature_moved_from_another_receipt_fails(log: Log) -> None:
    lines = log.export([11])
    lines[5] = lines[5].replace(log.signatures[5].sig.encode(), log.signatures[4].sig.encode())
    checks = verify_chain_export(lines, log.trust())
    signatures = by_name(checks, "receipt signatures (Ed25519)")
    assert signatures.outcome == "FAIL" and signatures.detail.startswith("seq 6: Ed25519 signature")


def test_an_export_with_checkpoints_out_of_order_fails_consistency(log: Log) -> None:
    lines = log.export([8, 4, 11])
    assert outcomes(verify_chain_export(lines, log.trust()))["checkpoint consistency"] == "FAIL"


def test_an_export_cut_short_by_the_server_or_malformed_fails_its_format(log: Log) -> None:
    for tail in [b'{"error":"the ledger did not answer"}\n', b"not json\n", b'{"seq":12}\n']:
        checks = verify_chain_export([*log.export([11]), tail], log.trust())
        assert by_name(checks, "export format").outcome == "FAIL"
    assert by_name(verify_chain_export([]), "export format").outcome == "FAIL"


def test_a_witnessed_checkpoint_must_be_the_logs_and_meet_the_policy(log: Log) -> None:
    stranger = Log(11, seed=OTHER_SEED)
    checks = verify_chain_export(log.export([11]), log.trust(), witnessed=stranger.checkpoint(11))
    assert by_name(checks, "witnessed checkpoint (truncation)").outcome == "FAIL"
    lonely = log.checkpoint(11, cosigners=WITNESSES[:1])
    checks = verify_chain_export(log.export([11]), log.trust(), witnessed=lonely)
    assert by_name(checks, "witness cosignatures").outcome == "FAIL"
    assert by_name(checks, "witnessed checkpoint (truncation)").outcome == "PASS"

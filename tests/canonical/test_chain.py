"""Chain verification from stored bytes: every break is named by seq with a factual reason."""

from __future__ import annotations

import re

import msgspec
import pytest

from defendable_canonical.chain import ChainReport, ChainVerifier, verify_chain, verify_links
from defendable_canonical.digest import GENESIS_HASH, sha256_digest
from defendable_canonical.model import ChainLink, StoredReceipt
from defendable_canonical.perf import sample_chain, typical_body, typical_payload
from defendable_canonical.receipt import build_payload, decode_payload, payload_bytes, receipt_hash


@pytest.fixture(scope="module")
def chain50() -> list[StoredReceipt]:
    return sample_chain(50)


def restored(receipt: StoredReceipt, payload: bytes) -> StoredReceipt:
    """The same receipt with different stored payload bytes, re-hashed so only the payload is at fault."""
    return msgspec.structs.replace(receipt, payload=msgspec.Raw(payload), receipt_hash=sha256_digest(payload))


def both_modes(receipts: list[StoredReceipt]) -> list[str | None]:
    reports = [verify_chain(receipts, strict_canonical=s) for s in (True, False)]
    return [r.first_bad.reason if r.first_bad else None for r in reports]


# ---------------------------------------------------------------- receipts


def test_payload_hash_is_sha256_of_exactly_the_canonical_bytes() -> None:
    payload = build_payload(typical_body(1), 1, GENESIS_HASH, "2026-01-02T03:04:06Z")
    data = payload_bytes(payload)
    assert receipt_hash(data) == sha256_digest(data)
    assert decode_payload(data) == payload
    assert data.startswith(b'{"agent_profile":')


def test_payload_carries_every_body_field_and_the_chain_fields() -> None:
    body = typical_body(3)
    payload = build_payload(body, 9, "sha256:" + "a" * 64, "2026-01-02T03:04:06Z")
    for field in msgspec.structs.fields(body):
        assert getattr(payload, field.name) == getattr(body, field.name)
    assert (payload.seq, payload.parent_hash, payload.minted_at) == (9, "sha256:" + "a" * 64, "2026-01-02T03:04:06Z")


# ---------------------------------------------------------------- good chains


def test_empty_chain_is_ok_with_no_head() -> None:
    assert verify_chain([]) == verify_chain([], strict_canonical=False)
    report = verify_chain([])
    assert (report.ok, report.length, report.head, report.first_bad) == (True, 0, None, None)


def test_genesis_receipt_links_to_the_zero_hash() -> None:
    [genesis] = sample_chain(1)
    assert genesis.parent_hash == GENESIS_HASH
    report = verify_chain([genesis])
    assert report.ok and report.head == genesis.receipt_hash


def test_good_chain_of_50_verifies_in_both_modes(chain50: list[StoredReceipt]) -> None:
    for strict in (True, False):
        report = verify_chain(chain50, strict_canonical=strict)
        assert (report.ok, report.length, report.head) == (True, 50, chain50[-1].receipt_hash)


# ---------------------------------------------------------------- broken chains


def test_tampered_payload_is_named_by_seq(chain50: list[StoredReceipt]) -> None:
    bad = bytearray(chain50[16].payload)
    bad[bad.index(b"checkout")] = ord("C")
    receipts = [*chain50[:16], msgspec.structs.replace(chain50[16], payload=msgspec.Raw(bytes(bad))), *chain50[17:]]
    report = verify_chain(receipts)
    assert not report.ok and report.first_bad is not None
    assert report.first_bad.seq == 17
    assert report.first_bad.reason.startswith("seq 17: payload hashes to sha256:")
    assert f"but is recorded as {chain50[16].receipt_hash[:19]}.." in report.first_bad.reason
    assert report.head == chain50[15].receipt_hash  # the last receipt that verified
    assert both_modes(receipts)[0] == both_modes(receipts)[1]


def test_tampered_payload_rehashed_breaks_the_next_parent_link(chain50: list[StoredReceipt]) -> None:
    payload = decode_payload(bytes(chain50[9].payload))
    forged = payload_bytes(msgspec.structs.replace(payload, project="forged"))
    receipts = [*chain50[:9], restored(chain50[9], forged), *chain50[10:]]
    reason = verify_chain(receipts).first_bad
    assert reason is not None and reason.seq == 11
    assert reason.reason.startswith(f"seq 11: parent_hash is {chain50[9].receipt_hash[:19]}.. but seq 10 is")


def test_swapped_receipts_are_named_by_the_first_out_of_place(chain50: list[StoredReceipt]) -> None:
    receipts = [*chain50[:4], chain50[5], chain50[4], *chain50[6:]]
    for reason in both_modes(receipts):
        assert reason == "seq 6: expected seq 5 here, after seq 4"


def test_gap_in_seq_is_named(chain50: list[StoredReceipt]) -> None:
    receipts = [*chain50[:29], *chain50[30:]]
    report = verify_chain(receipts)
    assert report.first_bad is not None and report.first_bad.seq == 31
    assert report.first_bad.reason == "seq 31: expected seq 30 here, after seq 29"
    assert report.length == 49


def test_chain_not_starting_at_seq_1_is_refused(chain50: list[StoredReceipt]) -> None:
    assert both_modes(chain50[1:]) == ["seq 2: expected seq 1 here, after seq 0"] * 2


def test_fork_two_receipts_with_the_same_parent_is_named(chain50: list[StoredReceipt]) -> None:
    # seq 3 rebuilt on seq 1 instead of seq 2: same parent as seq 2, a fork.
    body = typical_body(99)
    fork_payload = payload_bytes(build_payload(body, 3, chain50[0].receipt_hash, "2026-01-02T03:04:06Z"))
    fork = StoredReceipt(
        seq=3,
        receipt_hash=receipt_hash(fork_payload),
        parent_hash=chain50[0].receipt_hash,
        payload=msgspec.Raw(fork_payload),
    )
    report = verify_chain([*chain50[:2], fork])
    assert report.first_bad is not None and report.first_bad.seq == 3
    reason = report.first_bad.reason
    assert reason.startswith(f"seq 3: parent_hash is {chain50[0].receipt_hash[:19]}.. but seq 2 is")
    assert reason.endswith("(it forks from seq 1)")


def test_payload_seq_disagreeing_with_stored_seq_is_named(chain50: list[StoredReceipt]) -> None:
    payload = decode_payload(bytes(chain50[2].payload))
    lying = payload_bytes(msgspec.structs.replace(payload, seq=4))
    assert both_modes([*chain50[:2], restored(chain50[2], lying)]) == ["seq 3: payload says seq 4"] * 2


def test_receipt_from_another_org_is_named(chain50: list[StoredReceipt]) -> None:
    payload = decode_payload(bytes(chain50[3].payload))
    other = payload_bytes(msgspec.structs.replace(payload, org_id="org_other"))
    for reason in both_modes([*chain50[:3], restored(chain50[3], other)]):
        assert reason == "seq 4: org_id is 'org_other' but seq 1 belongs to 'org_bench'"


def test_non_canonical_payload_bytes_are_named_in_strict_mode_only(chain50: list[StoredReceipt]) -> None:
    pretty = msgspec.json.format(bytes(chain50[4].payload), indent=1)  # same value, not canonical
    receipts = [*chain50[:4], restored(chain50[4], pretty)]
    strict, lax = both_modes(receipts)
    assert strict == "seq 5: payload bytes are not RFC 8785 canonical (first difference at byte 1)"
    assert lax is None


def test_duplicate_keys_in_payload_are_named_in_strict_mode(chain50: list[StoredReceipt]) -> None:
    data = bytes(chain50[0].payload)
    doubled = data[:-1] + b',"seq":1}'
    [strict, _] = both_modes([restored(chain50[0], doubled)])
    assert strict is not None and strict.startswith("seq 1: payload is not canonical JSON: duplicate object key 'seq'")


def test_payload_that_is_not_a_receipt_is_named(chain50: list[StoredReceipt]) -> None:
    for reason in both_modes([restored(chain50[0], b'{"hello":"world"}')]):
        assert reason is not None and reason.startswith("seq 1: payload is not a receipt payload: Object missing")


def test_canonical_payload_with_an_unknown_field_still_verifies_strictly(chain50: list[StoredReceipt]) -> None:
    # Schemas evolve by adding fields: a newer payload must not read as non-canonical here.
    value = msgspec.json.decode(bytes(chain50[0].payload))
    value["zz_new_field"] = "added later"
    from defendable_canonical.jcs import canonicalize

    newer = canonicalize(value)
    assert verify_chain([restored(chain50[0], newer)]).ok


# ---------------------------------------------------------------- share links


def links_of(receipts: list[StoredReceipt]) -> list[ChainLink]:
    return [ChainLink(seq=r.seq, receipt_hash=r.receipt_hash, parent_hash=r.parent_hash) for r in receipts]


def test_share_links_from_genesis_to_the_receipt_verify(chain50: list[StoredReceipt]) -> None:
    assert verify_links(links_of(chain50[:10]), chain50[9].receipt_hash) is None


def test_share_links_ending_elsewhere_are_refused(chain50: list[StoredReceipt]) -> None:
    bad = verify_links(links_of(chain50[:10]), chain50[10].receipt_hash)
    assert bad is not None and bad.seq == 10 and "path ends at" in bad.reason


def test_share_links_with_a_gap_or_wrong_parent_are_refused(chain50: list[StoredReceipt]) -> None:
    gap = verify_links(links_of([*chain50[:3], *chain50[4:8]]), chain50[7].receipt_hash)
    assert gap is not None and gap.reason == "seq 5: expected seq 4 here, after seq 3"
    links = links_of(chain50[:5])
    links[2] = ChainLink(seq=3, receipt_hash=links[2].receipt_hash, parent_hash=links[0].receipt_hash)
    wrong = verify_links(links, links[4].receipt_hash)
    assert wrong is not None and wrong.seq == 3 and wrong.reason.startswith("seq 3: parent_hash is")


def test_empty_share_links_are_refused() -> None:
    bad = verify_links([], typical_payload().parent_hash)
    assert bad is not None and bad.reason.startswith("no links")


def test_payload_with_an_integer_beyond_ijson_is_named_in_strict_mode(chain50: list[StoredReceipt]) -> None:
    data = re.sub(rb'"size":[0-9]+', b'"size":9007199254740993', bytes(chain50[0].payload), count=1)
    [strict, lax] = both_modes([restored(chain50[0], data)])
    assert strict is not None and "9007199254740993 is outside" in strict
    assert lax is None


# ---------------------------------------------------------------- incremental verification


def fed_in_chunks(receipts: list[StoredReceipt], size: int, *, strict: bool = True) -> ChainReport:
    verifier = ChainVerifier(strict_canonical=strict)
    for start in range(0, len(receipts), size):
        verifier.feed(receipts[start : start + size])
    return verifier.report()


def broken_variants(chain: list[StoredReceipt]) -> dict[str, list[StoredReceipt]]:
    """One break of each kind, placed on and around chunk boundaries (chunk sizes 1, 7, 10, 25)."""
    other = payload_bytes(msgspec.structs.replace(decode_payload(bytes(chain[10].payload)), org_id="org_other"))
    tampered = bytearray(chain[20].payload)
    tampered[tampered.index(b"checkout")] = ord("C")
    fork_payload = payload_bytes(build_payload(typical_body(99), 22, chain[19].receipt_hash, "2026-01-02T03:04:06Z"))
    fork = StoredReceipt(
        seq=22, receipt_hash=receipt_hash(fork_payload), parent_hash=chain[19].receipt_hash,
        payload=msgspec.Raw(fork_payload),
    )  # fmt: skip
    pretty = msgspec.json.format(bytes(chain[6].payload), indent=1)
    return {
        "good": chain,
        "empty": [],
        "other org at seq 11": [*chain[:10], restored(chain[10], other), *chain[11:]],
        "tampered seq 21": [*chain[:20], msgspec.structs.replace(chain[20], payload=msgspec.Raw(bytes(tampered)))],
        "fork at seq 22": [*chain[:21], fork, *chain[22:]],
        "gap after seq 25": [*chain[:25], *chain[26:]],
        "non-canonical seq 7": [*chain[:6], restored(chain[6], pretty), *chain[7:]],
        "not starting at 1": chain[1:],
    }


@pytest.mark.parametrize("size", [1, 7, 10, 25, 50])
def test_feeding_chunks_reports_exactly_what_verify_chain_reports(chain50: list[StoredReceipt], size: int) -> None:
    for name, receipts in broken_variants(chain50).items():
        for strict in (True, False):
            assert fed_in_chunks(receipts, size, strict=strict) == verify_chain(receipts, strict_canonical=strict), name


def test_a_bad_link_at_a_chunk_boundary_is_named_and_later_chunks_are_only_counted(
    chain50: list[StoredReceipt],
) -> None:
    receipts = broken_variants(chain50)["fork at seq 22"]
    verifier = ChainVerifier()
    assert verifier.feed(receipts[:21]) is None  # seq 22, the fork, opens the next chunk
    bad = verifier.feed(receipts[21:30])
    assert bad is not None and bad.seq == 22 and bad.reason.endswith("(it forks from seq 20)")
    assert verifier.feed(receipts[30:]) == bad
    report = verifier.report()
    assert (report.ok, report.length, report.head, report.first_bad) == (False, 50, chain50[20].receipt_hash, bad)


def test_chains_longer_than_one_batch_verify_and_name_breaks_in_later_batches() -> None:
    chain = sample_chain(2100)
    assert verify_chain(chain).head == chain[-1].receipt_hash
    assert verify_chain(chain, strict_canonical=False).ok
    for index in (1023, 1024, 2099):  # last of a batch, first of the next, very last
        payload = decode_payload(bytes(chain[index].payload))
        lying = restored(chain[index], payload_bytes(msgspec.structs.replace(payload, seq=index + 5)))
        receipts = [*chain[:index], lying, *chain[index + 1 :]]
        for strict in (True, False):
            report = verify_chain(receipts, strict_canonical=strict)
            assert report.first_bad is not None
            assert report.first_bad.reason == f"seq {index + 1}: payload says seq {index + 5}"
            assert (report.length, report.head) == (2100, chain[index - 1].receipt_hash)
    fork = [*chain[:1500], msgspec.structs.replace(chain[1500], parent_hash=chain[3].receipt_hash), *chain[1501:]]
    report = verify_chain(fork, strict_canonical=False)
    assert report.first_bad is not None and report.first_bad.reason.endswith("(it forks from seq 4)")

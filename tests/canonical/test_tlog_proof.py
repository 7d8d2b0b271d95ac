"""A share link's self-contained proof (C2SP tlog-proof): a receipt, its inclusion proof and the
cosigned checkpoint, verified offline against the log's key and a k-of-n witness policy.

Vectors and references:
- C2SP tlog-proof.md (C2SP/C2SP@0065ea5): the example's proof lines (its signatures are
  elided with "[...]" in the spec, so a checkpoint of ours stands in for its note).
- transparency-dev/merkle proof/tlog_proof.go and tlog_proof_test.go (@0db3ecd): the layout its
  builder writes, and the malformed packages its verifier refuses.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

import pytest

from defendable_canonical.checkpoint import Checkpoint, sign_checkpoint
from defendable_canonical.cosignature import CosignatureSigner, CosignatureVerifier, cosign
from defendable_canonical.digest import sha256_digest
from defendable_canonical.merkle import MerkleTree, receipt_leaf_hash
from defendable_canonical.model import StoredReceipt
from defendable_canonical.note import Ed25519Signer, Ed25519Verifier, Note, Verifier, format_note, parse_note
from defendable_canonical.perf import sample_chain
from defendable_canonical.tlog_proof import (
    HEADER,
    TlogProof,
    TlogProofError,
    WitnessPolicy,
    build_tlog_proof,
    format_tlog_proof,
    parse_tlog_proof,
    verify_tlog_proof,
)

ORIGIN = "defendable.example/org/42"
LOG = Ed25519Signer.from_seed(ORIGIN, hashlib.sha256(b"log").digest())
WITNESSES = [CosignatureSigner.from_seed(f"w{i}.example", hashlib.sha256(b"w%d" % i).digest()) for i in range(3)]
T0 = 1_700_000_000


class Ledger:
    """What the ledger will do per org, in memory: receipts → leaves → cosigned checkpoints."""

    def __init__(self, n: int) -> None:
        self.receipts: list[StoredReceipt] = sample_chain(n, org_id="org_42")
        self.tree = MerkleTree(receipt_leaf_hash(r.receipt_hash) for r in self.receipts)

    def checkpoint(self, size: int, cosigners: Sequence[CosignatureSigner] = WITNESSES[:2]) -> bytes:
        note = sign_checkpoint(Checkpoint(ORIGIN, size, self.tree.root(size)), LOG, previous=None)
        for i, witness in enumerate(cosigners):
            note = cosign(note, witness, T0 + i)
        return note

    def share(self, index: int, size: int, checkpoint: bytes | None = None) -> bytes:
        return build_tlog_proof(
            self.receipts[index].receipt_hash,
            index,
            self.tree.inclusion_proof(index, size),
            checkpoint or self.checkpoint(size),
        )


def policy(quorum: int = 2, cosigners: Sequence[CosignatureSigner] = WITNESSES) -> WitnessPolicy:
    return WitnessPolicy(tuple(w.verifier() for w in cosigners), quorum)


def recomputed_hash(receipt: StoredReceipt) -> str:
    """What a verifier of a share link does first: hash the receipt bytes it was given."""
    return sha256_digest(bytes(receipt.payload))


def test_a_share_link_proof_verifies_offline_and_names_its_witnesses() -> None:
    ledger = Ledger(11)
    package = ledger.share(6, 11)
    proven = verify_tlog_proof(
        package, receipt_hash=recomputed_hash(ledger.receipts[6]), origin=ORIGIN, log=LOG.verifier(), witnesses=policy()
    )
    assert (proven.index, proven.checkpoint.size, proven.checkpoint.root_hash) == (6, 11, ledger.tree.root())
    assert [(c.name, c.timestamp) for c in proven.cosigned] == [("w0.example", T0), ("w1.example", T0 + 1)]
    assert package.startswith(b"c2sp.org/tlog-proof@v1\nextra ")


def test_the_layout_is_the_one_transparency_dev_writes() -> None:
    """buildTLogProof in proof/tlog_proof.go, transcribed."""
    ledger = Ledger(5)
    hashes, checkpoint = ledger.tree.inclusion_proof(2, 5), ledger.checkpoint(5)
    extra = bytes.fromhex(ledger.receipts[2].receipt_hash[7:])
    want = b"c2sp.org/tlog-proof@v1\n" + b"extra " + base64.b64encode(extra) + b"\n" + b"index 2\n"
    want += b"".join(base64.b64encode(h) + b"\n" for h in hashes) + b"\n" + checkpoint
    assert ledger.share(2, 5, checkpoint) == want
    assert format_tlog_proof(TlogProof(2, tuple(hashes), checkpoint)) == want.replace(
        b"extra " + base64.b64encode(extra) + b"\n", b""
    )


def test_the_c2sp_examples_proof_lines_parse() -> None:
    spec_lines = (
        b"c2sp.org/tlog-proof@v1\n"
        b"extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ\n"
        b"index 73894\n"
        b"gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=\n"
        b"B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=\n"
        b"EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=\n"
        b"RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=\n"
        b"AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=\n"
        b"\n"
    )
    data = spec_lines + Ledger(1).checkpoint(1)
    parsed = parse_tlog_proof(data)
    assert parsed.index == 73894 and len(parsed.hashes) == 5
    assert parsed.extra is not None and parsed.extra.startswith(b"age-v1.2.1-darwin-arm64.tar.gz")
    assert format_tlog_proof(parsed) == data


@pytest.mark.parametrize(
    "head",
    [
        # TestVerifyTLogProofErrors in tlog_proof_test.go
        b"wrong-header\nindex 0\n\n",
        b"c2sp.org/tlog-proof@v1\nextra !!notbase64!!\nindex 0\n\n",
        b"c2sp.org/tlog-proof@v1\n\n\n",
        b"c2sp.org/tlog-proof@v1\nindex notanumber\n\n",
        b"c2sp.org/tlog-proof@v1\nindex -5\n\n",
        b"c2sp.org/tlog-proof@v1\nindex 0\n!!notbase64!!\n\n",
        b"c2sp.org/tlog-proof@v1\nindex 0\n" + base64.b64encode(bytes(64)) + b"\n\n",
        # and ours
        b"c2sp.org/tlog-proof@v1\nindex 05\n\n",
        b"c2sp.org/tlog-proof@v1\nindex 5 \n\n",
        b"c2sp.org/tlog-proof@v1\nindex 9223372036854775807\n\n",
        b"c2sp.org/tlog-proof@v1\nextra \nindex 0\n\n",
        b"c2sp.org/tlog-proof@v1\nindex 0\nextra AA==\n\n",
        b"c2sp.org/tlog-proof@v1\r\nindex 0\n\n",
        b"c2sp.org/tlog-proof@v1\nindex 0\n" + (base64.b64encode(bytes(32)) + b"\n") * 65 + b"\n",
        b"c2sp.org/tlog-proof@v1\nindex 0\n" + base64.b64encode(bytes(32)).replace(b"A=", b"B=") + b"\n\n",
    ],
)
def test_malformed_packages_are_refused(head: bytes) -> None:
    with pytest.raises(TlogProofError):
        parse_tlog_proof(head + Ledger(1).checkpoint(1))


def test_a_package_without_a_readable_checkpoint_is_refused() -> None:
    for checkpoint in [b"", b"test checkpoint\n", Ledger(1).checkpoint(1)[:-1]]:
        with pytest.raises(TlogProofError):
            parse_tlog_proof(HEADER.encode() + b"\nindex 0\n\n" + checkpoint)


# ---------------------------------------------------------------- what it must refuse


def verify(package: bytes, receipt_hash: str, witnesses: WitnessPolicy | None, log: Verifier | None = None) -> None:
    verify_tlog_proof(package, receipt_hash=receipt_hash, origin=ORIGIN, log=log or LOG.verifier(), witnesses=witnesses)


def test_a_proof_for_size_n_against_a_checkpoint_of_size_m_fails() -> None:
    ledger = Ledger(16)
    for n, m in [(7, 8), (8, 7), (7, 16), (16, 9)]:
        package = build_tlog_proof(
            ledger.receipts[3].receipt_hash, 3, ledger.tree.inclusion_proof(3, n), ledger.checkpoint(m)
        )
        with pytest.raises(TlogProofError, match="inclusion proof for leaf 3"):
            verify(package, ledger.receipts[3].receipt_hash, policy())


def test_another_receipt_or_another_index_fails() -> None:
    ledger = Ledger(8)
    package = ledger.share(4, 8)
    with pytest.raises(TlogProofError, match="is for receipt"):
        verify(package, ledger.receipts[5].receipt_hash, policy())
    anonymous = format_tlog_proof(TlogProof(4, tuple(ledger.tree.inclusion_proof(4, 8)), ledger.checkpoint(8)))
    verify(anonymous, ledger.receipts[4].receipt_hash, policy())
    with pytest.raises(TlogProofError, match="inclusion proof"):
        verify(anonymous, ledger.receipts[5].receipt_hash, policy())
    moved = format_tlog_proof(TlogProof(5, tuple(ledger.tree.inclusion_proof(4, 8)), ledger.checkpoint(8)))
    with pytest.raises(TlogProofError, match="inclusion proof"):
        verify(moved, ledger.receipts[4].receipt_hash, policy())


def test_k_of_n_witnesses_are_required() -> None:
    ledger = Ledger(6)
    receipt = ledger.receipts[1].receipt_hash
    two = ledger.share(1, 6)
    verify(two, receipt, policy(2))
    with pytest.raises(TlogProofError, match="has 2 of the 3 witness cosignatures required"):
        verify(two, receipt, policy(3))
    one = ledger.share(1, 6, ledger.checkpoint(6, WITNESSES[:1]))
    verify(one, receipt, policy(1))
    with pytest.raises(TlogProofError, match="has 1 of the 2"):
        verify(one, receipt, policy(2))
    # A cosignature by a witness outside the policy is ignored, not counted.
    stranger = CosignatureSigner.from_seed("stranger.example", hashlib.sha256(b"stranger").digest())
    with pytest.raises(TlogProofError, match="has 1 of the 2"):
        verify(ledger.share(1, 6, ledger.checkpoint(6, [WITNESSES[0], stranger])), receipt, policy(2))
    verify(ledger.share(1, 6, ledger.checkpoint(6, [])), receipt, None)  # no witnesses, asked for on purpose


def test_witness_policies_refuse_empty_and_ambiguous_rules() -> None:
    for cosigners, quorum in [((), 0), ((), 1), (WITNESSES[:2], 0), (WITNESSES[:2], 3)]:
        with pytest.raises(TlogProofError):
            policy(quorum, cosigners)
    twin = CosignatureVerifier(WITNESSES[0].name, WITNESSES[1].public_key)
    with pytest.raises(TlogProofError):
        WitnessPolicy((WITNESSES[0].verifier(), twin), 1)


def test_a_bad_cosignature_by_a_policy_witness_refuses_the_package() -> None:
    ledger = Ledger(4)
    receipt = ledger.receipts[0].receipt_hash
    good = parse_note(ledger.checkpoint(4))
    elsewhere = parse_note(ledger.checkpoint(3)).signatures[2]  # w1's real cosignature, of size 3
    forged = format_note(Note(good.text, (*good.signatures[:2], elsewhere)))
    with pytest.raises(TlogProofError, match=r"invalid signature for key w1\.example"):
        verify(ledger.share(0, 4, forged), receipt, policy(1))
    # A key with a policy witness's name but another key is another key id: unknown, not counted.
    impostor = CosignatureSigner.from_seed("w1.example", hashlib.sha256(b"impostor").digest())
    with pytest.raises(TlogProofError, match="has 1 of the 2"):
        verify(ledger.share(0, 4, ledger.checkpoint(4, [WITNESSES[0], impostor])), receipt, policy(2))


def test_the_wrong_log_key_origin_or_a_future_cosignature_fails() -> None:
    ledger = Ledger(4)
    package, receipt = ledger.share(2, 4), ledger.receipts[2].receipt_hash
    other_log = Ed25519Signer.from_seed(ORIGIN, hashlib.sha256(b"other log").digest())
    with pytest.raises(TlogProofError):
        verify(package, receipt, policy(), log=other_log.verifier())
    with pytest.raises(TlogProofError, match=r"not 'defendable\.example/org/43'"):
        verify_tlog_proof(
            package, receipt_hash=receipt, origin="defendable.example/org/43", log=LOG.verifier(), witnesses=policy()
        )
    with pytest.raises(TlogProofError, match="after now"):
        verify_tlog_proof(package, receipt_hash=receipt, origin=ORIGIN, log=LOG.verifier(), witnesses=policy(), now=T0)
    with pytest.raises(TlogProofError):
        verify(package, "sha256:not-a-digest", policy())


# ---------------------------------------------------------------- every byte counts


class RememberingLog(Ed25519Verifier):
    """Verifiers that remember their answers: a mutation elsewhere in the package leaves a
    key's (text, signature) unchanged, and re-running Ed25519 on it would only cost time."""

    __slots__ = ("answers",)

    def __init__(self, name: str, public_key: bytes) -> None:
        super().__init__(name, public_key)
        self.answers: dict[tuple[bytes, bytes], bool] = {}

    def verify(self, text: bytes, signature: bytes) -> bool:
        if (text, signature) not in self.answers:
            self.answers[(text, signature)] = super().verify(text, signature)
        return self.answers[(text, signature)]


class RememberingCosigner(CosignatureVerifier):
    __slots__ = ("answers",)

    def __init__(self, name: str, public_key: bytes) -> None:
        super().__init__(name, public_key)
        self.answers: dict[tuple[bytes, bytes], bool] = {}

    def verify(self, text: bytes, signature: bytes) -> bool:
        if (text, signature) not in self.answers:
            self.answers[(text, signature)] = super().verify(text, signature)
        return self.answers[(text, signature)]


def test_every_single_byte_change_to_a_receipt_or_its_proof_package_is_detected() -> None:
    ledger = Ledger(6)
    receipt = ledger.receipts[4]
    package = ledger.share(4, 6)
    log = RememberingLog(LOG.name, LOG.public_key)
    witnesses = WitnessPolicy(tuple(RememberingCosigner(w.name, w.public_key) for w in WITNESSES[:2]), 2)

    def accepted(data: bytes, receipt_hash: str) -> bool:
        try:
            verify_tlog_proof(data, receipt_hash=receipt_hash, origin=ORIGIN, log=log, witnesses=witnesses)
        except TlogProofError:
            return False
        return True

    assert accepted(package, recomputed_hash(receipt))
    undetected = [
        (at, value)
        for at in range(len(package))
        for value in range(256)
        if value != package[at] and accepted(package[:at] + bytes([value]) + package[at + 1 :], receipt.receipt_hash)
    ]
    assert undetected == []

    # The receipt reaches the verifier only as the hash of its bytes: every change to any
    # byte gives another hash, and the proof package refuses that hash.
    stored = bytes(receipt.payload)
    assert recomputed_hash(receipt) == receipt.receipt_hash
    for at in range(len(stored)):
        prefix, suffix = hashlib.sha256(stored[:at]), stored[at + 1 :]
        changed = set()
        for value in range(256):
            h = prefix.copy()
            h.update(bytes([value]))
            h.update(suffix)
            changed.add(h.digest())
        assert len(changed) == 256 and hashlib.sha256(stored).digest() in changed
        mutated = stored[:at] + bytes([stored[at] ^ 0x20]) + stored[at + 1 :]
        assert not accepted(package, sha256_digest(mutated))

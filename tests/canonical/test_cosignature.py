"""C2SP tlog-cosignature/v1 (Ed25519, type 0x04), and a witness that never cosigns a fork.

Vectors:
- C2SP tlog-cosignature.md (C2SP/C2SP@01194db): the example signed message, and the example
  cosigned checkpoint's witness line (its key is not published: its id and timestamp are
  checked, and the timestamp is the one the spec's message example shows).
- transparency-dev/formats note/note_cosigv1_test.go (@091ce41): a real witness's type-0x04
  vkey (its key id checks our 0x04 key-id computation), a type-0x01 vkey, malformed vkeys, and
  a cosignature whose timestamp is 1727964367.
"""

from __future__ import annotations

import base64
import hashlib

import pytest

from defendable_canonical.checkpoint import (
    Checkpoint,
    CheckpointError,
    InconsistentCheckpoint,
    format_checkpoint,
    sign_checkpoint,
)
from defendable_canonical.cosignature import (
    COSIGNATURE_V1,
    MAX_TIMESTAMP,
    CosignatureSigner,
    CosignatureVerifier,
    cosign,
    cosignature_timestamp,
    cosigned_message,
    cosigner_key_id,
    witness_cosign,
)
from defendable_canonical.merkle import MerkleTree, leaf_hash
from defendable_canonical.note import (
    Ed25519Signer,
    Ed25519Verifier,
    InvalidSignature,
    Note,
    NoteError,
    UnverifiedNote,
    format_note,
    open_note,
    parse_note,
    parse_vkey,
    sign_note,
)

SPEC_TEXT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_NOTE = (
    SPEC_TEXT + "\n" + "— example.com/behind-the-sofa"
    " Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "— witness.example.com/w1"
    " jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
).encode()
REMORA_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
TEST_VKEY = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"

ORIGIN = "defendable.example/org/42"
LOG = Ed25519Signer.from_seed(ORIGIN, hashlib.sha256(b"log").digest())
WITNESS = CosignatureSigner.from_seed("witness.example/w1", hashlib.sha256(b"witness").digest())
T0 = 1_700_000_000


def receipts(n: int, fork_at: int | None = None) -> MerkleTree:
    return MerkleTree(leaf_hash(f"receipt {i}{' forked' if i == fork_at else ''}".encode()) for i in range(n))


def signed(tree: MerkleTree, size: int) -> bytes:
    """What a log (honest or not) signs: its checkpoint at ``size``, with no memory of the past."""
    return sign_checkpoint(Checkpoint(ORIGIN, size, tree.root(size)), LOG, previous=None)


# ---------------------------------------------------------------- the format


def test_the_signed_message_is_the_specs_example_byte_for_byte() -> None:
    assert cosigned_message(SPEC_TEXT.encode(), 1679315147) == (
        b"cosignature/v1\ntime 1679315147\n"
        b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )


def test_the_specs_witness_line_is_a_key_id_a_timestamp_and_an_ed25519_signature() -> None:
    log_line, witness_line = parse_note(SPEC_NOTE).signatures
    assert len(log_line.signature) == 64
    assert witness_line.name == "witness.example.com/w1" and witness_line.key_id == 0x8D66CF3F
    assert len(witness_line.signature) == 8 + 64
    assert cosignature_timestamp(witness_line.signature) == 1679315147  # the spec's message example's time


def test_a_published_witness_vkey_has_the_key_id_of_signature_type_0x04() -> None:
    key = parse_vkey(REMORA_VKEY)
    assert key.key_type == COSIGNATURE_V1
    assert cosigner_key_id(key.name, key.public_key) == 0xDA77ADE7
    verifier = CosignatureVerifier.from_vkey(REMORA_VKEY)
    assert verifier.key_id == 0xDA77ADE7 and verifier.vkey == REMORA_VKEY


def test_vkeys_of_the_wrong_type_or_malformed_are_refused() -> None:
    assert Ed25519Verifier.from_vkey(TEST_VKEY).key_id == 0x7997405C
    for vkey in [
        TEST_VKEY,  # a note key (0x01), not a cosigner key
        "bananas.sigstore.dev+12344556",
        "rekor.sigstore.dev+12345678+THIS_IS_NOT_BASE64!",
        "rekor.sigstore.dev+12345678+AwEB",
        "rekor.sigstore.dev+00000000+" + REMORA_VKEY.split("+", 2)[2],
    ]:
        with pytest.raises(NoteError):
            CosignatureVerifier.from_vkey(vkey)
    with pytest.raises(NoteError):
        Ed25519Verifier.from_vkey(REMORA_VKEY)  # and the other way round


def test_the_timestamp_of_a_go_cosignature_and_a_plain_signature_is_no_cosignature() -> None:
    go_cosignature = base64.b64decode(
        "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA=="
    )
    assert cosignature_timestamp(go_cosignature[4:]) == 1727964367
    plain = base64.b64decode(
        "eQjRQm6eSKzFoiYalgwCPXu2y3ijtg68is9M46JKxuZB+dRfTmeQeDBoXnvxZx2ugnkyV+MUMLXpWs1hPb/W/4xkNQY="
    )
    with pytest.raises(NoteError):
        cosignature_timestamp(plain[4:])


# ---------------------------------------------------------------- sign and verify


def test_a_cosignature_verifies_with_its_timestamp_and_covers_the_whole_checkpoint() -> None:
    text = format_checkpoint(Checkpoint(ORIGIN, 3, receipts(3).root(), ("an extension",)))
    sig = WITNESS.sign(text.encode(), T0)
    assert sig[:8] == T0.to_bytes(8, "big")
    verifier = WITNESS.verifier()
    assert verifier.verify(text.encode(), sig)
    assert not verifier.verify(text.replace("an extension", "an extensioN").encode(), sig)
    assert not verifier.verify(text.encode(), (T0 + 1).to_bytes(8, "big") + sig[8:])
    assert not verifier.verify(text.encode(), sig[8:])  # a bare Ed25519 signature is not a cosignature
    assert not verifier.verify(text.encode(), (MAX_TIMESTAMP + 1).to_bytes(8, "big") + sig[8:])
    assert WITNESS.key_id == cosigner_key_id(WITNESS.name, WITNESS.public_key)
    assert CosignatureVerifier.from_vkey(verifier.vkey).key_id == WITNESS.key_id


def test_a_cosigned_checkpoint_keeps_the_log_signature_and_adds_the_witness_line() -> None:
    note = cosign(signed(receipts(4), 4), WITNESS, T0)
    opened = open_note(note, [LOG.verifier(), WITNESS.verifier()])
    assert [s.name for s in opened.verified] == [ORIGIN, WITNESS.name]
    assert cosign(note, WITNESS, T0) == note  # cosigning again replaces the line, not adds one
    # The same Ed25519 key as a plain note key has another key id: its line is just unknown.
    plain = Ed25519Verifier(WITNESS.name, WITNESS.public_key)
    assert plain.key_id != WITNESS.key_id
    parsed = parse_note(note)
    with pytest.raises(UnverifiedNote):
        open_note(format_note(Note(parsed.text, parsed.signatures[1:])), [plain])


def test_timestamps_beyond_2_63_are_never_signed() -> None:
    with pytest.raises(NoteError):
        WITNESS.sign(b"x\n", MAX_TIMESTAMP + 1)
    with pytest.raises(NoteError):
        WITNESS.at(-1)
    assert cosignature_timestamp(WITNESS.sign(b"x\n", MAX_TIMESTAMP)) == MAX_TIMESTAMP


def test_only_checkpoints_are_cosigned() -> None:
    with pytest.raises(CheckpointError):
        cosign(sign_note("a poem\n", [LOG]), WITNESS, T0)


# ---------------------------------------------------------------- the witness


def test_a_witness_cosigns_then_refuses_a_second_root_for_the_same_size() -> None:
    honest, forked = receipts(5), receipts(5, fork_at=3)
    latest, note_a = witness_cosign(
        signed(honest, 5), log=LOG.verifier(), latest=None, proof=[], signer=WITNESS, timestamp=T0
    )
    assert latest.size == 5
    assert [s.name for s in open_note(note_a, [LOG.verifier(), WITNESS.verifier()]).verified] == [ORIGIN, WITNESS.name]
    with pytest.raises(InconsistentCheckpoint, match="two different roots for tree size 5"):
        witness_cosign(signed(forked, 5), log=LOG.verifier(), latest=latest, proof=[], signer=WITNESS, timestamp=T0 + 1)
    # The same checkpoint again is consistent with itself.
    again, _ = witness_cosign(
        signed(honest, 5), log=LOG.verifier(), latest=latest, proof=[], signer=WITNESS, timestamp=T0
    )
    assert again == latest


def test_a_witness_refuses_a_smaller_checkpoint() -> None:
    tree = receipts(8)
    latest, _ = witness_cosign(signed(tree, 5), log=LOG.verifier(), latest=None, proof=[], signer=WITNESS, timestamp=T0)
    with pytest.raises(InconsistentCheckpoint, match="tree size 4 is smaller than the 5 already seen"):
        witness_cosign(signed(tree, 4), log=LOG.verifier(), latest=latest, proof=[], signer=WITNESS, timestamp=T0)


def test_a_witness_accepts_a_larger_checkpoint_only_with_a_valid_consistency_proof() -> None:
    tree, forked = receipts(9), receipts(9, fork_at=2)
    latest, _ = witness_cosign(signed(tree, 5), log=LOG.verifier(), latest=None, proof=[], signer=WITNESS, timestamp=T0)
    for proof in ([], tree.consistency_proof(4, 9), [b"\x00" * 32] * len(tree.consistency_proof(5, 9))):
        with pytest.raises(InconsistentCheckpoint):
            witness_cosign(
                signed(tree, 9), log=LOG.verifier(), latest=latest, proof=proof, signer=WITNESS, timestamp=T0
            )
    with pytest.raises(InconsistentCheckpoint):  # a fork below size 5, with its own valid proof
        witness_cosign(
            signed(forked, 9),
            log=LOG.verifier(),
            latest=latest,
            proof=forked.consistency_proof(5, 9),
            signer=WITNESS,
            timestamp=T0,
        )
    newer, note = witness_cosign(
        signed(tree, 9),
        log=LOG.verifier(),
        latest=latest,
        proof=tree.consistency_proof(5, 9),
        signer=WITNESS,
        timestamp=T0,
    )
    assert newer.size == 9 and newer.root_hash == tree.root()
    assert cosignature_timestamp(parse_note(note).signatures[-1].signature) == T0


def test_a_witness_cosigns_only_what_the_log_signed() -> None:
    tree = receipts(3)
    impostor = Ed25519Signer.from_seed(ORIGIN, hashlib.sha256(b"impostor").digest())
    forged = sign_checkpoint(Checkpoint(ORIGIN, 3, tree.root()), impostor, previous=None)
    with pytest.raises(NoteError):
        witness_cosign(forged, log=LOG.verifier(), latest=None, proof=[], signer=WITNESS, timestamp=T0)
    tampered = signed(tree, 3).replace(b"\n3\n", b"\n2\n")
    with pytest.raises(InvalidSignature):
        witness_cosign(tampered, log=LOG.verifier(), latest=None, proof=[], signer=WITNESS, timestamp=T0)
    with pytest.raises(InconsistentCheckpoint):  # a first checkpoint needs no proof, and takes none
        witness_cosign(
            signed(tree, 3), log=LOG.verifier(), latest=None, proof=[tree.root()], signer=WITNESS, timestamp=T0
        )

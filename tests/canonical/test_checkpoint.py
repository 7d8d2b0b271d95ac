"""C2SP checkpoints: the spec's example, strict parsing, and a log that never signs a
checkpoint inconsistent with the one it signed before.

Vector: C2SP tlog-checkpoint.md (C2SP/C2SP@2793893), the example checkpoint (its log key is not
published, so it is checked for structure and a byte-exact round trip).
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from defendable_canonical.checkpoint import (
    MAX_EXTENSION_LINES,
    Checkpoint,
    CheckpointError,
    InconsistentCheckpoint,
    check_consistent,
    format_checkpoint,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from defendable_canonical.cosignature import CosignatureSigner, cosign
from defendable_canonical.merkle import EMPTY_ROOT, MAX_TREE_SIZE, MerkleTree, leaf_hash
from defendable_canonical.note import Ed25519Signer, Note, NoteError, Verifier, format_note, parse_note

ORIGIN = "defendable.example/org/42"
C2SP_EXAMPLE = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "— example.com/behind-the-sofa"
    " Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
).encode()


def seed(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


LOG = Ed25519Signer.from_seed(ORIGIN, seed("log"))
WITNESSES = [CosignatureSigner.from_seed(f"witness{i}.example", seed(f"witness {i}")) for i in (1, 2)]


def tree_of(n: int) -> MerkleTree:
    return MerkleTree(leaf_hash(f"receipt {i}".encode()) for i in range(n))


def checkpoint_of(tree: MerkleTree, size: int) -> Checkpoint:
    return Checkpoint(ORIGIN, size, tree.root(size))


# ---------------------------------------------------------------- format


def test_the_c2sp_example_checkpoint_parses_and_round_trips() -> None:
    note = parse_note(C2SP_EXAMPLE)
    checkpoint = parse_checkpoint(note.text)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert format_checkpoint(checkpoint) == note.text
    (sig,) = note.signatures
    assert sig.name == checkpoint.origin and len(sig.signature) == 64
    assert format_note(note) == C2SP_EXAMPLE


def with_pad_bits(b64: str) -> str:
    """The same bytes in non-canonical base64: the unused low bits of the last character set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    data = b64.rstrip("=")
    return data[:-1] + alphabet[alphabet.index(data[-1]) | 1] + "=" * (len(b64) - len(data))


ROOT64 = base64.b64encode(EMPTY_ROOT).decode()
ROOT = base64.b64encode(hashlib.sha256(b"root").digest()).decode()


@pytest.mark.parametrize(
    "text",
    [
        f"log\n5\n{ROOT}",  # no final newline
        "log\n5\n",  # two lines
        f"log\n05\n{ROOT}\n",  # leading zero
        f"log\n+5\n{ROOT}\n",
        f"log\n 5\n{ROOT}\n",
        f"log\n5 \n{ROOT}\n",
        f"log\n1_0\n{ROOT}\n",  # int() would take it
        f"log\n٣\n{ROOT}\n",  # so would this: ARABIC-INDIC DIGIT THREE
        f"log\n-1\n{ROOT}\n",
        f"log\n{MAX_TREE_SIZE + 1}\n{ROOT}\n",
        f"log\n99999999999999999999\n{ROOT}\n",
        f"log\n5\n{ROOT[:-2]}=\n",  # not base64
        f"log\n5\n{base64.b64encode(b'x' * 31).decode()}\n",  # 31 bytes
        f"log\n5\n{with_pad_bits(ROOT)}\n",  # non-zero pad bits: same bytes, different text
        f"log\n5\n{ROOT}\n\n",  # empty extension line
        f"\n5\n{ROOT}\n",  # empty origin
        f"log\n\n{ROOT}\n",
        f"log\n0\n{ROOT}\n",  # the empty tree with another root
        "log\n5\n" + ROOT + "\n" + "ext\n" * (MAX_EXTENSION_LINES + 1),
        "x" * 256 + f"\n5\n{ROOT}\n",
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(CheckpointError):
        parse_checkpoint(text)


def test_the_empty_tree_and_extension_lines_are_well_formed() -> None:
    assert parse_checkpoint(f"log\n0\n{ROOT64}\n") == Checkpoint("log", 0, EMPTY_ROOT)
    text = f"log with spaces + plus\n{MAX_TREE_SIZE}\n{ROOT}\nan extension\n"
    assert format_checkpoint(parse_checkpoint(text)) == text  # origins need not be key names


@settings(max_examples=100, deadline=None)
@given(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=40),
    st.integers(1, MAX_TREE_SIZE),
    st.binary(min_size=32, max_size=32),
    st.lists(st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=20)),
)
def test_every_well_formed_checkpoint_round_trips(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    checkpoint = Checkpoint(origin, size, root, tuple(extensions[:MAX_EXTENSION_LINES]))
    text = format_checkpoint(checkpoint)
    assert parse_checkpoint(text) == checkpoint


# ---------------------------------------------------------------- the log never signs a fork


def test_the_log_signs_a_larger_checkpoint_only_with_a_valid_consistency_proof() -> None:
    tree = tree_of(12)
    first = checkpoint_of(tree, 5)
    sign_checkpoint(first, LOG, previous=None)
    later = checkpoint_of(tree, 12)
    proof = tree.consistency_proof(5, 12)
    signed = sign_checkpoint(later, LOG, previous=first, proof=proof)
    assert open_checkpoint(signed, origin=ORIGIN, log=LOG.verifier())[0] == later
    with pytest.raises(InconsistentCheckpoint, match="no valid proof from size 5 to 12"):
        sign_checkpoint(later, LOG, previous=first, proof=[])
    with pytest.raises(InconsistentCheckpoint):
        sign_checkpoint(later, LOG, previous=first, proof=tree.consistency_proof(6, 12))
    forked = MerkleTree(leaf_hash(f"receipt {i}".encode() if i != 2 else b"rewritten") for i in range(12))
    with pytest.raises(InconsistentCheckpoint):
        sign_checkpoint(checkpoint_of(forked, 12), LOG, previous=first, proof=forked.consistency_proof(5, 12))


def test_the_log_refuses_a_second_root_for_a_size_and_a_smaller_size() -> None:
    tree = tree_of(8)
    signed_before = checkpoint_of(tree, 5)
    other = Checkpoint(ORIGIN, 5, hashlib.sha256(b"another root").digest())
    with pytest.raises(InconsistentCheckpoint, match="two different roots for tree size 5"):
        sign_checkpoint(other, LOG, previous=signed_before)
    with pytest.raises(InconsistentCheckpoint, match="tree size 4 is smaller than the 5"):
        sign_checkpoint(checkpoint_of(tree, 4), LOG, previous=signed_before)
    sign_checkpoint(signed_before, LOG, previous=signed_before)  # the same one again is fine
    with pytest.raises(InconsistentCheckpoint):
        check_consistent(signed_before, Checkpoint("other.example/log", 8, tree.root(8)), tree.consistency_proof(5, 8))


def test_the_log_signs_only_its_own_origin() -> None:
    with pytest.raises(CheckpointError, match="cannot sign a checkpoint of"):
        sign_checkpoint(Checkpoint("someone.else/log", 1, leaf_hash(b"x")), LOG, previous=None)


def test_opening_needs_the_log_signature_and_the_expected_origin() -> None:
    tree = tree_of(3)
    signed = sign_checkpoint(checkpoint_of(tree, 3), LOG, previous=None)
    impostor = Ed25519Signer.from_seed(ORIGIN, seed("impostor"))
    with pytest.raises(NoteError):
        open_checkpoint(signed, origin=ORIGIN, log=impostor.verifier())
    with pytest.raises(CheckpointError, match=r"not 'defendable\.example/org/43'"):
        open_checkpoint(signed, origin="defendable.example/org/43", log=LOG.verifier())
    cosigned = parse_note(cosign(signed, WITNESSES[0], 1_700_000_000))
    alone = format_note(Note(cosigned.text, cosigned.signatures[1:]))  # the witness's line only
    with pytest.raises(CheckpointError, match="not signed by the log key"):
        open_checkpoint(alone, origin=ORIGIN, log=LOG.verifier(), others=[WITNESSES[0].verifier()])


# ---------------------------------------------------------------- every byte counts


class Remembering:
    """A verifier that remembers its answers: a mutation elsewhere in the note leaves this
    key's (text, signature) unchanged, and re-running Ed25519 on it would only cost time."""

    def __init__(self, inner: Verifier) -> None:
        self.inner, self.answers = inner, dict[tuple[bytes, bytes], bool]()

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def key_id(self) -> int:
        return self.inner.key_id

    def verify(self, text: bytes, signature: bytes) -> bool:
        if (text, signature) not in self.answers:
            self.answers[(text, signature)] = self.inner.verify(text, signature)
        return self.answers[(text, signature)]


def test_every_single_byte_change_to_a_cosigned_checkpoint_is_detected() -> None:
    tree = tree_of(5)
    signed = sign_checkpoint(checkpoint_of(tree, 5), LOG, previous=None)
    for i, witness in enumerate(WITNESSES):
        signed = cosign(signed, witness, 1_700_000_000 + i)
    log, witnesses = Remembering(LOG.verifier()), [Remembering(w.verifier()) for w in WITNESSES]
    keys = {(LOG.name, LOG.key_id), *((w.name, w.key_id) for w in WITNESSES)}

    def accepted(msg: bytes) -> bool:
        """Opens, with the log's signature and both witnesses' cosignatures verified."""
        try:
            _, verified = open_checkpoint(msg, origin=ORIGIN, log=log, others=witnesses)
        except (NoteError, CheckpointError):
            return False
        return {(s.name, s.key_id) for s in verified.verified} == keys

    assert accepted(signed)
    undetected = [
        (at, value)
        for at in range(len(signed))
        for value in range(256)
        if value != signed[at] and accepted(signed[:at] + bytes([value]) + signed[at + 1 :])
    ]
    assert undetected == []

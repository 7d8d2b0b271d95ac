"""The witness's pure decision (`decide.py`), without servers."""

from __future__ import annotations

import secrets

import msgspec
import pytest

from defendable_canonical.checkpoint import Checkpoint, format_checkpoint
from defendable_canonical.cosignature import CosignatureSigner
from defendable_canonical.merkle import MerkleTree, leaf_hash
from defendable_canonical.note import Ed25519Signer, Note, format_note, parse_note, sign_note
from defendable_witness.decide import (
    Cosign,
    Cosigned,
    Malformed,
    OldNews,
    Refused,
    Republish,
    decide,
    pinned_key,
    question,
    read_offered,
)

ORIGIN = "test.local/log/org_a"
LOG = Ed25519Signer.from_seed(ORIGIN, secrets.token_bytes(32))
WITNESS = CosignatureSigner.from_seed("w.test", secrets.token_bytes(32))


def tree(size: int, salt: bytes = b"") -> MerkleTree:
    return MerkleTree(leaf_hash(salt + i.to_bytes(8, "big")) for i in range(size))


def note(t: MerkleTree, size: int, signer: Ed25519Signer = LOG) -> bytes:
    return sign_note(format_checkpoint(Checkpoint(ORIGIN, size, t.root(size))), [signer])


def run(offered: bytes, latest: Cosigned | None, known: Cosigned | None, t: MerkleTree) -> Cosign | Republish | OldNews:
    checkpoint, parsed = read_offered(offered)
    log = pinned_key(checkpoint, parsed, [LOG.public_key])
    ask = question(latest, known, checkpoint)
    proof = t.consistency_proof(*ask) if ask else []
    return decide(offered, log=log, latest=latest, known=known, proof=proof, signer=WITNESS, timestamp=1_700_000_000)


def cosign(offered: bytes, latest: Cosigned | None, t: MerkleTree) -> Cosigned:
    decision = run(offered, latest, None, t)
    assert isinstance(decision, Cosign) and decision.previous == latest
    return decision.cosigned


def test_extends_republishes_and_ignores_old_news() -> None:
    t = tree(9)
    first = cosign(note(t, 3), None, t)
    assert question(None, None, first.checkpoint) is None  # nothing held: no proof to ask for
    second = cosign(note(t, 9), first, t)
    assert question(first, None, second.checkpoint) == (3, 9)
    assert run(note(t, 9), second, second, t) == Republish(second)
    assert run(note(t, 3), second, first, t) == Republish(first)  # cosigned before: its cosignature again
    assert isinstance(run(note(t, 5), second, None, t), OldNews)


@pytest.mark.parametrize(
    ("size", "reason"),
    [(9, "two different roots"), (5, "no valid proof from size 5 to 9"), (12, "no valid proof from size 9 to 12")],
)
def test_refuses_forks_rewrites_and_cut_tails(size: int, reason: str) -> None:
    honest, other = tree(9), tree(12, b"x")
    held = cosign(note(honest, 9), None, honest)
    known = held if size == 9 else None
    with pytest.raises(Refused, match=reason):
        run(note(other, size), held, known, honest if size < 9 else other)


def test_refuses_unknown_keys_and_bad_signatures() -> None:
    t = tree(3)
    stranger = note(t, 3, Ed25519Signer.from_seed(ORIGIN, secrets.token_bytes(32)))
    checkpoint, parsed = read_offered(stranger)
    with pytest.raises(Refused, match="no pinned log key"):
        pinned_key(checkpoint, parsed, [LOG.public_key])
    good = parse_note(note(t, 3))
    sig = good.signatures[0]
    flipped = msgspec.structs.replace(sig, signature=bytes([sig.signature[0] ^ 1]) + sig.signature[1:])
    with pytest.raises(Refused, match="invalid signature"):
        run(format_note(Note(good.text, (flipped,))), None, None, t)


def test_malformed_and_oversized_notes_are_no_checkpoints() -> None:
    with pytest.raises(Malformed, match="more than"):
        read_offered(b"x" * (256 * 1024 + 1))
    with pytest.raises(Malformed):
        read_offered(b"not a note\n")

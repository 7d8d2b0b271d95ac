"""The witness's decision on one offered checkpoint: pure, no I/O, no clock.

The app reads what the witness holds, asks `question` what consistency proof (if any) it
needs from the log, fetches it, and lets `decide` say what to do. Every refusal is a
`Refused` whose text becomes the WitnessAlert's reason.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import msgspec

from defendable_canonical.checkpoint import (
    Checkpoint,
    CheckpointError,
    InconsistentCheckpoint,
    check_consistent,
    open_checkpoint,
    parse_checkpoint,
)
from defendable_canonical.cosignature import CosignatureSigner, witness_cosign
from defendable_canonical.note import MAX_NOTE_BYTES, Ed25519Verifier, Note, NoteError, parse_note


class Refused(Exception):
    """The checkpoint must not be cosigned: a fork, a rewritten history or a bad log signature."""


class Malformed(Exception):
    """Not a checkpoint note at all (too large, or not the format): nothing a log signed."""


class Cosigned(msgspec.Struct, frozen=True, gc=False):
    """A checkpoint this witness cosigned (a row of `witness.cosignatures`)."""

    checkpoint: Checkpoint
    cosigned: str  # the note with the log's signature and this witness's cosignature


class Cosign(msgspec.Struct, frozen=True, gc=False):
    """Hold `cosigned` as the latest (compare-and-set on `previous`), then publish it."""

    previous: Cosigned | None
    cosigned: Cosigned


class Republish(msgspec.Struct, frozen=True, gc=False):
    """Already cosigned: publish the stored cosignature again (same event id)."""

    cosigned: Cosigned


class OldNews(msgspec.Struct, frozen=True, gc=False):
    """An older checkpoint, consistent with the latest held, that this witness never cosigned."""


Decision = Cosign | Republish | OldNews


def read_offered(note: bytes) -> tuple[Checkpoint, Note]:
    """The offered checkpoint, its signatures not yet checked; Malformed for what is no checkpoint."""
    if len(note) > MAX_NOTE_BYTES:  # before parsing anything of it
        raise Malformed(f"checkpoint note is {len(note)} bytes, more than {MAX_NOTE_BYTES}")
    try:
        parsed = parse_note(note)
        return parse_checkpoint(parsed.text), parsed
    except (NoteError, CheckpointError) as exc:
        raise Malformed(f"malformed checkpoint: {exc}") from exc


def pinned_key(checkpoint: Checkpoint, note: Note, log_keys: Sequence[bytes]) -> Ed25519Verifier:
    """The pinned log key the note names (`decide` checks its signature); Refused if none.

    Each org's log is named by its origin, so a pinned raw key becomes the verifier
    ``Ed25519Verifier(origin, key)``; the note must carry a signature under that name and id.
    """
    try:
        verifiers = {v.key_id: v for v in (Ed25519Verifier(checkpoint.origin, key) for key in log_keys)}
    except NoteError as exc:  # an origin that is no key name: no log key can have signed it
        raise Refused(f"{checkpoint.origin[:80]!r}: {exc}") from exc
    for sig in note.signatures:
        if sig.name == checkpoint.origin and sig.key_id in verifiers:
            return verifiers[sig.key_id]
    names = ", ".join(f"{s.name}+{s.key_id:08x}" for s in note.signatures)
    raise Refused(f"{checkpoint.origin}: checkpoint is signed by no pinned log key (signatures: {names})")


def question(latest: Cosigned | None, known: Cosigned | None, offered: Checkpoint) -> tuple[int, int] | None:
    """The consistency proof (first, second) to ask the log for; None when none is needed.

    `known` is what this witness cosigned at exactly the offered size, if anything.
    """
    if known is not None or latest is None:
        return None
    held = latest.checkpoint.size
    if offered.size == held:  # `decide` compares the roots: the same is a redelivery, another a fork
        return None
    first, second = sorted((held, offered.size))
    return None if first == 0 else (first, second)  # from the empty tree the proof is empty


def decide(
    note: bytes,
    *,
    log: Ed25519Verifier,
    latest: Cosigned | None,
    known: Cosigned | None,
    proof: Sequence[bytes],
    signer: CosignatureSigner,
    timestamp: int,
) -> Decision:
    """What to do with the offered `note`; raises Refused for anything that must not be cosigned.

    1. the pinned log key signed it;
    2. cosigned before at this size (`known`): the same root is a redelivery, another a fork;
    3. nothing held, or larger than the latest held: `proof` (latest → offered) must hold;
    4. smaller: `proof` (offered → latest) must hold, else the log rewrote or cut its history.
    """
    try:
        offered, _ = open_checkpoint(note, origin=log.name, log=log)  # 1
        if known is None and latest is not None and latest.checkpoint.size == offered.size:
            known = latest
        if known is not None:  # 2
            if known.checkpoint.root_hash != offered.root_hash:
                raise InconsistentCheckpoint(
                    f"{offered.origin}: two different roots for tree size {offered.size}:"
                    f" {known.checkpoint.root_hash.hex()[:16]}.. cosigned, {offered.root_hash.hex()[:16]}.. offered"
                )
            return Republish(known)
        if latest is None or offered.size > latest.checkpoint.size:  # 3
            held = None if latest is None else latest.checkpoint
            checked, cosigned = witness_cosign(
                note, log=log, latest=held, proof=proof, signer=signer, timestamp=timestamp
            )
            return Cosign(latest, Cosigned(checked, cosigned.decode()))
        check_consistent(offered, latest.checkpoint, proof)  # 4
        return OldNews()
    except (NoteError, CheckpointError) as exc:  # InconsistentCheckpoint is a CheckpointError
        raise Refused(str(exc)) from exc


def decode_hashes(hashes: Sequence[str]) -> list[bytes]:
    """The proof's hashes (standard base64); a malformed one makes a proof that cannot verify."""
    try:
        return [base64.b64decode(h, validate=True) for h in hashes]
    except ValueError as exc:
        raise Refused(f"the log's consistency proof is not base64: {exc}") from exc

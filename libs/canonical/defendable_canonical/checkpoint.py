"""C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint): a log's signed tree head.

The note text is the origin line, the decimal tree size, the base64 RFC 6962 root, then
optional extension lines, every line non-empty. A log "MUST NOT sign any checkpoint which is
inconsistent with any checkpoint it previously signed": `sign_checkpoint` takes the previous
checkpoint and refuses unless a consistency proof links the two, and a witness applies the
same `check_consistent` before it cosigns.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence

import msgspec

from .merkle import EMPTY_ROOT, HASH_SIZE, MAX_TREE_SIZE, ProofError, verify_consistency
from .note import (
    Note,
    NoteError,
    Signer,
    VerifiedNote,
    Verifier,
    b64decode_strict,
    parse_note,
    sign_note,
    verify_note,
)

MAX_ORIGIN_BYTES = 255  # tlog-cosignature's ML-DSA message holds the origin in one length byte
MAX_EXTENSION_LINES = 16
MAX_EXTENSION_BYTES = 1024

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")  # ASCII digits, no leading zeros, < 10^19
_CONTROL = re.compile(r"[\x00-\x1f]")


class CheckpointError(ValueError):
    """A checkpoint that is malformed, or not signed by the log it names."""


class InconsistentCheckpoint(CheckpointError):
    """A checkpoint that cannot follow another: smaller, forked, or without a valid proof."""


class Checkpoint(msgspec.Struct, frozen=True, gc=False):
    """tlog-checkpoint §Note text: the log's origin, tree size and root hash."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < len(self.origin.encode()) <= MAX_ORIGIN_BYTES or _CONTROL.search(self.origin):
            raise CheckpointError(f"checkpoint origin {self.origin[:80]!r} is empty, too long or has a control code")
        if isinstance(self.size, bool) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(f"checkpoint size {self.size} is outside 0..{MAX_TREE_SIZE}")
        if len(self.root_hash) != HASH_SIZE:
            raise CheckpointError(f"checkpoint root hash is {len(self.root_hash)} bytes, not {HASH_SIZE}")
        if self.size == 0 and self.root_hash != EMPTY_ROOT:
            raise CheckpointError("checkpoint of the empty tree does not have the empty tree's root")
        if len(self.extensions) > MAX_EXTENSION_LINES:
            raise CheckpointError(f"checkpoint has {len(self.extensions)} extensions, more than {MAX_EXTENSION_LINES}")
        for i, line in enumerate(self.extensions):
            if not 0 < len(line.encode()) <= MAX_EXTENSION_BYTES or _CONTROL.search(line):
                raise CheckpointError(f"checkpoint extension line {i + 1} is empty, too long or has a control code")


def format_checkpoint(checkpoint: Checkpoint) -> str:
    """The note text of a checkpoint, final newline included."""
    lines = (checkpoint.origin, str(checkpoint.size), base64.b64encode(checkpoint.root_hash).decode())
    return "".join(line + "\n" for line in (*lines, *checkpoint.extensions))


def parse_checkpoint(text: str) -> Checkpoint:
    """tlog-checkpoint §Note text, strictly: ``format_checkpoint`` of the result is ``text``."""
    if not text.endswith("\n"):
        raise CheckpointError("checkpoint text does not end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError(f"checkpoint has {len(lines)} lines, fewer than 3")
    if "" in lines:
        raise CheckpointError(f"checkpoint line {lines.index('') + 1} is empty")
    origin, size, root64, *extensions = lines
    if not _DECIMAL.fullmatch(size):
        raise CheckpointError(f"checkpoint size {size[:40]!r} is not a decimal without leading zeros")
    try:
        root_hash = b64decode_strict(root64)
    except NoteError as exc:
        raise CheckpointError(f"checkpoint root hash: {exc}") from exc
    return Checkpoint(origin, int(size), root_hash, tuple(extensions))


def check_consistent(old: Checkpoint, new: Checkpoint, proof: Sequence[bytes]) -> None:
    """Raise InconsistentCheckpoint unless ``new`` may follow ``old`` in the same log.

    1. same origin; 2. not smaller; 3. at the same size, the same root; 4. at a larger
    size, ``proof`` is a valid RFC 9162 §2.1.4 consistency proof from old to new.
    """
    if new.origin != old.origin:  # 1
        raise InconsistentCheckpoint(f"checkpoint of {new.origin!r} cannot follow one of {old.origin!r}")
    if new.size < old.size:  # 2
        raise InconsistentCheckpoint(f"{new.origin}: tree size {new.size} is smaller than the {old.size} already seen")
    if new.size == old.size and new.root_hash != old.root_hash:  # 3
        raise InconsistentCheckpoint(
            f"{new.origin}: two different roots for tree size {new.size}:"
            f" {old.root_hash.hex()[:16]}.. and {new.root_hash.hex()[:16]}.."
        )
    try:  # 4
        verify_consistency(old.size, new.size, proof, old.root_hash, new.root_hash)
    except ProofError as exc:
        raise InconsistentCheckpoint(f"{new.origin}: no valid proof from size {old.size} to {new.size}: {exc}") from exc


def sign_checkpoint(
    checkpoint: Checkpoint, signer: Signer, *, previous: Checkpoint | None, proof: Sequence[bytes] = ()
) -> bytes:
    """The signed note of ``checkpoint``, refused unless it is consistent with ``previous``.

    ``previous`` is the last checkpoint this log signed (None only for its first); ``proof``
    the consistency proof from it. The signer's key name must be the origin, as
    tlog-checkpoint §Signatures recommends.
    """
    if signer.name != checkpoint.origin:
        raise CheckpointError(f"log key {signer.name!r} cannot sign a checkpoint of {checkpoint.origin!r}")
    if previous is not None:
        check_consistent(previous, checkpoint, proof)
    return sign_note(format_checkpoint(checkpoint), [signer])


def read_checkpoint(msg: bytes, *, origin: str) -> tuple[Checkpoint, Note]:
    """Parse a signed checkpoint of ``origin``, checking no signature yet (see `verify_checkpoint`)."""
    note = parse_note(msg)
    checkpoint = parse_checkpoint(note.text)
    if checkpoint.origin != origin:
        raise CheckpointError(f"checkpoint is of {checkpoint.origin!r}, not {origin!r}")
    return checkpoint, note


def verify_checkpoint(note: Note, *, log: Verifier, others: Sequence[Verifier] = ()) -> VerifiedNote:
    """signed-note verification of a checkpoint's note: the ``log`` key must be among the signers.

    Signatures by ``others`` (witnesses) are verified too; any other signature is ignored.
    """
    verified = verify_note(note, [log, *others])
    if not any(s.name == log.name and s.key_id == log.key_id for s in verified.verified):
        raise CheckpointError(f"checkpoint is not signed by the log key {log.name}+{log.key_id:08x}")
    return verified


def open_checkpoint(
    msg: bytes, *, origin: str, log: Verifier, others: Sequence[Verifier] = ()
) -> tuple[Checkpoint, VerifiedNote]:
    """`read_checkpoint` then `verify_checkpoint`. Raises NoteError for a malformed or badly
    signed note, CheckpointError for the rest."""
    checkpoint, note = read_checkpoint(msg, origin=origin)
    return checkpoint, verify_checkpoint(note, log=log, others=others)

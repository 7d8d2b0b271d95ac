"""C2SP tlog-cosignature, Ed25519 ``cosignature/v1`` (signature type 0x04), and a witness's decision.

A cosignature is a note signature line whose blob is ``key id (4) || timestamp (u64, big-endian)
|| Ed25519 signature (64)`` over ``"cosignature/v1\\n" "time <timestamp>\\n"`` followed by the
whole checkpoint text (extension lines included). Its key id is SHA-256(name || 0x0A || 0x04 ||
public key)[:4] (tlog-cosignature §Format). The signed message does not name the cosigner, so
one key must serve one cosigner name only.

`witness_cosign` is the pure core of a witness (c2sp.org/tlog-witness ``add-checkpoint``): it
cosigns a checkpoint only if the log signed it and it is consistent with the latest one the
witness holds, so a witness shown two different checkpoints of one size refuses the second.
Clocks stay outside: the caller passes the timestamp.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from .checkpoint import Checkpoint, check_consistent, open_checkpoint, parse_checkpoint
from .merkle import EMPTY_ROOT
from .note import (
    Ed25519SigningKey,
    Ed25519Verifier,
    NoteError,
    Verifier,
    key_id,
    parse_note,
    sign_note,
)

COSIGNATURE_V1 = 0x04  # signed-note §Signature types: timestamped Ed25519 witness cosignatures
MAX_TIMESTAMP = (1 << 63) - 1  # tlog-cosignature §Format: MUST NOT exceed 2^63 - 1
_TIMESTAMPED_BYTES = 8 + 64


def cosigner_key_id(name: str, public_key: bytes) -> int:
    """tlog-cosignature §Format: SHA-256(<name> || "\\n" || 0x04 || 32-byte public key)[:4]."""
    return key_id(name, COSIGNATURE_V1, public_key)


def cosigned_message(text: bytes, timestamp: int) -> bytes:
    """tlog-cosignature §Ed25519 signed message: header line, time line, then the checkpoint text."""
    if isinstance(timestamp, bool) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise NoteError(f"cosignature timestamp {timestamp} is outside 0..{MAX_TIMESTAMP}")
    return b"cosignature/v1\ntime %d\n" % timestamp + text


def cosignature_timestamp(signature: bytes) -> int:
    """The timestamp of a cosignature's ``timestamped_signature`` (the bytes after the key id)."""
    if len(signature) != _TIMESTAMPED_BYTES:
        raise NoteError(f"cosignature is {len(signature)} bytes, not {_TIMESTAMPED_BYTES}")
    return int.from_bytes(signature[:8], "big")


class CosignatureVerifier(Ed25519Verifier):
    """A known cosigner: a vkey of type 0x04 (``<name>+<hex id>+<base64(0x04 || key)>``)."""

    key_type: ClassVar[int] = COSIGNATURE_V1
    __slots__ = ()

    def verify(self, text: bytes, signature: bytes) -> bool:
        if len(signature) != _TIMESTAMPED_BYTES:
            return False
        timestamp = int.from_bytes(signature[:8], "big")
        if timestamp > MAX_TIMESTAMP:
            return False
        return self._verify_ed25519(cosigned_message(text, timestamp), signature[8:])


class CosignatureSigner(Ed25519SigningKey):
    """A cosigner's Ed25519 key; each signature carries the timestamp it is given."""

    key_type: ClassVar[int] = COSIGNATURE_V1
    __slots__ = ()

    def sign(self, text: bytes, timestamp: int) -> bytes:
        """The ``timestamped_signature``: u64 timestamp || Ed25519 over the cosigned message."""
        message = cosigned_message(text, timestamp)
        return timestamp.to_bytes(8, "big") + self._key.sign(message)

    def at(self, timestamp: int) -> _TimestampedSigner:
        """This key as a note Signer whose signatures carry ``timestamp``."""
        cosigned_message(b"", timestamp)  # range check now, not at signing time
        return _TimestampedSigner(self, timestamp)

    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier(self._name, self._public)


class _TimestampedSigner:
    __slots__ = ("_signer", "_timestamp")

    def __init__(self, signer: CosignatureSigner, timestamp: int) -> None:
        self._signer, self._timestamp = signer, timestamp

    @property
    def name(self) -> str:
        return self._signer.name

    @property
    def key_id(self) -> int:
        return self._signer.key_id

    def sign(self, text: bytes) -> bytes:
        return self._signer.sign(text, self._timestamp)


def cosign(signed_checkpoint: bytes, signer: CosignatureSigner, timestamp: int) -> bytes:
    """The signed checkpoint with ``signer``'s cosignature added (replacing an older one of its key).

    Only signs what is a well-formed checkpoint; it checks no signature. A witness calls
    `witness_cosign`, which does.
    """
    note = parse_note(signed_checkpoint)
    parse_checkpoint(note.text)
    return sign_note(note.text, [signer.at(timestamp)], existing=note.signatures)


def witness_cosign(
    signed_checkpoint: bytes,
    *,
    log: Verifier,
    latest: Checkpoint | None,
    proof: Sequence[bytes],
    signer: CosignatureSigner,
    timestamp: int,
) -> tuple[Checkpoint, bytes]:
    """A witness's add-checkpoint decision: the checkpoint to hold as latest, and the cosigned note.

    1. the log key signed it (its name is the origin, as tlog-checkpoint recommends);
    2. it is consistent with ``latest``, the witness's last cosigned checkpoint of this log
       (None: nothing yet, so ``proof`` must be empty): smaller sizes, a second root for one
       size and missing or bad proofs raise InconsistentCheckpoint;
    3. cosign at ``timestamp``.
    """
    checkpoint, _ = open_checkpoint(signed_checkpoint, origin=log.name, log=log)  # 1
    check_consistent(latest or Checkpoint(checkpoint.origin, 0, EMPTY_ROOT), checkpoint, proof)  # 2
    return checkpoint, cosign(signed_checkpoint, signer, timestamp)  # 3

"""A receipt's self-contained transparency proof, in C2SP tlog-proof format (c2sp.org/tlog-proof).

    c2sp.org/tlog-proof@v1
    extra <base64 of the 32 raw bytes of the receipt hash>
    index <0-based leaf index>
    <base64 inclusion proof hash>          (zero or more, leaf's sibling first)

    <the log's signed checkpoint, verbatim, with any witness cosignatures>

The ``extra`` line is unauthenticated (tlog-proof §Format): it only says which receipt the
proof is for, and `verify_tlog_proof` refuses a package whose ``extra`` is not the receipt hash
the verifier recomputed from the receipt's bytes. Verification is offline: the log's origin
and key and a k-of-n policy of witness keys are all it trusts.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence

import msgspec

from .checkpoint import Checkpoint, CheckpointError, parse_checkpoint, verify_checkpoint
from .cosignature import CosignatureVerifier, cosignature_timestamp
from .digest import digest_hex
from .merkle import HASH_SIZE, MAX_PROOF_HASHES, MAX_TREE_SIZE, ProofError, leaf_hash, verify_inclusion
from .note import MAX_NOTE_BYTES, Note, NoteError, Verifier, b64decode_strict, parse_note

HEADER = "c2sp.org/tlog-proof@v1"
MAX_TLOG_PROOF_BYTES = MAX_NOTE_BYTES + 16 * 1024

_INDEX = re.compile(r"index (0|[1-9][0-9]{0,18})")


class TlogProofError(ValueError):
    """A proof package that is malformed or does not prove what it claims."""


class TlogProof(msgspec.Struct, frozen=True, gc=False):
    """tlog-proof §Format: leaf index, inclusion proof, signed checkpoint, optional extra data."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: bytes
    extra: bytes | None = None


class WitnessPolicy(msgspec.Struct, frozen=True, gc=False):
    """At least ``quorum`` of ``cosigners`` (distinct names) must have cosigned the checkpoint."""

    cosigners: tuple[CosignatureVerifier, ...]
    quorum: int

    def __post_init__(self) -> None:
        if not all(isinstance(c, CosignatureVerifier) for c in self.cosigners):
            raise TlogProofError("witness policy keys must be cosignature (type 0x04) keys")
        names = [c.name for c in self.cosigners]
        if len(set(names)) != len(names):
            raise TlogProofError("witness policy names a cosigner twice")
        if not 1 <= self.quorum <= len(names):
            raise TlogProofError(f"witness quorum {self.quorum} is not in 1..{len(names)}")


class Cosigned(msgspec.Struct, frozen=True, gc=False):
    name: str
    timestamp: int


class VerifiedProof(msgspec.Struct, frozen=True, gc=False):
    """What a verified package proves: leaf ``index`` of the signed ``checkpoint``, cosigned so."""

    index: int
    checkpoint: Checkpoint
    cosigned: tuple[Cosigned, ...]


def format_tlog_proof(proof: TlogProof) -> bytes:
    """The package's bytes; refuses anything `parse_tlog_proof` would not read back identically."""
    lines = [HEADER]
    if proof.extra is not None:
        lines.append("extra " + base64.b64encode(proof.extra).decode())
    lines.append(f"index {proof.index}")
    lines.extend(base64.b64encode(h).decode() for h in proof.hashes)
    data = ("\n".join(lines) + "\n\n").encode() + proof.checkpoint
    if parse_tlog_proof(data) != proof:
        raise TlogProofError("proof package does not survive a round trip")
    return data


def parse_tlog_proof(data: bytes) -> TlogProof:
    """tlog-proof §Format, strictly (the checkpoint must itself parse as a signed note)."""
    return _parse(data)[0]


def _parse(data: bytes) -> tuple[TlogProof, Note]:
    if len(data) > MAX_TLOG_PROOF_BYTES:
        raise TlogProofError(f"proof package is {len(data)} bytes, more than {MAX_TLOG_PROOF_BYTES}")
    split = data.find(b"\n\n")  # proof hash lines are non-empty: the first blank line ends them
    if split < 0:
        raise TlogProofError("proof package has no blank line before its checkpoint")
    try:
        lines = data[:split].decode("ascii").split("\n")
    except UnicodeDecodeError as exc:
        raise TlogProofError(f"proof package is not ASCII at byte {exc.start}") from exc
    checkpoint = data[split + 2 :]
    if lines[0] != HEADER:
        raise TlogProofError(f"proof package does not start with {HEADER!r}")
    extra, at = None, 1
    if at < len(lines) and lines[at].startswith("extra "):
        extra, at = _b64(lines[at][len("extra ") :], "extra data"), at + 1
        if not extra:
            raise TlogProofError("proof package has an empty extra line")
    index = _INDEX.fullmatch(lines[at]) if at < len(lines) else None
    if index is None:
        raise TlogProofError(f"proof package line {at + 1} is not 'index <decimal without leading zeros>'")
    hashes = tuple(_b64(line, f"proof hash {i}") for i, line in enumerate(lines[at + 1 :]))
    if len(hashes) > MAX_PROOF_HASHES or any(len(h) != HASH_SIZE for h in hashes):
        raise TlogProofError(f"proof package's {len(hashes)} proof hashes are not all {HASH_SIZE} bytes, or too many")
    try:
        note = parse_note(checkpoint)
    except NoteError as exc:
        raise TlogProofError(f"proof package's checkpoint: {exc}") from exc
    if int(index.group(1)) >= MAX_TREE_SIZE:
        raise TlogProofError(f"proof package index {index.group(1)} is too large")
    return TlogProof(int(index.group(1)), hashes, checkpoint, extra), note


def build_tlog_proof(receipt_hash: str, index: int, hashes: Sequence[bytes], signed_checkpoint: bytes) -> bytes:
    """The package for the receipt at leaf ``index``: its inclusion proof and signed checkpoint."""
    receipt = bytes.fromhex(digest_hex(receipt_hash))
    return format_tlog_proof(TlogProof(index, tuple(hashes), signed_checkpoint, extra=receipt))


def verify_tlog_proof(
    data: bytes,
    *,
    receipt_hash: str,
    origin: str,
    log: Verifier,
    witnesses: WitnessPolicy | None,
    now: int | None = None,
) -> VerifiedProof:
    """Raise TlogProofError unless the package proves the receipt is in the log, as witnessed.

    1. the package parses and, if it names a receipt, names this one; 2. the checkpoint is
    of ``origin``; 3. the inclusion proof leads from the receipt's leaf, at the index, to the
    checkpoint's root at the checkpoint's size (cheap, so before any signature); 4. the log
    key signed the checkpoint and every signature by a known key verifies; 5. at least
    ``witnesses.quorum`` policy cosigners cosigned it, none later than ``now`` if given.
    ``witnesses=None`` asks for no witness at all, on purpose.
    """
    try:
        receipt = bytes.fromhex(digest_hex(receipt_hash))
    except ValueError as exc:
        raise TlogProofError(str(exc)) from exc
    package, note = _parse(data)  # 1
    if package.extra is not None and package.extra != receipt:
        raise TlogProofError(f"proof package is for receipt sha256:{package.extra.hex()[:16]}.., not {receipt_hash}")
    cosigners = witnesses.cosigners if witnesses else ()
    try:
        checkpoint = parse_checkpoint(note.text)
        if checkpoint.origin != origin:  # 2
            raise TlogProofError(f"proof package's checkpoint is of {checkpoint.origin!r}, not {origin!r}")
        verify_inclusion(leaf_hash(receipt), package.index, checkpoint.size, package.hashes, checkpoint.root_hash)  # 3
        verified = verify_checkpoint(note, log=log, others=cosigners)  # 4
    except (NoteError, CheckpointError, ProofError) as exc:
        raise TlogProofError(f"proof package for leaf {package.index}: {exc}") from exc
    by_name = {c.name: c.key_id for c in cosigners}
    cosigned: dict[str, Cosigned] = {}
    for sig in verified.verified:
        if by_name.get(sig.name) == sig.key_id:
            cosigned.setdefault(sig.name, Cosigned(sig.name, cosignature_timestamp(sig.signature)))
    if now is not None and (late := [c for c in cosigned.values() if c.timestamp > now]):
        raise TlogProofError(f"cosignature by {late[0].name} is dated {late[0].timestamp}, after now ({now})")
    if witnesses is not None and len(cosigned) < witnesses.quorum:  # 5
        raise TlogProofError(
            f"checkpoint of {origin} at size {checkpoint.size} has {len(cosigned)} of the"
            f" {witnesses.quorum} witness cosignatures required"
        )
    return VerifiedProof(package.index, checkpoint, tuple(cosigned.values()))


def _b64(text: str, what: str) -> bytes:
    try:
        return b64decode_strict(text)
    except NoteError as exc:
        raise TlogProofError(f"proof package {what}: {exc}") from exc

"""Pure chain verification from stored bytes (DESIGN.md §4): recompute, never trust.

A failed check is data: `verify_chain` returns a report naming the first bad link with
a short factual reason. Signatures are checked elsewhere (they need `cryptography`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import msgspec

from .digest import GENESIS_HASH, PREFIX, is_digest
from .jcs import CanonicalError, canonical_struct, canonicalize_json
from .model import ChainLink, ReceiptPayload, StoredReceipt


class BadLink(msgspec.Struct, frozen=True, kw_only=True):
    """The first receipt (or link) that fails, by its recorded seq and hash, and why."""

    seq: int
    receipt_hash: str
    reason: str


class ChainReport(msgspec.Struct, frozen=True, kw_only=True):
    """`length`: receipts examined. `head`: hash of the last receipt that verified, in order
    (the chain head when ok; None when none did). `first_bad`: set exactly when not ok."""

    ok: bool
    length: int
    head: str | None
    first_bad: BadLink | None = None


class _ChainFields(msgspec.Struct):
    """Partial view of a payload: msgspec skips the other fields without building them."""

    org_id: str
    seq: int
    parent_hash: str


_fields_decoder = msgspec.json.Decoder(_ChainFields)
_payload_decoder = msgspec.json.Decoder(ReceiptPayload)


def short(digest: str) -> str:
    """Enough of a digest to tell two apart in a message: ``sha256:0123456789ab..``."""
    return digest[: len(PREFIX) + 12] + ".." if len(digest) > len(PREFIX) + 12 else digest


def verify_chain(receipts: Sequence[StoredReceipt], *, strict_canonical: bool = True) -> ChainReport:
    """Verify an org's receipts, in seq order, from genesis.

    Per receipt: 1. SHA-256 of the stored payload bytes equals the recorded hash; 2. the
    payload decodes; 3. (strict) the bytes are RFC 8785 canonical; 4. payload seq equals the
    recorded seq, which is the previous seq + 1, starting at 1; 5. payload parent_hash equals
    the recorded one, which is the previous receipt's hash (GENESIS_HASH for seq 1);
    6. every receipt has the first receipt's org_id.
    """
    previous: str = GENESIS_HASH
    org_id: str | None = None
    for index, receipt in enumerate(receipts):
        fields, problem = _check_receipt(receipt, index + 1, previous, strict_canonical)
        if problem is None and fields is not None:
            org_id = org_id if org_id is not None else fields.org_id
            if fields.org_id != org_id:
                problem = f"org_id is {fields.org_id!r} but seq 1 belongs to {org_id!r}"
        if problem is not None:
            bad = BadLink(seq=receipt.seq, receipt_hash=receipt.receipt_hash, reason=f"seq {receipt.seq}: {problem}")
            reason = bad.reason + _fork_note(receipts, index)
            bad = BadLink(seq=bad.seq, receipt_hash=bad.receipt_hash, reason=reason)
            return ChainReport(ok=False, length=len(receipts), head=previous if index else None, first_bad=bad)
        previous = receipt.receipt_hash
    return ChainReport(ok=True, length=len(receipts), head=previous if receipts else None)


def _check_receipt(
    receipt: StoredReceipt, expected_seq: int, previous: str, strict: bool
) -> tuple[_ChainFields | ReceiptPayload | None, str | None]:
    """Steps 1-5 for one receipt: (decoded chain fields, None) or (None, what is wrong)."""
    data = receipt.payload
    # 1. Hash exactly the stored bytes.
    actual = PREFIX + hashlib.sha256(data).hexdigest()
    if actual != receipt.receipt_hash:
        return None, f"payload hashes to {short(actual)} but is recorded as {short(receipt.receipt_hash)}"
    # 2./3. Decode; strict mode decodes fully and re-canonicalises.
    try:
        fields: _ChainFields | ReceiptPayload = (_payload_decoder if strict else _fields_decoder).decode(data)
    except msgspec.DecodeError as exc:
        return None, f"payload is not a receipt payload: {exc}"
    if strict and isinstance(fields, ReceiptPayload) and (problem := _canonical_problem(fields, bytes(data))):
        return None, problem
    # 4. Sequence numbers.
    if receipt.seq != expected_seq:
        return None, f"expected seq {expected_seq} here, after seq {expected_seq - 1}"
    if fields.seq != receipt.seq:
        return None, f"payload says seq {fields.seq}"
    # 5. Parent links.
    if fields.parent_hash != receipt.parent_hash:
        return (
            None,
            f"payload parent_hash {short(fields.parent_hash)} differs from recorded {short(receipt.parent_hash)}",
        )
    if receipt.parent_hash != previous:
        before = "genesis" if expected_seq == 1 else f"seq {expected_seq - 1}"
        return None, f"parent_hash is {short(receipt.parent_hash)} but {before} is {short(previous)}"
    return fields, None


def _canonical_problem(payload: ReceiptPayload, data: bytes) -> str | None:
    """RFC 8785: the stored bytes must be the canonical form of what they decode to.

    Cheap check first: re-encode the decoded Struct. Only on a mismatch (e.g. a field this
    version does not know yet) fall back to canonicalising the JSON text itself.
    """
    try:
        if canonical_struct(payload) == data:
            return None
        canonical = canonicalize_json(data)
    except CanonicalError as exc:
        return f"payload is not canonical JSON: {exc}"
    if canonical == data:
        return None
    at = next(
        (i for i, (a, b) in enumerate(zip(canonical, data, strict=False)) if a != b), min(len(canonical), len(data))
    )
    return f"payload bytes are not RFC 8785 canonical (first difference at byte {at})"


def _fork_note(receipts: Sequence[StoredReceipt], index: int) -> str:
    """On failure only: if the bad receipt's parent is an earlier receipt, name the fork."""
    parent = receipts[index].parent_hash
    for earlier in receipts[: max(index - 1, 0)]:
        if earlier.receipt_hash == parent:
            return f" (it forks from seq {earlier.seq})"
    return ""


def verify_links(links: Sequence[ChainLink], receipt_hash: str) -> BadLink | None:
    """A share response's path from genesis to `receipt_hash`: seq 1, 2, 3, ... with each
    parent the previous link's hash (GENESIS_HASH first), ending at `receipt_hash`."""
    if not links:
        return BadLink(seq=0, receipt_hash=receipt_hash, reason="no links: the path from genesis is empty")
    previous = str(GENESIS_HASH)
    for index, link in enumerate(links):
        problem = _link_problem(link, index + 1, previous)
        if problem is not None:
            return BadLink(seq=link.seq, receipt_hash=link.receipt_hash, reason=f"seq {link.seq}: {problem}")
        previous = link.receipt_hash
    last = links[-1]
    if last.receipt_hash != receipt_hash:
        reason = f"seq {last.seq}: path ends at {short(last.receipt_hash)}, not at the receipt {short(receipt_hash)}"
        return BadLink(seq=last.seq, receipt_hash=last.receipt_hash, reason=reason)
    return None


def _link_problem(link: ChainLink, expected_seq: int, previous: str) -> str | None:
    if link.seq != expected_seq:
        return f"expected seq {expected_seq} here, after seq {expected_seq - 1}"
    if not is_digest(link.receipt_hash):
        return f"receipt_hash {link.receipt_hash[:80]!r} is not a sha256 digest"
    if link.parent_hash != previous:
        before = "genesis" if expected_seq == 1 else f"seq {expected_seq - 1}"
        return f"parent_hash is {short(link.parent_hash)} but {before} is {short(previous)}"
    return None

"""Pure chain verification from stored bytes (DESIGN.md §4): recompute, never trust.

A failed check is data: `verify_chain` returns a report naming the first bad link with
a short factual reason. Signatures are checked elsewhere (they need `cryptography`).
One org's chain holds receipts of every kind (eval, cook, incident, unlock): strict
verification reads each payload as the type its `schema` names (`receipt.PAYLOAD_TYPES`),
and a schema that names none is a bad link.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Sequence

import msgspec

from .digest import GENESIS_HASH, PREFIX, is_digest
from .jcs import CanonicalError, canonical_struct, canonicalize_json
from .model import ChainLink, ReceiptPayload, StoredReceipt
from .receipt import EVAL_SCHEMAS, AnyReceiptPayload, decode_any_payload


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
    payload decodes (strict: fully, as the type its schema names; otherwise its chain
    fields only); 3. (strict) the bytes are RFC 8785 canonical; 4. payload seq equals the
    recorded seq, which is the previous seq + 1, starting at 1; 5. payload parent_hash equals
    the recorded one, which is the previous receipt's hash (GENESIS_HASH for seq 1);
    6. every receipt has the first receipt's org_id.
    """
    verifier = ChainVerifier(strict_canonical=strict_canonical)
    for start in range(0, len(receipts), _BATCH):
        if verifier.feed(receipts[start : start + _BATCH]) is not None:
            verifier.skip(len(receipts) - start - _BATCH)
            break
    return verifier.report()


# Receipts checked per batch: large enough to amortise the per-batch set-up, small enough
# that the batch's payload list and hashes stay in cache.
_BATCH = 1024
_payload_of = operator.attrgetter("payload")
_hash_of = operator.attrgetter("receipt_hash")
_parent_of = operator.attrgetter("parent_hash")
_seq_of = operator.attrgetter("seq")
_hexdigest = operator.methodcaller("hexdigest")
_digest = operator.methodcaller("digest")


class ChainVerifier:
    """`verify_chain` in pieces: feed an org's receipts in seq order, in chunks of any size;
    `report()` then equals `verify_chain` over the concatenation of the chunks.

    Memory: 32 bytes per verified receipt (its raw digest), kept only to name a fork in the
    first bad link's reason; payloads are not retained.
    """

    def __init__(self, *, strict_canonical: bool = True) -> None:
        self._strict = strict_canonical
        self._length = 0  # receipts fed, including any after the first bad one
        self._verified = 0  # receipts that verified, in order; also the seq of the last one
        self._previous: str = GENESIS_HASH
        self._org_id: str | None = None
        self._digests = bytearray()  # raw SHA-256 of each verified receipt, in order
        self._first_bad: BadLink | None = None

    def feed(self, receipts: Sequence[StoredReceipt]) -> BadLink | None:
        """Check the next receipts. Returns the chain's first bad link once there is one (on
        this call and every later one, which only counts what it is given)."""
        self._length += len(receipts)
        if self._first_bad is None and receipts and not self._batch_verifies(receipts):
            self._one_by_one(receipts)
        return self._first_bad

    def skip(self, count: int) -> None:
        """Count receipts after a bad link without passing them in; `report().length` includes them."""
        self._length += max(count, 0)

    def report(self) -> ChainReport:
        head = self._previous if self._verified else None
        if self._first_bad is not None:
            return ChainReport(ok=False, length=self._length, head=head, first_bad=self._first_bad)
        return ChainReport(ok=True, length=self._length, head=head)

    def _batch_verifies(self, receipts: Sequence[StoredReceipt]) -> bool:
        """Fast path: the checks of `_check_receipt` for a whole batch, as list operations in C.

        True (and the batch committed) only when every receipt passes every check. On False
        nothing has changed, and `_one_by_one` finds the first bad link and says why.
        """
        payloads = list(map(_payload_of, receipts))
        hashes = list(map(hashlib.sha256, payloads))
        recorded = list(map(_hash_of, receipts))
        seqs = list(map(_seq_of, receipts))
        parents = list(map(_parent_of, receipts))
        # 1. Hashes of exactly the stored bytes; 4./5. recorded seq continuity and parent links.
        if list(map(PREFIX.__add__, map(_hexdigest, hashes))) != recorded:
            return False
        if seqs != list(range(self._verified + 1, self._verified + 1 + len(receipts))):
            return False
        if parents[0] != self._previous or parents[1:] != recorded[:-1]:
            return False
        # 2. Decode, keeping only the chain fields: a batch of live decoded payloads would make
        # every garbage-collector pass walk them; 3. strict: canonical bytes; 4./5./6. as above.
        fields: list[tuple[int, str, str]] = []
        try:
            if self._strict:
                for data in payloads:
                    payload = _strict_decode(data)
                    if _canonical_problem(payload, bytes(data)) is not None:
                        return False
                    fields.append((payload.seq, payload.parent_hash, payload.org_id))
            else:
                for data in payloads:
                    chain_fields = _fields_decoder.decode(data)
                    fields.append((chain_fields.seq, chain_fields.parent_hash, chain_fields.org_id))
        except (msgspec.DecodeError, CanonicalError):
            return False
        payload_seqs, payload_parents, orgs = zip(*fields, strict=True)
        if list(payload_seqs) != seqs or list(payload_parents) != parents:
            return False
        org_id = self._org_id if self._org_id is not None else orgs[0]
        if any(org != org_id for org in orgs):
            return False
        self._org_id = org_id
        self._digests += b"".join(map(_digest, hashes))
        self._verified += len(receipts)
        self._previous = recorded[-1]
        return True

    def _one_by_one(self, receipts: Sequence[StoredReceipt]) -> None:
        """Slow path, only for a batch that holds a bad link: check receipt by receipt,
        committing each that verifies, and record the first that does not."""
        for receipt in receipts:
            expected_seq = self._verified + 1
            fields, problem = _check_receipt(receipt, expected_seq, self._previous, self._strict)
            org_id = self._org_id
            if problem is None and fields is not None:
                org_id = org_id if org_id is not None else fields.org_id
                if fields.org_id != org_id:
                    problem = f"org_id is {fields.org_id!r} but seq 1 belongs to {org_id!r}"
            if problem is not None:
                reason = f"seq {receipt.seq}: {problem}{self._fork_note(receipt.parent_hash)}"
                self._first_bad = BadLink(seq=receipt.seq, receipt_hash=receipt.receipt_hash, reason=reason)
                return
            self._org_id = org_id
            self._digests += bytes.fromhex(receipt.receipt_hash[len(PREFIX) :])
            self._verified = expected_seq
            self._previous = receipt.receipt_hash

    def _fork_note(self, parent: str) -> str:
        """On failure only: if the bad receipt's parent is a verified receipt other than the
        last one, name the fork. Verified receipt k's digest sits at bytes 32(k-1) to 32k."""
        if not is_digest(parent):
            return ""  # verified hashes are `sha256:<64 lowercase hex>`; nothing else can match
        needle = bytes.fromhex(parent[len(PREFIX) :])
        searched = bytes(self._digests[: 32 * max(self._verified - 1, 0)])
        at = searched.find(needle)
        while at % 32:  # -1 % 32 == 31: a miss also loops once more, then stops below
            if at == -1:
                return ""
            at = searched.find(needle, at + 1)
        return f" (it forks from seq {at // 32 + 1})"


def _strict_decode(data: bytes) -> AnyReceiptPayload:
    """`receipt.decode_any_payload`, with its common case inlined: the batch path calls this
    once per receipt. Raises msgspec.DecodeError or CanonicalError."""
    try:
        payload = _payload_decoder.decode(data)
    except msgspec.ValidationError:
        return decode_any_payload(data)
    return payload if payload.schema in EVAL_SCHEMAS else decode_any_payload(data)


def _check_receipt(
    receipt: StoredReceipt, expected_seq: int, previous: str, strict: bool
) -> tuple[_ChainFields | AnyReceiptPayload | None, str | None]:
    """Steps 1-5 for one receipt: (decoded chain fields, None) or (None, what is wrong)."""
    data = receipt.payload
    # 1. Hash exactly the stored bytes.
    actual = PREFIX + hashlib.sha256(data).hexdigest()
    if actual != receipt.receipt_hash:
        return None, f"payload hashes to {short(actual)} but is recorded as {short(receipt.receipt_hash)}"
    # 2./3. Decode; strict mode decodes fully, as the type the schema names, and re-canonicalises.
    fields: _ChainFields | AnyReceiptPayload
    if strict:
        try:
            fields = decode_any_payload(data)
        except CanonicalError as exc:
            return None, str(exc)
        if problem := _canonical_problem(fields, bytes(data)):
            return None, problem
    else:
        try:
            fields = _fields_decoder.decode(data)
        except msgspec.DecodeError as exc:
            return None, f"payload is not a receipt payload: {exc}"
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


def _canonical_problem(payload: AnyReceiptPayload, data: bytes) -> str | None:
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

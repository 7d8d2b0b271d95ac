"""Pure chain maths for minting: bodies in, chained receipts out. No I/O, no clock.

The caller holds the org's head lock and passes the head, the clock reading and
a signer; this function only decides seq, parent and hash (DESIGN.md §4).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec

from defendable_canonical.digest import Digest
from defendable_canonical.events import Approved, derive_id
from defendable_canonical.model import Signature
from defendable_canonical.receipt import build_payload, payload_bytes, receipt_hash


class MintedReceipt(msgspec.Struct, frozen=True, kw_only=True):
    org_id: str
    run_id: str
    seq: int
    receipt_hash: Digest
    parent_hash: str
    payload: bytes
    signature: Signature
    approval_event_id: str
    minted_event_id: str
    share_token: str


# Signs each message (a raw receipt hash), returning the signatures in the same order.
SignAll = Callable[[Sequence[bytes]], list[Signature]]


def minted_event_id(approval_event_id: str) -> str:
    return derive_id("ev", approval_event_id, "Minted")


def chain_batch(
    head_seq: int,
    head_hash: str,
    approvals: Sequence[Approved],
    minted_at: str,
    sign_all: SignAll,
    tokens: Sequence[str],
) -> list[MintedReceipt]:
    """Append `approvals` after (head_seq, head_hash), in order, each linked to the one before."""
    chained: list[tuple[int, str, bytes, Digest]] = []  # seq, parent, payload bytes, hash
    seq, parent = head_seq, head_hash
    for approved in approvals:
        seq += 1
        data = payload_bytes(build_payload(approved.receipt, seq, parent, minted_at))
        digest = receipt_hash(data)
        chained.append((seq, parent, data, digest))
        parent = digest
    # Each link needs only the previous hash, so the signatures wait for the whole batch.
    signatures = sign_all([bytes.fromhex(digest.removeprefix("sha256:")) for *_, digest in chained])
    return [
        MintedReceipt(
            org_id=approved.org_id,
            run_id=approved.run_id,
            seq=seq,
            receipt_hash=digest,
            parent_hash=parent,
            payload=data,
            signature=signature,
            approval_event_id=approved.event_id,
            minted_event_id=minted_event_id(approved.event_id),
            share_token=token,
        )
        for approved, token, (seq, parent, data, digest), signature in zip(
            approvals, tokens, chained, signatures, strict=True
        )
    ]

"""Pure chain maths for minting: mint requests in, chained receipts out. No I/O, no clock.

Every event the ledger mints from becomes a `MintRequest` (`mint_request`): whose chain,
the run it is the one receipt of, the event that asked, and the receipt body. Eval
approvals, cooks, incidents and unlocks then share one path — one queue, one head lock
per org, one dedupe on (org_id, run_id), one Minted event out — and the chain never
needs to know which kind a receipt is.

The caller holds the org's head lock and passes the head, the clock reading and
a signer; `chain_batch` only decides seq, parent and hash (DESIGN.md §4).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final, NamedTuple

import msgspec

from defendable_canonical.digest import Digest
from defendable_canonical.events import (
    EVENT_NAMES,
    Approved,
    CookApproved,
    IncidentAcknowledged,
    LaneUnlocked,
    derive_id,
)
from defendable_canonical.model import Signature
from defendable_canonical.receipt import AnyReceiptBody, build_any_payload, payload_bytes, receipt_hash, schema_problem

# The events that ask for a receipt; the envelope's run_id is the run's id, the cook's, the
# incident's, or the unlock's — each the key of its one receipt on the org's chain.
MintEvent = Approved | CookApproved | IncidentAcknowledged | LaneUnlocked
MINT_EVENTS: Final = (Approved, CookApproved, IncidentAcknowledged, LaneUnlocked)
MINT_EVENT_NAMES: Final = tuple(EVENT_NAMES[kind] for kind in MINT_EVENTS)


class MintRequest(NamedTuple):
    """One receipt to mint (a tuple: the ledger holds thousands while they wait)."""

    org_id: str  # whose chain
    run_id: str  # one receipt per (org_id, run_id), however often the event is redelivered
    event_id: str  # the event that asked; Minted's id derives from it
    body: AnyReceiptBody


class Unmintable(ValueError):
    """The event can never become a receipt: its body contradicts its envelope or its kind."""


def mint_request(event: MintEvent) -> MintRequest:
    """The request an event makes; raises Unmintable when it names another org or run in its
    body than in its envelope, or a schema its kind does not build."""
    body: AnyReceiptBody
    match event:
        case Approved(receipt=body):
            key = body.run_id
        case CookApproved(receipt=body):
            key = body.run_id
        case IncidentAcknowledged(receipt=body):
            key = body.incident_id
        case LaneUnlocked(record=body):
            key = body.unlock_id
    if body.org_id != event.org_id or key != event.run_id:
        raise Unmintable(f"{type(event).__name__} {event.event_id} names another org or run in its receipt")
    if (problem := schema_problem(body)) is not None:
        raise Unmintable(f"{type(event).__name__} {event.event_id}: {problem}")
    return MintRequest(event.org_id, event.run_id, event.event_id, body)


class MintedReceipt(msgspec.Struct, frozen=True, kw_only=True):
    org_id: str
    run_id: str
    seq: int
    receipt_hash: Digest
    parent_hash: str
    payload: bytes
    signature: Signature
    approval_event_id: str  # the event that asked for it (an approval, a cook, an incident, an unlock)
    minted_event_id: str
    share_token: str


def batch_count(sizes: Sequence[int], most_bytes: int) -> int:
    """How many of the approvals waiting (their message sizes, in order) one transaction takes:
    as many as fit in `most_bytes`, and always the first, whatever its size."""
    total = 0
    for count, size in enumerate(sizes):
        total += size
        if total > most_bytes and count:
            return count
    return len(sizes)


# Signs each message (a raw receipt hash), returning the signatures in the same order.
SignAll = Callable[[Sequence[bytes]], list[Signature]]


def minted_event_id(approval_event_id: str) -> str:
    return derive_id("ev", approval_event_id, "Minted")


def chain_batch(
    head_seq: int,
    head_hash: str,
    requests: Sequence[MintRequest],
    minted_at: str,
    sign_all: SignAll,
    tokens: Sequence[str],
) -> list[MintedReceipt]:
    """Append `requests` after (head_seq, head_hash), in order, each linked to the one before."""
    chained: list[tuple[int, str, bytes, Digest]] = []  # seq, parent, payload bytes, hash
    seq, parent = head_seq, head_hash
    for request in requests:
        seq += 1
        data = payload_bytes(build_any_payload(request.body, seq, parent, minted_at))
        digest = receipt_hash(data)
        chained.append((seq, parent, data, digest))
        parent = digest
    # Each link needs only the previous hash, so the signatures wait for the whole batch.
    signatures = sign_all([bytes.fromhex(digest.removeprefix("sha256:")) for *_, digest in chained])
    return [
        MintedReceipt(
            org_id=request.org_id,
            run_id=request.run_id,
            seq=seq,
            receipt_hash=digest,
            parent_hash=parent,
            payload=data,
            signature=signature,
            approval_event_id=request.event_id,
            minted_event_id=minted_event_id(request.event_id),
            share_token=token,
        )
        for request, token, (seq, parent, data, digest), signature in zip(
            requests, tokens, chained, signatures, strict=True
        )
    ]

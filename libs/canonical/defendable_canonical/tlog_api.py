"""The ledger's transparency-log questions and answers (request-reply on `LEDGER_TLOG`).

The gateway turns them into `GET /ledger/checkpoint`, `GET /ledger/proof/inclusion`,
`GET /ledger/proof/consistency` and the proof inside every share document; the witness
asks for consistency proofs directly. Hashes travel as standard base64, as in the C2SP
notes they go with. An answer that could not be given is a `TlogProblem` with the HTTP
status the gateway should answer.
"""

from __future__ import annotations

from typing import Final

import msgspec

DEFAULT_ORIGIN_PREFIX: Final = "defendable.local/log"


def log_origin(prefix: str, org_id: str) -> str:
    """The origin line of an org's log (tlog-checkpoint): one log per org, under one prefix."""
    return f"{prefix.rstrip('/')}/{org_id}"


class TlogQuery(msgspec.Struct, frozen=True, kw_only=True, tag_field="op", forbid_unknown_fields=True):
    org_id: str


class CheckpointQuery(TlogQuery, frozen=True, kw_only=True, tag="checkpoint"):
    """The org's latest checkpoint, with every cosignature the ledger holds for it."""


class InclusionQuery(TlogQuery, frozen=True, kw_only=True, tag="inclusion"):
    # The asker names the seq it read from its own copy (the ledger keeps no index by hash:
    # it would slow every mint); the ledger checks that leaf seq - 1 is this receipt.
    receipt_hash: str
    seq: int
    size: int | None = None  # the tree size to prove against; None: the latest checkpoint's


class ConsistencyQuery(TlogQuery, frozen=True, kw_only=True, tag="consistency"):
    first: int  # RFC 9162 §2.1.4: from size `first` to size `second`
    second: int


class ProofQuery(TlogQuery, frozen=True, kw_only=True, tag="proof"):
    """A self-contained tlog-proof of one receipt, for its share document."""

    receipt_hash: str
    seq: int  # as for InclusionQuery


MAX_PAGE = 1000  # receipts or checkpoints per `receipts` / `checkpoints` answer


class ReceiptsQuery(TlogQuery, frozen=True, kw_only=True, tag="receipts"):
    """The org's stored receipts after seq `after`, in seq order (exports and audit replay)."""

    after: int = 0
    limit: int = MAX_PAGE


class CheckpointsQuery(TlogQuery, frozen=True, kw_only=True, tag="checkpoints"):
    """Every checkpoint the ledger signed for the org at a size above `after`, smallest first."""

    after: int = 0
    limit: int = MAX_PAGE


AnyTlogQuery = CheckpointQuery | InclusionQuery | ConsistencyQuery | ProofQuery | ReceiptsQuery | CheckpointsQuery


class TlogProblem(msgspec.Struct, frozen=True, kw_only=True, tag="problem"):
    status: int
    detail: str


class CheckpointAnswer(msgspec.Struct, frozen=True, kw_only=True, tag="checkpoint"):
    origin: str
    size: int
    root_hash: str
    checkpoint: str  # the signed note, with the cosignatures held for it


class InclusionAnswer(msgspec.Struct, frozen=True, kw_only=True, tag="inclusion"):
    origin: str
    receipt_hash: str
    leaf_index: int
    tree_size: int
    root_hash: str  # of the tree at `tree_size`
    hashes: list[str]


class ConsistencyAnswer(msgspec.Struct, frozen=True, kw_only=True, tag="consistency"):
    origin: str
    first: int
    second: int
    first_root: str
    second_root: str
    hashes: list[str]


class ProofAnswer(msgspec.Struct, frozen=True, kw_only=True, tag="proof"):
    origin: str
    leaf_index: int
    tree_size: int
    proof: str  # c2sp.org/tlog-proof@v1 text: extra, index, hashes, cosigned checkpoint


class StoredReceiptRow(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    receipt_hash: str
    parent_hash: str
    payload: msgspec.Raw  # the canonical payload bytes, exactly as hashed
    signature: msgspec.Raw  # {"kid", "public_key", "sig"}
    minted_at: str


class ReceiptsAnswer(msgspec.Struct, frozen=True, kw_only=True, tag="receipts"):
    receipts: list[StoredReceiptRow]  # fewer than asked: the end of the chain


class CheckpointsAnswer(msgspec.Struct, frozen=True, kw_only=True, tag="checkpoints"):
    origin: str
    checkpoints: list[CheckpointAnswer]  # cosignatures merged, as in `checkpoint`


AnyTlogAnswer = (
    TlogProblem
    | CheckpointAnswer
    | InclusionAnswer
    | ConsistencyAnswer
    | ProofAnswer
    | ReceiptsAnswer
    | CheckpointsAnswer
)

query_decoder: msgspec.json.Decoder[AnyTlogQuery] = msgspec.json.Decoder(AnyTlogQuery)
answer_decoder: msgspec.json.Decoder[AnyTlogAnswer] = msgspec.json.Decoder(AnyTlogAnswer)

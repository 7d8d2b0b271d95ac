"""HTTP request and response shapes (gateway-private; wire events live in libs/canonical)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from defendable_canonical.model import Lane

Name = Annotated[str, Meta(min_length=1, max_length=200)]
ShortText = Annotated[str, Meta(max_length=200)]
Note = Annotated[str, Meta(max_length=4000)]
SheetRef = Annotated[str, Meta(pattern=r"^[a-z0-9_.-]{1,100}@[A-Za-z0-9_.-]{1,40}$")]


class AgentProfileIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    model: Name
    harness: Name
    tools: Annotated[list[ShortText], Meta(max_length=100)] = []
    runtime: ShortText = ""


class CreateRunRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project: Name
    lane: Lane
    flight_sheet: SheetRef
    agent_profile: AgentProfileIn
    assignment: Annotated[str, Meta(max_length=64_000)] = ""


class RunAccepted(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    status: str


class EvidenceNote(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Evidence that is not a file: stored as its canonical JSON."""

    kind: Literal["note", "url", "observation"]
    name: Name
    content: Annotated[str, Meta(max_length=64_000)] = ""
    url: Annotated[str, Meta(max_length=4000)] = ""


class EvidenceAccepted(msgspec.Struct, frozen=True, kw_only=True):
    evidence_id: str
    sha256: str
    size: int
    status: str = "pending"


class Accepted(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    status: str


class DecisionRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    note: Note = ""


class ReceiptLinks(msgspec.Struct, frozen=True, kw_only=True):
    share: str
    pdf: str
    json: str


class ReceiptDoc(msgspec.Struct, frozen=True, kw_only=True):
    receipt_hash: str
    seq: int
    parent_hash: str
    run_id: str
    payload: msgspec.Raw
    signature: msgspec.Raw
    links: ReceiptLinks
    rendered: bool


class ShareTransparency(msgspec.Struct, frozen=True, kw_only=True):
    origin: str
    leaf_index: int
    tree_size: int
    proof: str  # c2sp.org/tlog-proof@v1: extra, index, inclusion hashes, cosigned checkpoint


class ShareDoc(msgspec.Struct, frozen=True, kw_only=True):
    receipt_hash: str
    payload: msgspec.Raw
    signature: msgspec.Raw
    transparency: ShareTransparency
    how_to_verify: str = (
        "Recompute sha256 over the RFC 8785 canonical JSON of `payload`; it must equal `receipt_hash`, "
        "and `signature` must verify over its 32 bytes with a key of /.well-known/defendable-keys.json. "
        "`transparency.proof` (C2SP tlog-proof) proves leaf seq-1 of the org's log is this receipt, "
        "under a checkpoint signed by that key and cosigned by witnesses. `defendable verify URL` "
        "does all of it; so does /r/<token> in a browser."
    )

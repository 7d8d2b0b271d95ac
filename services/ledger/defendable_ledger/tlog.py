"""Each org's transparency log, kept by the ledger beside its chain (docs/transparency.md).

`extend_log` runs inside a mint transaction: it appends the batch's leaves from the stored
right border, signs the checkpoint of the new size, and refuses (raising, so the batch rolls
back and is retried, never dead-lettered) unless a consistency proof from the stored nodes
links it to the last checkpoint it signed. The answers to `svc.ledger.tlog` live here too.

`switched_on` reads LEDGER_TLOG, a benchmarking knob only (bench/tlog.py), never for
production: "off" mints receipts (still signed) without Merkle nodes or checkpoints, so the
bench can compare the mint rate without the log. A ledger started "on" again backfills the
log of every org whose head is past its last checkpoint (`backfill`, at startup).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from asyncpg import Connection

from defendable_canonical.checkpoint import (
    Checkpoint,
    CheckpointError,
    InconsistentCheckpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from defendable_canonical.cosignature import CosignatureVerifier
from defendable_canonical.events import CheckpointCosigned, CheckpointSigned, derive_id, tree_run_id
from defendable_canonical.merkle import (
    EMPTY_ROOT,
    CompactRange,
    NodeId,
    ProofError,
    consistency_nodes,
    consistency_proof,
    inclusion_nodes,
    inclusion_proof,
    receipt_leaf_hash,
    root,
    root_nodes,
)
from defendable_canonical.note import Ed25519Signer, NoteError, format_note, parse_note, verify_note
from defendable_canonical.tlog_api import (
    MAX_PAGE,
    AnyTlogAnswer,
    AnyTlogQuery,
    CheckpointAnswer,
    CheckpointQuery,
    CheckpointsAnswer,
    CheckpointsQuery,
    ConsistencyAnswer,
    ConsistencyQuery,
    InclusionAnswer,
    InclusionQuery,
    ProofAnswer,
    ProofQuery,
    ReceiptsAnswer,
    ReceiptsQuery,
    StoredReceiptRow,
    TlogProblem,
    log_origin,
)
from defendable_canonical.tlog_proof import build_tlog_proof

from . import tlog_store
from .keys import Signer
from .tlog_store import MissingNodes

log = logging.getLogger("defendable.ledger.tlog")
SERVICE = "ledger"

# Raised while extending a log: the batch is retried, loudly, and nothing is signed.
LOG_REFUSALS = (InconsistentCheckpoint, CheckpointError, MissingNodes, ProofError)


def switched_on(environ: Mapping[str, str]) -> bool:
    """LEDGER_TLOG: "on" (the default) or "off" (benchmarking only: no log, no checkpoints)."""
    value = environ.get("LEDGER_TLOG", "on").strip().lower()
    if value not in ("on", "off"):
        raise SystemExit(f"LEDGER_TLOG is 'on' (the default) or 'off' (benchmarking only), not {value!r}")
    return value == "on"


class SignedCheckpoint(msgspec.Struct, frozen=True, kw_only=True):
    org_id: str
    origin: str
    size: int
    root: bytes
    note: bytes


class LogKeys:
    """The ledger's key as each org's log key: a note key named after that org's origin."""

    def __init__(self, signer: Signer, origin_prefix: str) -> None:
        self.signer, self.origin_prefix = signer, origin_prefix
        self._note_signers: dict[str, Ed25519Signer] = {}

    def origin(self, org_id: str) -> str:
        return log_origin(self.origin_prefix, org_id)

    def note_signer(self, origin: str) -> Ed25519Signer:
        if (signer := self._note_signers.get(origin)) is None:
            if len(self._note_signers) >= 4096:  # bounded: a key id is one hash, cheap to redo
                self._note_signers.clear()
            signer = self._note_signers[origin] = Ed25519Signer(origin, self.signer.private_key)
        return signer


async def extend_log(
    conn: Connection, keys: LogKeys, org_id: str, size: int, receipt_hashes: Sequence[str]
) -> SignedCheckpoint:
    """Append these receipts (seq size+1 on) to the org's log and sign its new checkpoint."""
    border_ids = root_nodes(size)
    stored = await tlog_store.require_nodes(conn, org_id, border_ids)
    border = CompactRange(size, tuple(stored[n] for n in border_ids))
    written: list[tuple[NodeId, bytes]] = []
    for receipt_hash in receipt_hashes:
        border, completed = border.append(receipt_leaf_hash(receipt_hash))
        written += completed
    origin = keys.origin(org_id)
    checkpoint = Checkpoint(origin, border.size, border.root())
    previous, proof = None, []
    if size:
        row = await tlog_store.checkpoint_at(conn, org_id, size)
        if row is None:
            raise MissingNodes(f"org {org_id}: no checkpoint at the chain's head, size {size}")
        previous = parse_checkpoint(parse_note(bytes(row["note"])).text)
        have = dict(written)
        need = [n for n in consistency_nodes(size, border.size) if n not in have]
        have |= await tlog_store.require_nodes(conn, org_id, need)
        proof = consistency_proof(have.__getitem__, size, border.size)
    note = sign_checkpoint(checkpoint, keys.note_signer(origin), previous=previous, proof=proof)
    await tlog_store.append_nodes(conn, org_id, written)
    await tlog_store.record_checkpoint(conn, org_id, checkpoint.size, checkpoint.root_hash, note)
    return SignedCheckpoint(org_id=org_id, origin=origin, size=checkpoint.size, root=checkpoint.root_hash, note=note)


async def latest_signed(conn: Connection, keys: LogKeys, org_id: str) -> SignedCheckpoint | None:
    row = await tlog_store.latest_checkpoint(conn, org_id)
    if row is None:
        return None
    return SignedCheckpoint(
        org_id=org_id, origin=keys.origin(org_id), size=row["size"], root=bytes(row["root"]), note=bytes(row["note"])
    )


async def backfill(conn: Connection, keys: LogKeys, org_id: str, head_seq: int) -> SignedCheckpoint:
    """Bring an org's log up to its chain head (receipts minted before the log existed), under
    the head lock: from the latest checkpoint, or from nothing if there is none."""
    latest = await tlog_store.latest_checkpoint(conn, org_id)
    start = 0 if latest is None else int(latest["size"])
    if latest is None:
        await tlog_store.delete_nodes(conn, org_id)  # rows without a checkpoint: rebuild them
    hashes: list[str] = []
    while len(hashes) < head_seq - start:
        page = await tlog_store.receipt_hashes(conn, org_id, start + len(hashes), 10_000)
        if not page:
            break
        hashes += page
    return await extend_log(conn, keys, org_id, start, hashes)


def checkpoint_event(cp: SignedCheckpoint, now: str) -> CheckpointSigned:
    return CheckpointSigned(
        event_id=derive_id("ev", f"{cp.org_id}/{cp.size}", "CheckpointSigned"),
        org_id=cp.org_id,
        run_id=tree_run_id(cp.size),
        occurred_at=now,
        producer=SERVICE,
        origin=cp.origin,
        size=cp.size,
        root_hash=_b64(cp.root),
        checkpoint=cp.note.decode(),
    )


# ---------------------------------------------------------------- cosignatures


class BadCosignature(ValueError):
    """A cosignature event the ledger will not store: it does not cosign what the ledger signed."""


async def store_cosignature(conn: Connection, keys: LogKeys, event: CheckpointCosigned) -> bool:
    """Keep the witness's cosignature line for the checkpoint the ledger signed at that size."""
    row = await tlog_store.checkpoint_at(conn, event.org_id, event.size)
    if row is None or event.origin != keys.origin(event.org_id):
        raise BadCosignature(
            f"{event.witness} cosigned size {event.size} of {event.origin}, which this ledger never signed"
        )
    ours = parse_note(bytes(row["note"]))
    try:
        theirs = parse_note(event.cosigned.encode())
        verifier = CosignatureVerifier.from_vkey(event.witness_vkey)
        verified = verify_note(theirs, [verifier])
    except NoteError as exc:
        raise BadCosignature(f"cosignature by {event.witness}: {exc}") from exc
    if theirs.text != ours.text:
        raise BadCosignature(f"{event.witness} cosigned another checkpoint text for size {event.size}: a fork?")
    if verifier.name != event.witness:
        raise BadCosignature(f"witness {event.witness} sent the key of {verifier.name}")
    line = verified.verified[0].line().rstrip("\n")
    return await tlog_store.record_cosignature(conn, event.org_id, event.size, event.witness, event.witness_vkey, line)


def with_cosignatures(note: bytes, lines: Sequence[str]) -> bytes:
    """The signed checkpoint with the stored cosignature lines after the log's signature."""
    if not lines:
        return note
    merged = note + "".join(line + "\n" for line in lines).encode()
    parsed = parse_note(merged)
    return format_note(parsed)


# ---------------------------------------------------------------- answers


async def answer(conn: Connection, keys: LogKeys, query: AnyTlogQuery) -> AnyTlogAnswer:
    """One `svc.ledger.tlog` question, on one read-only snapshot."""
    match query:
        case CheckpointQuery():
            return await _checkpoint(conn, keys, query)
        case InclusionQuery():
            return await _inclusion(conn, keys, query)
        case ConsistencyQuery():
            return await _consistency(conn, keys, query)
        case ProofQuery():
            return await _proof(conn, keys, query)
        case ReceiptsQuery():
            return await _receipts(conn, query)
        case CheckpointsQuery():
            return await _checkpoints(conn, keys, query)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def _checkpoint(conn: Connection, keys: LogKeys, q: CheckpointQuery) -> AnyTlogAnswer:
    row = await tlog_store.latest_checkpoint(conn, q.org_id)
    if row is None:
        return TlogProblem(status=404, detail="this organisation has no receipts yet, so no checkpoint")
    return (await _checkpoint_answers(conn, keys, q.org_id, [row]))[0]


async def _checkpoint_answers(
    conn: Connection, keys: LogKeys, org_id: str, rows: list[dict[str, Any]]
) -> list[CheckpointAnswer]:
    sizes = [int(r["size"]) for r in rows]
    lines = await tlog_store.cosignature_lines(conn, org_id, sizes)
    return [
        CheckpointAnswer(
            origin=keys.origin(org_id),
            size=size,
            root_hash=_b64(bytes(row["root"])),
            checkpoint=with_cosignatures(bytes(row["note"]), lines.get(size, [])).decode(),
        )
        for size, row in zip(sizes, rows, strict=True)
    ]


async def _tree_size(conn: Connection, org_id: str) -> int:
    row = await tlog_store.latest_checkpoint(conn, org_id)
    return 0 if row is None else int(row["size"])


async def _receipt_problem(conn: Connection, org_id: str, receipt_hash: str, seq: int) -> TlogProblem | None:
    if seq < 1 or await tlog_store.receipt_hash_at(conn, org_id, seq) != receipt_hash:
        return TlogProblem(status=404, detail=f"no receipt {receipt_hash[:80]} at seq {seq} in this organisation")
    return None


async def _lookup(conn: Connection, org_id: str, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
    return await tlog_store.require_nodes(conn, org_id, ids)


async def _inclusion(conn: Connection, keys: LogKeys, q: InclusionQuery) -> AnyTlogAnswer:
    if problem := await _receipt_problem(conn, q.org_id, q.receipt_hash, q.seq):
        return problem
    tree = await _tree_size(conn, q.org_id)
    size = tree if q.size is None else q.size
    if not q.seq <= size <= tree:
        return TlogProblem(status=400, detail=f"size must be in {q.seq}..{tree}: the receipt is leaf {q.seq - 1}")
    have = await _lookup(conn, q.org_id, [*inclusion_nodes(q.seq - 1, size), *root_nodes(size)])
    return InclusionAnswer(
        origin=keys.origin(q.org_id),
        receipt_hash=q.receipt_hash,
        leaf_index=q.seq - 1,
        tree_size=size,
        root_hash=_b64(root(have.__getitem__, size)),
        hashes=[_b64(h) for h in inclusion_proof(have.__getitem__, q.seq - 1, size)],
    )


async def _consistency(conn: Connection, keys: LogKeys, q: ConsistencyQuery) -> AnyTlogAnswer:
    tree = await _tree_size(conn, q.org_id)
    if not 0 <= q.first <= q.second <= tree:
        return TlogProblem(
            status=400, detail=f"need 0 <= from <= to <= {tree}, the log's size; got {q.first} and {q.second}"
        )
    ids = [*consistency_nodes(q.first, q.second), *root_nodes(q.first), *root_nodes(q.second)]
    have = await _lookup(conn, q.org_id, ids)
    first_root = root(have.__getitem__, q.first) if q.first else EMPTY_ROOT
    second_root = root(have.__getitem__, q.second) if q.second else EMPTY_ROOT
    return ConsistencyAnswer(
        origin=keys.origin(q.org_id),
        first=q.first,
        second=q.second,
        first_root=_b64(first_root),
        second_root=_b64(second_root),
        hashes=[_b64(h) for h in consistency_proof(have.__getitem__, q.first, q.second)] if q.first else [],
    )


async def _proof(conn: Connection, keys: LogKeys, q: ProofQuery) -> AnyTlogAnswer:
    if problem := await _receipt_problem(conn, q.org_id, q.receipt_hash, q.seq):
        return problem
    row = await tlog_store.best_checkpoint_for(conn, q.org_id, q.seq)
    if row is None:
        return TlogProblem(status=404, detail="no checkpoint covers this receipt yet; retry in a moment")
    size = int(row["size"])
    have = await _lookup(conn, q.org_id, inclusion_nodes(q.seq - 1, size))
    lines = await tlog_store.cosignature_lines(conn, q.org_id, [size])
    note = with_cosignatures(bytes(row["note"]), lines.get(size, []))
    package = build_tlog_proof(q.receipt_hash, q.seq - 1, inclusion_proof(have.__getitem__, q.seq - 1, size), note)
    return ProofAnswer(origin=keys.origin(q.org_id), leaf_index=q.seq - 1, tree_size=size, proof=package.decode())


def _page(limit: int) -> int:
    return max(1, min(limit, MAX_PAGE))


async def _receipts(conn: Connection, q: ReceiptsQuery) -> AnyTlogAnswer:
    rows = await tlog_store.receipts_after(conn, q.org_id, max(q.after, 0), _page(q.limit))
    return ReceiptsAnswer(
        receipts=[
            StoredReceiptRow(
                seq=r["seq"],
                receipt_hash=r["receipt_hash"],
                parent_hash=r["parent_hash"],
                payload=msgspec.Raw(bytes(r["payload"])),
                signature=msgspec.Raw(bytes(r["signature"])),
                minted_at=r["minted_at"].isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            )
            for r in rows
        ]
    )


async def _checkpoints(conn: Connection, keys: LogKeys, q: CheckpointsQuery) -> AnyTlogAnswer:
    rows = await tlog_store.checkpoints_after(conn, q.org_id, max(q.after, 0), _page(q.limit))
    return CheckpointsAnswer(
        origin=keys.origin(q.org_id), checkpoints=await _checkpoint_answers(conn, keys, q.org_id, rows)
    )

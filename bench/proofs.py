"""Proofs verified/s by the Python verifier (`defendable verify`'s core), one core.

Three figures, each the median of several repeats, by wall clock and by this process's CPU
time (the CPU figure is what a noisy shared machine cannot inflate):

- ``tlog_proofs_per_s``: `tlog_proof.verify_tlog_proof` alone — parse the C2SP tlog-proof,
  check the inclusion proof (17 hashes: a tree of 100,000 leaves), the log's signature and a
  2-of-2 witness policy (three Ed25519 verifications);
- ``share_documents_per_s``: `verification.verify_document` of a whole share document with a
  trust root (key set + witnesses): canonical form, hash, schema and receipt signature too,
  every line the CLI prints;
- ``export_receipts_per_s``: `verify_export.verify_chain_export` over an exported chain (hash,
  canonical form, parent link and signature of every receipt, Merkle roots of its checkpoints).
"""

from __future__ import annotations

import base64
import hashlib
import statistics
import time
from collections.abc import Callable
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from defendable_canonical.checkpoint import Checkpoint, sign_checkpoint
from defendable_canonical.cosignature import CosignatureSigner, cosign
from defendable_canonical.merkle import MerkleTree, leaf_hash
from defendable_canonical.model import Signature
from defendable_canonical.note import Ed25519Signer
from defendable_canonical.perf import sample_chain
from defendable_canonical.signature import b64url, key_id
from defendable_canonical.tlog_api import CheckpointAnswer, StoredReceiptRow, log_origin
from defendable_canonical.tlog_proof import build_tlog_proof, verify_tlog_proof
from defendable_canonical.verification import all_passed, verify_document
from defendable_canonical.verify_export import verify_chain_export
from defendable_canonical.verify_transparency import Trust, parse_key_set, witness_policy

PREFIX = "bench.example/log"
ORG = "org_bench"
T0 = 1_700_000_000


class Fixture:
    """One org's log: ``receipts`` signed receipts, the last one proven in a tree of ``tree_size``."""

    def __init__(self, receipts: int, tree_size: int) -> None:
        origin = log_origin(PREFIX, ORG)
        seed = hashlib.sha256(b"bench ledger").digest()
        key = Ed25519PrivateKey.from_private_bytes(seed)
        self.log = Ed25519Signer.from_seed(origin, seed)
        public = self.log.public_key
        witnesses = [CosignatureSigner.from_seed(f"w{i}.bench", hashlib.sha256(b"w%d" % i).digest()) for i in (0, 1)]
        self.chain = sample_chain(receipts, org_id=ORG)
        self.signatures = [
            Signature(
                kid=key_id(public), public_key=b64url(public), sig=b64url(key.sign(bytes.fromhex(r.receipt_hash[7:])))
            )
            for r in self.chain
        ]

        def checkpoint(tree: MerkleTree, size: int) -> bytes:
            note = sign_checkpoint(Checkpoint(origin, size, tree.root(size)), self.log, previous=None)
            for i, w in enumerate(witnesses):
                note = cosign(note, w, T0 + i)
            return note

        # The proven receipt is followed by made-up leaves: a realistic proof length, a small chain.
        target = self.chain[-1]
        index = target.seq - 1  # leaf seq - 1, as the verifier checks
        leaves = [hashlib.sha256(b"leaf %d" % i).digest() for i in range(tree_size)]
        leaves[index] = bytes.fromhex(target.receipt_hash[7:])
        tree = MerkleTree(leaf_hash(leaf) for leaf in leaves)
        self.receipt_hash, self.index = target.receipt_hash, index
        self.proof = build_tlog_proof(
            target.receipt_hash, index, tree.inclusion_proof(index), checkpoint(tree, tree_size)
        )
        self.proof_hashes = len(tree.inclusion_proof(index))
        keys = {"keys": [{"kid": key_id(public), "public_key": b64url(public)}], "origin_prefix": PREFIX}
        self.trust = Trust(
            keys=parse_key_set(msgspec.json.encode(keys)),
            witnesses=witness_policy([w.verifier().vkey for w in witnesses]),
            now=T0 + 3600,
        )
        self.origin = origin
        self.document = msgspec.json.decode(
            b'{"receipt_hash":"%s","payload":%s,"signature":%s,"transparency":%s}'
            % (
                target.receipt_hash.encode(),
                bytes(target.payload),
                msgspec.json.encode(self.signatures[-1]),
                msgspec.json.encode(
                    {"origin": origin, "leaf_index": index, "tree_size": tree_size, "proof": self.proof.decode()}
                ),
            )
        )
        # The exported chain: every receipt, then checkpoints every 100 receipts and at the end.
        chain_tree = MerkleTree(leaf_hash(bytes.fromhex(r.receipt_hash[7:])) for r in self.chain)
        sizes = sorted({*range(100, receipts + 1, 100), receipts})
        self.export = [
            msgspec.json.encode(
                StoredReceiptRow(
                    seq=r.seq,
                    receipt_hash=r.receipt_hash,
                    parent_hash=r.parent_hash,
                    payload=r.payload,
                    signature=msgspec.Raw(msgspec.json.encode(s)),
                    minted_at="2026-01-02T03:04:06Z",
                )
            )
            + b"\n"
            for r, s in zip(self.chain, self.signatures, strict=True)
        ] + [
            b'{"checkpoint":%s}\n'
            % msgspec.json.encode(
                CheckpointAnswer(
                    origin=origin,
                    size=size,
                    root_hash=base64.b64encode(chain_tree.root(size)).decode(),
                    checkpoint=checkpoint(chain_tree, size).decode(),
                )
            )
            for size in sizes
        ]
        self.checkpoints = len(sizes)


def rates(n: int, work: Callable[[], object], repeats: int) -> dict[str, float]:
    """Operations/s by wall clock and by CPU time, each the median of ``repeats`` runs of ``n``."""
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            work()
        wall.append(n / (time.perf_counter() - w0))
        cpu.append(n / max(time.process_time() - c0, 1e-9))
    return {"wall": round(statistics.median(wall), 1), "cpu": round(statistics.median(cpu), 1)}


def proofs(quick: bool) -> dict[str, Any]:
    tree_size = 10_000 if quick else 100_000
    receipts = 500 if quick else 5_000
    fx = Fixture(receipts, tree_size)
    assert all_passed(verify_document(fx.document, fx.trust)), "the bench document must verify"
    export_checks = verify_chain_export(fx.export, fx.trust)
    assert all_passed(export_checks), export_checks

    def one_proof() -> object:
        return verify_tlog_proof(
            fx.proof,
            receipt_hash=fx.receipt_hash,
            origin=fx.origin,
            log=fx.log.verifier(),
            witnesses=fx.trust.witnesses,
        )

    n = 300 if quick else 2_000
    tlog = rates(n, one_proof, 3)
    document = rates(n, lambda: verify_document(fx.document, fx.trust), 3)
    export = rates(1, lambda: verify_chain_export(fx.export, fx.trust), 3)
    return {
        "tree_size": tree_size,
        "proof_hashes": fx.proof_hashes,
        "witness_quorum": "2 of 2",
        "tlog_proofs_per_s": tlog,
        "share_documents_per_s": document,
        "export_receipts": receipts,
        "export_checkpoints": fx.checkpoints,
        "export_receipts_per_s": {k: round(v * receipts, 1) for k, v in export.items()},
        "reached": tlog["cpu"],  # proofs verified/s (Python verifier), by CPU time
    }

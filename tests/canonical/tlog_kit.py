"""An org's transparency log in memory, as the ledger keeps it: signed receipts, their Merkle tree,
checkpoints signed by the ledger key and cosigned by witnesses, and what a verifier is handed —
share documents, proof packages, the published key set and exported chains (docs/transparency.md)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from defendable_canonical.checkpoint import Checkpoint, sign_checkpoint
from defendable_canonical.cosignature import CosignatureSigner, cosign
from defendable_canonical.digest import GENESIS_HASH
from defendable_canonical.merkle import MerkleTree, receipt_leaf_hash
from defendable_canonical.model import EvidenceRef, Signature, StoredReceipt
from defendable_canonical.note import Ed25519Signer
from defendable_canonical.perf import typical_body
from defendable_canonical.receipt import build_payload, payload_bytes, receipt_hash
from defendable_canonical.signature import b64url, key_id
from defendable_canonical.tlog_api import CheckpointAnswer, StoredReceiptRow, log_origin
from defendable_canonical.tlog_proof import build_tlog_proof
from defendable_canonical.verify_transparency import Trust, parse_key_set, witness_policy

PREFIX = "defendable.example/log"
ORG = "org_42"
ORIGIN = log_origin(PREFIX, ORG)
SEED = hashlib.sha256(b"ledger key").digest()
WITNESSES = [CosignatureSigner.from_seed(f"w{i}.example", hashlib.sha256(b"w%d" % i).digest()) for i in range(3)]
T0 = 1_700_000_000
MINTED_AT = "2026-01-02T03:04:06Z"


def vkeys(cosigners: Sequence[CosignatureSigner]) -> list[str]:
    return [w.verifier().vkey for w in cosigners]


def chain(n: int, org_id: str, evidence: dict[str, bytes] | None) -> list[StoredReceipt]:
    refs = [
        EvidenceRef(
            id=f"ev_{hashlib.sha256(name.encode()).hexdigest()[:32]}",
            name=name,
            media_type="application/octet-stream",
            size=len(data),
            sha256="sha256:" + hashlib.sha256(data).hexdigest(),
        )
        for name, data in (evidence or {}).items()
    ]
    receipts, parent = [], str(GENESIS_HASH)
    for seq in range(1, n + 1):
        body = typical_body(seq, org_id)
        if evidence is not None:
            body = msgspec.structs.replace(body, evidence=refs)
        data = payload_bytes(build_payload(body, seq, parent, MINTED_AT))
        digest = receipt_hash(data)
        receipts.append(StoredReceipt(seq=seq, receipt_hash=digest, parent_hash=parent, payload=msgspec.Raw(data)))
        parent = digest
    return receipts


class Log:
    """``n`` receipts of one org, signed by the ledger key whose seed is ``seed``; each names
    the ``evidence`` files (name → bytes) when given, else three made-up ones."""

    def __init__(
        self,
        n: int,
        *,
        org_id: str = ORG,
        seed: bytes = SEED,
        prefix: str = PREFIX,
        evidence: dict[str, bytes] | None = None,
    ) -> None:
        self.org_id, self.prefix, self.origin = org_id, prefix, log_origin(prefix, org_id)
        self.key = Ed25519PrivateKey.from_private_bytes(seed)
        self.log = Ed25519Signer.from_seed(self.origin, seed)
        self.receipts: list[StoredReceipt] = chain(n, org_id, evidence)
        self.signatures = [self.sign(r.receipt_hash) for r in self.receipts]
        self.tree = MerkleTree(receipt_leaf_hash(r.receipt_hash) for r in self.receipts)

    def sign(self, receipt_hash: str) -> Signature:
        public = self.log.public_key
        sig = self.key.sign(bytes.fromhex(receipt_hash.removeprefix("sha256:")))
        return Signature(kid=key_id(public), public_key=b64url(public), sig=b64url(sig))

    # ------------------------------------------------------------------ the log

    def checkpoint(self, size: int, cosigners: Sequence[CosignatureSigner] = WITNESSES[:2]) -> bytes:
        note = sign_checkpoint(Checkpoint(self.origin, size, self.tree.root(size)), self.log, previous=None)
        for i, witness in enumerate(cosigners):
            note = cosign(note, witness, T0 + i)
        return note

    def proof(self, index: int, size: int | None = None, checkpoint: bytes | None = None) -> bytes:
        size = self.tree.size if size is None else size
        return build_tlog_proof(
            self.receipts[index].receipt_hash,
            index,
            self.tree.inclusion_proof(index, size),
            checkpoint or self.checkpoint(size),
        )

    # ------------------------------------------------------------------ what a verifier gets

    def key_set(self, *, prefix: bool = True, extra: Sequence[bytes] = ()) -> bytes:
        """The published key set: this ledger key (active) and any ``extra`` raw keys (retired)."""
        keys = [{"kid": key_id(p), "alg": "Ed25519", "public_key": b64url(p), "status": "retired"} for p in extra]
        public = self.log.public_key
        keys.append({"kid": key_id(public), "alg": "Ed25519", "public_key": b64url(public), "status": "active"})
        body: dict[str, Any] = {"keys": keys}
        if prefix:
            body["origin_prefix"] = self.prefix
        return msgspec.json.encode(body)

    def trust(self, quorum: int | None = None, cosigners: Sequence[CosignatureSigner] = WITNESSES[:2]) -> Trust:
        return Trust(
            keys=parse_key_set(self.key_set()),
            source="the test key set",
            name="the test key set",
            witnesses=witness_policy(vkeys(cosigners), quorum),
            now=T0 + 3600,
        )

    def receipt_document(self, index: int) -> bytes:
        """``GET /receipts/{hash}``'s core, as stored: the canonical payload bytes and the signature."""
        r = self.receipts[index]
        return b'{"receipt_hash":"%s","payload":%s,"signature":%s}' % (
            r.receipt_hash.encode(),
            bytes(r.payload),
            msgspec.json.encode(self.signatures[index]),
        )

    def share_document(self, index: int, size: int | None = None, proof: bytes | None = None) -> bytes:
        """``GET /share/{token}``: the receipt document with its `transparency` member."""
        size = self.tree.size if size is None else size
        proof = proof or self.proof(index, size)
        member = msgspec.json.encode(
            {"origin": self.origin, "leaf_index": index, "tree_size": size, "proof": proof.decode()}
        )
        return self.receipt_document(index)[:-1] + b',"transparency":' + member + b"}"

    def package(self, where: Path, index: int, *, evidence: dict[str, bytes] | None = None) -> Path:
        """A proof package directory: receipt.json, proof.tlog, keys.json, checkpoint.txt, evidence/."""
        where.mkdir(parents=True, exist_ok=True)
        proof = self.proof(index)
        (where / "receipt.json").write_bytes(self.receipt_document(index))
        (where / "proof.tlog").write_bytes(proof)
        (where / "keys.json").write_bytes(self.key_set())
        (where / "checkpoint.txt").write_bytes(proof.partition(b"\n\n")[2])
        for name, data in (evidence or {}).items():
            (where / "evidence" / name).parent.mkdir(parents=True, exist_ok=True)
            (where / "evidence" / name).write_bytes(data)
        return where

    def zip_package(self, directory: Path, target: Path, folder: str = "") -> Path:
        with zipfile.ZipFile(target, "w") as zf:
            for f in sorted(directory.rglob("*")):
                if f.is_file():
                    zf.write(f, folder + f.relative_to(directory).as_posix())
        return target

    def export(self, sizes: Sequence[int] | None = None, receipts: int | None = None) -> list[bytes]:
        """``GET /ledger/export``: the receipts (the first ``receipts``), then checkpoints at ``sizes``."""
        count = len(self.receipts) if receipts is None else receipts
        lines = [
            msgspec.json.encode(
                StoredReceiptRow(
                    seq=r.seq,
                    receipt_hash=r.receipt_hash,
                    parent_hash=r.parent_hash,
                    payload=r.payload,
                    signature=msgspec.Raw(msgspec.json.encode(sig)),
                    minted_at=MINTED_AT,
                )
            )
            + b"\n"
            for r, sig in zip(self.receipts[:count], self.signatures[:count], strict=True)
        ]
        for size in sizes if sizes is not None else [len(self.receipts)]:
            note = self.checkpoint(size)
            answer = CheckpointAnswer(
                origin=self.origin,
                size=size,
                root_hash=base64.b64encode(self.tree.root(size)).decode(),
                checkpoint=note.decode(),
            )
            lines.append(b'{"checkpoint":' + msgspec.json.encode(answer) + b"}\n")
        return lines


def evidence_of(log: Log, index: int) -> list[dict[str, Any]]:
    payload: dict[str, Any] = msgspec.json.decode(bytes(log.receipts[index].payload))
    evidence: list[dict[str, Any]] = payload["evidence"]
    return evidence

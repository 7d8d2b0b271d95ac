"""The log a witness faces in these tests, played by the test: honest or hostile, on real NATS.

It answers `svc.ledger.keys` and `svc.ledger.tlog` (consistency questions) as the ledger
would, from in-memory Merkle trees, and publishes CheckpointSigned into the real RUNS
stream. Hostility is explicit: sign a checkpoint of any tree (a fork, a rewritten or cut
history), serve proofs from any tree, or with another key.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from defendable_canonical.checkpoint import Checkpoint, format_checkpoint
from defendable_canonical.events import AnyEvent, CheckpointSigned, derive_id, encode, event_decoder, tree_run_id
from defendable_canonical.merkle import MerkleTree, receipt_leaf_hash
from defendable_canonical.note import Ed25519Signer, sign_note
from defendable_canonical.signature import b64url
from defendable_canonical.subjects import LEDGER_KEYS, LEDGER_TLOG, RUNS_STREAM, event_subject
from defendable_canonical.tlog_api import (
    ConsistencyAnswer,
    ConsistencyQuery,
    TlogProblem,
    log_origin,
    query_decoder,
)

PREFIX = "test.local/log"


def receipt_hash() -> str:
    return "sha256:" + secrets.token_hex(32)


class OrgLog:
    """One org's log: `tree` is what it serves proofs from; any tree may be signed."""

    def __init__(self, org_id: str, seed: bytes) -> None:
        self.org_id = org_id
        self.origin = log_origin(PREFIX, org_id)
        self.signer = Ed25519Signer.from_seed(self.origin, seed)
        self.tree = MerkleTree()
        self.receipts: list[str] = []
        self.proof: Callable[[int, int], list[bytes]] | None = None  # a hostile proof, else the tree's

    def grow(self, count: int, tree: MerkleTree | None = None) -> None:
        """Append `count` receipts to `tree` (default: the served tree)."""
        for _ in range(count):
            h = receipt_hash()
            (tree or self.tree).append(receipt_leaf_hash(h))
            if tree is None:
                self.receipts.append(h)

    def checkpoint(
        self, size: int | None = None, tree: MerkleTree | None = None, signer: Ed25519Signer | None = None
    ) -> bytes:
        tree = tree or self.tree
        size = tree.size if size is None else size
        text = format_checkpoint(Checkpoint(self.origin, size, tree.root(size)))
        return sign_note(text, [signer or self.signer])


class TestLog:
    """The responder for every org's log, and a publisher of their checkpoints."""

    __test__ = False  # not a test class

    def __init__(self, nc: NatsClient) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.seed = secrets.token_bytes(32)
        self.public = Ed25519Signer.from_seed("k", self.seed).public_key  # the key is the same whatever its name
        self.orgs: dict[str, OrgLog] = {}
        self.delay_s = 0.0  # an honest but slow log
        self.outage = False  # answers every question with a problem
        self.questions: list[ConsistencyQuery] = []
        self.key_requests = 0
        self._subs: list[Subscription] = []

    async def start(self) -> None:
        self._subs = [
            await self.nc.subscribe(LEDGER_KEYS, cb=self._on_keys),
            await self.nc.subscribe(LEDGER_TLOG, cb=self._on_tlog),
        ]
        await self.nc.flush()

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()

    def org(self) -> OrgLog:
        log = OrgLog("org_" + secrets.token_hex(6), self.seed)
        self.orgs[log.org_id] = log
        return log

    async def _on_keys(self, msg: Msg) -> None:
        self.key_requests += 1
        body = {
            "keys": [
                {
                    "kid": "test",
                    "alg": "Ed25519",
                    "public_key": b64url(self.public),
                    "status": "active",
                    "first_used_at": datetime.now(UTC).isoformat(),
                }
            ]
        }
        await msg.respond(msgspec.json.encode(body))

    async def _on_tlog(self, msg: Msg) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        query = query_decoder.decode(msg.data)
        log = self.orgs.get(query.org_id)
        if self.outage:
            await msg.respond(msgspec.json.encode(TlogProblem(status=503, detail="the ledger's database is down")))
            return
        if not isinstance(query, ConsistencyQuery) or log is None:
            await msg.respond(msgspec.json.encode(TlogProblem(status=404, detail="no such log")))
            return
        self.questions.append(query)
        try:
            hashes = (log.proof or log.tree.consistency_proof)(query.first, query.second)
            answer: ConsistencyAnswer | TlogProblem = ConsistencyAnswer(
                origin=log.origin,
                first=query.first,
                second=query.second,
                first_root=_b64(log.tree.root(query.first)),
                second_root=_b64(log.tree.root(query.second)),
                hashes=[_b64(h) for h in hashes],
            )
        except ValueError as exc:
            answer = TlogProblem(status=400, detail=str(exc))
        await msg.respond(msgspec.json.encode(answer))

    async def publish(self, log: OrgLog, note: bytes, *, copy: int = 0) -> CheckpointSigned:
        """Publish a CheckpointSigned of `note`; `copy` > 0 stores the same event again (a redelivery
        JetStream's duplicate window would otherwise drop)."""
        text = note.decode()
        lines = text.split("\n")
        size, root = int(lines[1]), lines[2]
        event = CheckpointSigned(
            event_id=derive_id("ev", f"{log.org_id}/{size}", "CheckpointSigned", hashlib.sha256(note).hexdigest()),
            org_id=log.org_id,
            run_id=tree_run_id(size),
            occurred_at=datetime.now(UTC).isoformat(),
            producer="ledger",
            origin=log.origin,
            size=size,
            root_hash=root,
            checkpoint=text,
        )
        msg_id = event.event_id if not copy else f"{event.event_id}-copy{copy}"
        await self.js.publish(event_subject(event), encode(event), stream=RUNS_STREAM, headers={"Nats-Msg-Id": msg_id})
        return event

    async def events(self, org_id: str) -> list[AnyEvent]:
        """Every (decodable) event stored in RUNS for this org, in stream order."""
        sub = await self.js.pull_subscribe(f"run.*.{org_id}.*", stream=RUNS_STREAM)
        found: list[AnyEvent] = []
        try:
            while True:
                try:
                    batch = await sub.fetch(256, timeout=0.3)
                except TimeoutError:
                    return found
                for m in batch:
                    with contextlib.suppress(msgspec.DecodeError):  # what a test published as garbage
                        found.append(event_decoder.decode(m.data))
        finally:
            await sub.unsubscribe()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()

"""Ledger: the single writer of each org's chain.

Plan for one fetched batch of Approved events:
1. decode each; an undecodable one is dead-lettered on its own;
2. group by org; per org, in one transaction: lock the head row, skip runs
   already minted (redelivery), chain the rest after the head, COPY them in,
   move the head (StaleHead if it moved: retried);
3. after commit, publish Minted for every approval in the batch as one atomic
   JetStream batch — re-publishing the stored receipt for redelivered ones,
   under the same event id;
4. ack the batch.
Steps 2-4 of one batch run in the background while the next batch is fetched,
at most IN_FLIGHT at once: the next batch's database work then overlaps this
one's publish and acks (the head lock still orders their chains).
Verification of an org's chain is a request-reply question answered here, over
this service's own table (DESIGN.md §2).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import secrets
from collections import defaultdict
from datetime import UTC, datetime

import msgspec
from asyncpg import Pool
from faststream import AckPolicy, FastStream
from faststream.nats import PullSub
from faststream.nats.annotations import NatsMessage
from nats.aio.msg import Msg

from defendable_canonical.chain import ChainVerifier
from defendable_canonical.events import Approved, Minted, event_decoder
from defendable_canonical.subjects import LEDGER_VERIFY, check_token, event_filter
from defendable_runtime import db
from defendable_runtime.messaging import (
    RUNS,
    NatsBatchMessage,
    Poison,
    consumer,
    dead_letter,
    ensure_streams,
    make_broker,
    publish_events,
    settle,
)
from defendable_runtime.settings import from_env

from . import store
from .keys import Signer
from .mint import MintedReceipt, chain_batch

log = logging.getLogger("defendable.ledger")
SERVICE = "ledger"
BATCH = int(os.environ.get("LEDGER_BATCH", "1000"))
# How long one fetch may gather a batch: longer batches amortise the head lock and
# the transaction; shorter ones cut approve→minted latency at low load.
BATCH_WINDOW_S = float(os.environ.get("LEDGER_BATCH_WINDOW_S", "0.02"))
IN_FLIGHT = 2  # fetched batches being minted at once

settings = from_env()
broker = make_broker(settings.nats_url)
app = FastStream(broker)


class Resources:
    pool: Pool
    signer: Signer
    slots: asyncio.Semaphore
    minting: set[asyncio.Task[bool]]


res = Resources()


@app.on_startup
async def open_resources() -> None:
    res.pool = await db.create_pool(settings.database_url, max_size=8)
    await db.migrate(res.pool, store.SCHEMA, store.MIGRATIONS)
    res.signer = await load_signer()
    res.slots = asyncio.Semaphore(IN_FLIGHT)
    res.minting = set()
    await ensure_streams(broker)  # before any consumer starts


@app.on_shutdown
async def close_resources() -> None:
    await asyncio.gather(*res.minting, return_exceptions=True)  # finish what was fetched
    await res.pool.close()


async def load_signer() -> Signer:
    """LEDGER_SIGNING_KEY (base64 32-byte Ed25519 seed) in production; else a stored local key."""
    configured = os.environ.get("LEDGER_SIGNING_KEY")
    if configured:
        return Signer.from_seed(base64.b64decode(configured))
    fresh = Signer.generate()
    async with res.pool.acquire() as conn:
        return Signer.from_seed(await store.load_or_create_seed(conn, fresh.seed(), fresh.kid))


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@broker.subscriber(
    event_filter("approved"),
    stream=RUNS,
    durable="ledger",
    config=consumer("ledger", max_ack_pending=20_000),
    pull_sub=PullSub(batch_size=BATCH, timeout=BATCH_WINDOW_S, batch=True),
    ack_policy=AckPolicy.MANUAL,
)
async def on_approved(msg: NatsBatchMessage) -> None:
    raws: list[Msg] = list(msg.raw_message)
    approvals: list[tuple[Msg, Approved]] = []
    for raw in raws:
        try:
            event = event_decoder.decode(raw.data)
            if not isinstance(event, Approved):
                raise Poison(f"expected Approved on {raw.subject}, got {type(event).__name__}")
            check_token(event.org_id, "org_id")
            if event.receipt.org_id != event.org_id or event.receipt.run_id != event.run_id:
                raise Poison(f"approval {event.event_id} names another org or run in its receipt")
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError, Poison) as exc:
            await dead_letter(broker, SERVICE, raw, f"unusable approval: {exc}")
            await raw.term()
            continue
        approvals.append((raw, event))
    if not approvals:
        return
    await res.slots.acquire()
    res.minting.add(
        task := asyncio.create_task(
            settle(
                broker,
                SERVICE,
                [raw for raw, _ in approvals],
                lambda: mint([a for _, a in approvals]),
                infra_errors=(*db.INFRA_ERRORS, store.StaleHead),
            )
        )
    )
    task.add_done_callback(_minted)


def _minted(task: asyncio.Task[bool]) -> None:
    res.minting.discard(task)
    res.slots.release()
    if not task.cancelled() and task.exception() is not None:  # settle handles failures; this is a bug
        log.error("minting a batch failed outside settlement", exc_info=task.exception())


async def mint(approvals: list[Approved]) -> None:
    by_org: dict[str, list[Approved]] = defaultdict(list)
    for approved in approvals:
        by_org[approved.org_id].append(approved)
    minted: list[MintedReceipt] = []
    for org_id, batch in by_org.items():
        minted += await mint_org(org_id, batch)
    now = utc_now()
    await publish_events(broker, [minted_event(r, now) for r in minted])  # one atomic batch, one fsync


async def mint_org(org_id: str, approvals: list[Approved]) -> list[MintedReceipt]:
    async with res.pool.acquire() as conn, conn.transaction():
        head_seq, head_hash = await store.lock_head(conn, org_id)
        existing = await store.minted_for(conn, org_id, [a.run_id for a in approvals])
        fresh: list[Approved] = []
        seen = set(existing)
        for approved in approvals:  # one receipt per run, whatever was redelivered
            if approved.run_id not in seen:
                seen.add(approved.run_id)
                fresh.append(approved)
        tokens = [secrets.token_urlsafe(24) for _ in fresh]  # 192 bits: unguessable share links
        new = chain_batch(head_seq, head_hash, fresh, utc_now(), res.signer.sign_all, tokens)
        await store.append(conn, org_id, head_seq, new)
    return [*existing.values(), *new]


def minted_event(r: MintedReceipt, now: str) -> Minted:
    return Minted(
        event_id=r.minted_event_id,
        org_id=r.org_id,
        run_id=r.run_id,
        occurred_at=now,
        producer=SERVICE,
        causation_id=r.approval_event_id,
        seq=r.seq,
        receipt_hash=r.receipt_hash,
        parent_hash=r.parent_hash,
        payload=msgspec.Raw(r.payload),
        signature=r.signature,
        share_token=r.share_token,
    )


class VerifyRequest(msgspec.Struct, frozen=True):
    org_id: str


@broker.subscriber(LEDGER_VERIFY, queue="ledger")
async def on_verify(msg: NatsMessage) -> bytes:
    """Answer `GET /ledger/verify` from the ledger's own table: recompute every link."""
    try:
        request = msgspec.json.decode(msg.body, type=VerifyRequest)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return msgspec.json.encode({"error": f"bad verify request: {exc}"})
    # Chunked: a long chain is verified without holding it in memory, on one snapshot.
    verifier = ChainVerifier()
    async with res.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        async for chunk in store.stream_chain(conn, request.org_id):
            verifier.feed(chunk)
    return msgspec.json.encode(verifier.report())

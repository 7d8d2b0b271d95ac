"""Ledger: the single writer of each org's chain.

Four events ask for a receipt, all on the org's one chain: Approved (eval and lane
receipts), CookApproved (cook receipts), IncidentAcknowledged (incident receipts) and
LaneUnlocked (unlock receipts). One durable consumer takes all four subjects, in stream
order, and each event becomes a `mint.MintRequest`; from there on the kinds are alike.
"Approvals" below means any of them.

Plan for the approvals fetched from JetStream:
1. decode each into a mint request; an undecodable or contradictory one is dead-lettered
   on its own; the rest wait in one queue (the consumer stops fetching while BACKLOG of
   them, or BACKLOG_BYTES of their messages, wait);
2. the minter takes everything waiting, up to MINT_BATCH approvals and MINT_BATCH_BYTES of
   their messages (a 10,000-item cook's approval is ~1.8-4.2 MB), and per org, in one
   transaction: locks the head row, skips runs already minted (redelivery), chains
   the rest after the head, COPYs them in, moves the head (StaleHead if it moved:
   retried);
3. after commit, Minted for every approval of the batch goes out as atomic JetStream
   batches (re-publishing the stored receipt for redelivered ones, under the same
   event id), then the batch is acked.
The minter takes the next batch as soon as this one has committed, so one batch's
database work overlaps the previous one's publish and acks (at most PUBLISHING
committed batches at once). Taking what waits rather than what one fetch returned
keeps a fetch that came back short from costing a transaction and a publish of
its own (measured: fetches of 1-300 approvals between full ones).
Fetched approvals are held (`progress`) from fetch until settled, through the queue: a
ledger that dies hands them to the next one after the short ack wait.
Verification of an org's chain is a request-reply question answered here, over
this service's own table (DESIGN.md §2).

Environment (besides the shared settings): LEDGER_SIGNING_KEY / LEDGER_SIGNING_KEY_FILE (the
key, `load_signer`), LEDGER_LOG_ORIGIN (the log origin prefix), LEDGER_BATCH,
LEDGER_BATCH_WINDOW_S and LEDGER_MINT_BATCH (batching), and LEDGER_TLOG: "on" by default;
"off" is a benchmarking knob only, never for production — mints skip the transparency log
(no Merkle nodes, no signed checkpoints; receipts are still signed) and the ledger logs a
warning at startup (`tlog.switched_on`, read once below; used by bench/tlog.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import secrets
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from asyncpg import Pool
from faststream import FastStream
from faststream.nats import PullSub
from faststream.nats.annotations import NatsMessage
from nats.aio.msg import Msg

from defendable_canonical.chain import ChainVerifier
from defendable_canonical.events import CheckpointCosigned, Minted, event_decoder
from defendable_canonical.signature import b64url
from defendable_canonical.subjects import LEDGER_KEYS, LEDGER_TLOG, LEDGER_VERIFY, check_token, event_filter
from defendable_canonical.tlog_api import DEFAULT_ORIGIN_PREFIX, TlogProblem, query_decoder
from defendable_runtime import db
from defendable_runtime.messaging import (
    RUNS,
    NatsBatchMessage,
    Poison,
    consumer,
    dead_letter,
    durable_subscriber,
    ensure_streams,
    make_broker,
    publish_events,
    settle,
)
from defendable_runtime.progress import hold, release
from defendable_runtime.settings import from_env

from . import store, tlog, tlog_store
from .keys import Signer
from .mint import (
    MINT_EVENT_NAMES,
    MINT_EVENTS,
    MintedReceipt,
    MintRequest,
    Unmintable,
    batch_count,
    chain_batch,
    mint_request,
)

log = logging.getLogger("defendable.ledger")
SERVICE = "ledger"
BATCH = int(os.environ.get("LEDGER_BATCH", "1000"))
# How long one fetch may gather a batch: longer batches amortise the head lock and
# the transaction; shorter ones cut approve→minted latency at low load.
BATCH_WINDOW_S = float(os.environ.get("LEDGER_BATCH_WINDOW_S", "0.02"))
MINT_BATCH = int(os.environ.get("LEDGER_MINT_BATCH", "2000"))  # approvals per transaction
BACKLOG = 2 * MINT_BATCH  # approvals waiting for the minter before the consumer stops fetching
MINT_BATCH_BYTES = 64 * 1024 * 1024  # of approval messages per transaction: ~15 of the largest cooks
BACKLOG_BYTES = 2 * MINT_BATCH_BYTES
PUBLISHING = 2  # committed batches publishing and acking while the next one is minted
# Inside every checkpoint: set once, before the first receipt (docs/transparency.md).
LOG_ORIGIN_PREFIX = os.environ.get("LEDGER_LOG_ORIGIN", DEFAULT_ORIGIN_PREFIX)
# LEDGER_TLOG=off: benchmarking only (bench/tlog.py), never in production: no log is kept.
TLOG_ON = tlog.switched_on(os.environ)

settings = from_env()
broker = make_broker(settings.nats_url)
app = FastStream(broker)


class Resources:
    pool: Pool
    signer: Signer
    log_keys: tlog.LogKeys
    waiting: list[tuple[Msg, MintRequest]]  # decoded approvals, in fetch order, not yet taken
    waiting_bytes: int  # the size of their messages
    arrived: asyncio.Event  # set when approvals join `waiting`
    room: asyncio.Event  # set while fewer than BACKLOG approvals (and BACKLOG_BYTES) wait
    publishing: asyncio.Semaphore
    minting: set[asyncio.Task[bool]]
    minter: asyncio.Task[None]
    closing: bool


res = Resources()


@app.on_startup
async def open_resources() -> None:
    res.pool = await db.create_pool(settings.database_url, max_size=8)
    await db.migrate(res.pool, store.SCHEMA, store.MIGRATIONS)
    res.signer = await load_signer()
    res.log_keys = tlog.LogKeys(res.signer, LOG_ORIGIN_PREFIX)
    await ensure_streams(broker)  # before any consumer starts, and connects: the backfill publishes
    if TLOG_ON:
        await backfill_logs()
    else:
        log.warning(
            "LEDGER_TLOG=off: BENCHMARKING ONLY, NEVER IN PRODUCTION. Receipts are minted without "
            "the transparency log: no Merkle nodes, no signed checkpoints, no proofs for them "
            "until a ledger started with the log on backfills it."
        )
    res.waiting, res.waiting_bytes, res.arrived, res.room = [], 0, asyncio.Event(), asyncio.Event()
    res.room.set()
    res.publishing = asyncio.Semaphore(PUBLISHING)
    res.minting, res.closing = set(), False
    res.minter = asyncio.create_task(run_minter())
    res.minter.add_done_callback(_minter_ended)


@app.on_shutdown
async def close_resources() -> None:
    # FastStream stops the consumer only after this hook: from here on it hands back.
    res.closing = True
    res.minter.cancel()
    await asyncio.gather(res.minter, *res.minting, return_exceptions=True)  # finish what was taken
    waiting, res.waiting, res.waiting_bytes = res.waiting, [], 0
    await hand_back([raw for raw, _ in waiting])  # what JetStream sent later: `durable_subscriber` naks it
    res.room.set()  # a consumer held by backpressure now holds until the broker stops it


@app.after_shutdown
async def close_pool() -> None:
    await res.pool.close()  # once the broker stopped: a verify request may still be running


async def hand_back(raws: list[Msg]) -> None:
    """Approvals fetched but not minted go back to JetStream now, for the next ledger, rather
    than after the ack wait. (A crash leaves them unacked; they return after the ack wait.)"""
    if not raws:
        return
    log.info("handing back %d approvals not yet minted", len(raws))
    release(raws)
    with contextlib.suppress(Exception):  # NATS itself may be going away
        for raw in raws:
            await raw.nak()
        await broker.config.connection_state.connection.flush()  # before the connection closes


async def backfill_logs() -> None:
    """Give every org whose receipts predate its log a log up to its head (once, at startup)."""
    async with res.pool.acquire() as conn:
        behind = await tlog_store.orgs_needing_backfill(conn)
    for org_id, _ in behind:
        async with res.pool.acquire() as conn, conn.transaction():
            head_seq, _ = await store.lock_head(conn, org_id)
            checkpoint = await tlog.backfill(conn, res.log_keys, org_id, head_seq)
        log.info("org %s: log built up to its head, size %d", org_id, checkpoint.size)
        await publish_events(broker, [tlog.checkpoint_event(checkpoint, utc_now())])


async def load_signer() -> Signer:
    """The signing key, published in ledger.public_keys before its first signature.

    Production names it: LEDGER_SIGNING_KEY (base64 32-byte Ed25519 seed) or
    LEDGER_SIGNING_KEY_FILE (a file holding that base64). Locally a key is generated once and
    stored. Rotating means starting with another key: the old one stays published, retired.
    """
    signer = await _configured_signer()
    async with res.pool.acquire() as conn:
        if signer is None:
            fresh = Signer.generate()
            signer = Signer.from_seed(await store.load_or_create_seed(conn, fresh.seed(), fresh.kid))
        await store.record_public_key(conn, signer.kid, b64url(signer.public))
    return signer


async def _configured_signer() -> Signer | None:
    configured = os.environ.get("LEDGER_SIGNING_KEY")
    if not configured and (path := os.environ.get("LEDGER_SIGNING_KEY_FILE")):
        configured = (await asyncio.to_thread(Path(path).read_text)).strip()
    if not configured:
        return None
    seed = base64.b64decode(configured, validate=True)
    if len(seed) != 32:
        raise SystemExit(f"the configured signing key is {len(seed)} bytes; an Ed25519 seed is 32 (base64)")
    return Signer.from_seed(seed)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# One consumer over the four subjects (JetStream filter_subjects): one fetch loop, stream
# order across kinds, and the durable "ledger" that approvals have always used.
approvals_in = durable_subscriber(
    broker,
    [event_filter(name) for name in MINT_EVENT_NAMES],
    RUNS,
    consumer("ledger", max_ack_pending=20_000),
    PullSub(batch_size=BATCH, timeout=BATCH_WINDOW_S, batch=True),
)


@approvals_in
async def on_approved(msg: NatsBatchMessage) -> None:
    raws: list[Msg] = list(msg.raw_message)
    hold(raws)  # until settled, beyond this handler: the minter's queue holds them
    approvals: list[tuple[Msg, MintRequest]] = []
    for raw in raws:
        try:
            event = event_decoder.decode(raw.data)
            if not isinstance(event, MINT_EVENTS):
                raise Poison(f"expected a mint request on {raw.subject}, got {type(event).__name__}")
            check_token(event.org_id, "org_id")
            request = mint_request(event)
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError, Unmintable, Poison) as exc:
            await dead_letter(broker, SERVICE, raw, f"unusable approval: {exc}")
            await raw.term()
            release([raw])
            continue
        approvals.append((raw, request))
    if not approvals:
        return
    if res.closing:
        await hand_back([raw for raw, _ in approvals])
        await held_until_stopped()
        return
    res.waiting += approvals
    res.waiting_bytes += sum(len(raw.data) for raw, _ in approvals)
    res.arrived.set()
    while not room_left():  # backpressure: stop fetching until the minter catches up
        res.room.clear()
        await res.room.wait()
        if res.closing:
            await held_until_stopped()
            return


def room_left() -> bool:
    return len(res.waiting) < BACKLOG and res.waiting_bytes < BACKLOG_BYTES


async def held_until_stopped() -> None:
    """While shutting down, keep the consumer from fetching again (what a fetch takes while the
    broker stops would wait out the ack wait) until FastStream stops it, which waits for this;
    what arrives for the last pull meanwhile is naked once it stopped (`durable_subscriber`)."""
    while approvals_in.running:  # noqa: ASYNC110  # FastStream exposes a flag, not an event
        await asyncio.sleep(0.01)


async def run_minter() -> None:
    """Take what waits, mint it, and take the next batch once this one has committed."""
    while True:
        await res.arrived.wait()
        res.arrived.clear()
        while res.waiting:
            await res.publishing.acquire()  # approvals that arrive meanwhile join this batch
            count = batch_count([len(raw.data) for raw, _ in res.waiting[:MINT_BATCH]], MINT_BATCH_BYTES)
            taken, res.waiting = res.waiting[:count], res.waiting[count:]
            res.waiting_bytes -= sum(len(raw.data) for raw, _ in taken)
            if room_left():
                res.room.set()
            committed, task = start_minting(taken)
            committed_wait = asyncio.ensure_future(committed.wait())
            await asyncio.wait({committed_wait, task}, return_when=asyncio.FIRST_COMPLETED)
            committed_wait.cancel()


def _minter_ended(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:  # a bug: nothing would be minted
        log.critical("the minter stopped; exiting so that a fresh ledger takes over", exc_info=task.exception())
        os._exit(70)


# Waited out and retried, never dead-lettered. A log refusal (a checkpoint that would not
# extend the last one signed: the node table was edited) is logged critical in mint_org.
MINT_OUTAGES = (*db.INFRA_ERRORS, store.StaleHead, *tlog.LOG_REFUSALS)


def start_minting(taken: list[tuple[Msg, MintRequest]]) -> tuple[asyncio.Event, asyncio.Task[bool]]:
    """Mint and settle `taken` in the background; the event is set once its transactions are over."""
    committed = asyncio.Event()
    approvals, raws = [request for _, request in taken], [raw for raw, _ in taken]
    work = settle(broker, SERVICE, raws, lambda: mint(approvals, committed), infra_errors=MINT_OUTAGES)
    res.minting.add(task := asyncio.create_task(work))
    task.add_done_callback(_settled)
    return committed, task


def _settled(task: asyncio.Task[bool]) -> None:
    res.minting.discard(task)
    res.publishing.release()
    if not task.cancelled() and task.exception() is not None:  # settle handles failures; this is a bug
        log.error("minting a batch failed outside settlement", exc_info=task.exception())


async def mint(approvals: list[MintRequest], committed: asyncio.Event) -> None:
    """Chain and commit per org (`committed` is set once that is over, however it ended),
    then publish Minted for the whole batch."""
    by_org: dict[str, list[MintRequest]] = defaultdict(list)
    for request in approvals:
        by_org[request.org_id].append(request)
    minted: list[MintedReceipt] = []
    checkpoints: list[tlog.SignedCheckpoint] = []
    try:
        for org_id, batch in by_org.items():
            receipts, checkpoint = await mint_org(org_id, batch)
            minted += receipts
            if checkpoint is not None:
                checkpoints.append(checkpoint)
    finally:
        committed.set()
    now = utc_now()
    events = [*(minted_event(r, now) for r in minted), *(tlog.checkpoint_event(c, now) for c in checkpoints)]
    await publish_events(broker, events)  # atomic batches: an fsync each


async def mint_org(
    org_id: str, approvals: list[MintRequest]
) -> tuple[list[MintedReceipt], tlog.SignedCheckpoint | None]:
    """Chain the batch and sign the log's checkpoint after it, in one transaction. A batch of
    redeliveries only re-publishes the latest checkpoint (its event id dedups the copy)."""
    try:
        return await _mint_org(org_id, approvals)
    except tlog.LOG_REFUSALS as exc:
        log.critical("org %s: refusing to sign its next checkpoint, nothing minted: %s", org_id, exc)
        raise


async def _mint_org(
    org_id: str, approvals: list[MintRequest]
) -> tuple[list[MintedReceipt], tlog.SignedCheckpoint | None]:
    async with res.pool.acquire() as conn, conn.transaction():
        head_seq, head_hash = await store.lock_head(conn, org_id)
        existing = await store.minted_for(conn, org_id, [a.run_id for a in approvals])
        fresh: list[MintRequest] = []
        seen = set(existing)
        for request in approvals:  # one receipt per run (cook, incident, unlock), whatever was redelivered
            if request.run_id not in seen:
                seen.add(request.run_id)
                fresh.append(request)
        tokens = [secrets.token_urlsafe(24) for _ in fresh]  # 192 bits: unguessable share links
        new = chain_batch(head_seq, head_hash, fresh, utc_now(), res.signer.sign_all, tokens)
        await store.append(conn, org_id, head_seq, new)
        checkpoint: tlog.SignedCheckpoint | None
        if not TLOG_ON:  # LEDGER_TLOG=off, benchmarking only: nothing added to the log
            checkpoint = None
        elif new:
            checkpoint = await tlog.extend_log(conn, res.log_keys, org_id, head_seq, [r.receipt_hash for r in new])
        else:
            checkpoint = await tlog.latest_signed(conn, res.log_keys, org_id)
    return [*existing.values(), *new], checkpoint


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


@broker.subscriber(LEDGER_KEYS, queue="ledger")
async def on_keys(msg: NatsMessage) -> bytes:
    """The published key set: the key in use is active, every earlier one retired (still valid
    for what it signed). Replicas share one table, so any replica answers the same."""
    async with res.pool.acquire() as conn:
        rows = await store.public_keys(conn)
        seen = await tlog_store.witnesses(conn)
    active = res.signer.kid
    return msgspec.json.encode(
        {
            "origin_prefix": LOG_ORIGIN_PREFIX,
            # Witnesses that cosigned here, for display: a verifier pins the ones it trusts.
            "witnesses": [{"name": w["witness"], "vkey": w["vkey"]} for w in seen],
            "keys": [
                {
                    "kid": row["kid"],
                    "alg": "Ed25519",
                    "public_key": row["public_key"],
                    "status": "active" if row["kid"] == active else "retired",
                    "first_used_at": row["first_used_at"].isoformat(),
                }
                for row in rows
            ],
        }
    )


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


@broker.subscriber(LEDGER_TLOG, queue="ledger")
async def on_tlog(msg: NatsMessage) -> bytes:
    """Checkpoints and proofs of an org's log (tlog_api.py), on one read-only snapshot."""
    try:
        query = query_decoder.decode(msg.body)
        check_token(query.org_id, "org_id")
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as exc:
        return msgspec.json.encode(TlogProblem(status=400, detail=f"bad log question: {exc}"))
    async with res.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        try:
            answer = await tlog.answer(conn, res.log_keys, query)
        except tlog.LOG_REFUSALS as exc:  # a node the log must have is gone: say so, loudly
            log.critical("org %s: cannot answer %s: %s", query.org_id, type(query).__name__, exc)
            answer = TlogProblem(status=500, detail=f"the log cannot prove this: {exc}")
    return msgspec.json.encode(answer)


cosignatures_in = durable_subscriber(
    broker,
    event_filter("checkpoint_cosigned"),
    RUNS,
    consumer("ledger-cosignatures"),
    PullSub(batch_size=100, timeout=0.1, batch=True),
)


@cosignatures_in
async def on_cosigned(msg: NatsBatchMessage) -> None:
    """Keep each witness's cosignature with the checkpoint it cosigned, to serve with proofs."""
    for raw in list(msg.raw_message):
        try:
            event = event_decoder.decode(raw.data)
            if not isinstance(event, CheckpointCosigned):
                raise Poison(f"expected CheckpointCosigned on {raw.subject}, got {type(event).__name__}")
            async with res.pool.acquire() as conn, conn.transaction():
                await tlog.store_cosignature(conn, res.log_keys, event)
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError, Poison) as exc:
            log.warning("refused a cosignature: %s", exc)
            await dead_letter(broker, SERVICE, raw, f"unusable cosignature: {exc}")
            await raw.term()
            continue
        await raw.ack()

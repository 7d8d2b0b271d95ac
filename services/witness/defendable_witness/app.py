"""Witness: cosigns each org's checkpoints once it checked they extend what it cosigned before.

C2SP tlog-witness semantics, fed by JetStream instead of HTTP: for every CheckpointSigned
1. check the note against the pinned log key (WITNESS_LOG_PUBLIC_KEY, else the ledger's key set,
   pinned on first use);
2. read the latest checkpoint it cosigned for that origin (its own schema) and ask the log
   for the consistency proof it needs (`svc.ledger.tlog`);
3. `decide.decide`: cosign (compare-and-set on the held size, then CheckpointCosigned),
   republish an earlier cosignature, ignore an older consistent checkpoint, or refuse.
A refusal is the witness's whole point: logged as critical, stored, published as
WitnessAlert, acked (never retried into a cosignature). A log that does not answer is an
outage: the checkpoint waits, it is never cosigned unproven.
Checkpoints of one fetch are handled one by one in stream order: a retried one sends the
rest of its fetch back too, so a log's checkpoints reach the decision in the order signed.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime
from functools import partial

import msgspec
from asyncpg import Pool
from faststream import FastStream
from faststream.nats import PullSub
from nats.aio.msg import Msg
from nats.errors import NoRespondersError

from defendable_canonical.cosignature import CosignatureSigner
from defendable_canonical.events import (
    CheckpointCosigned,
    CheckpointSigned,
    WitnessAlert,
    derive_id,
    tree_run_id,
)
from defendable_canonical.signature import b64url_strict
from defendable_canonical.subjects import LEDGER_KEYS, LEDGER_TLOG, check_token, event_filter
from defendable_canonical.tlog_api import ConsistencyAnswer, ConsistencyQuery, answer_decoder
from defendable_runtime import db
from defendable_runtime.messaging import (
    RUNS,
    NatsBatchMessage,
    Poison,
    Transient,
    consumer,
    durable_subscriber,
    ensure_streams,
    expect_event,
    make_broker,
    publish_event,
    retry_later,
    settle,
)
from defendable_runtime.progress import holding

from . import store
from .config import durable_name, load_signer, settings_from_env
from .decide import (
    Cosign,
    Cosigned,
    Malformed,
    OldNews,
    Refused,
    decide,
    decode_hashes,
    pinned_key,
    question,
    read_offered,
)

log = logging.getLogger("defendable.witness")
SERVICE = "witness"
ASK_TIMEOUT_S = 10.0
RACE_RETRIES = 8  # another replica advanced between our read and our compare-and-set


class LogUnavailable(Exception):
    """The log did not answer, or answered with a problem: wait, never cosign unproven."""


OUTAGES = (*db.INFRA_ERRORS, LogUnavailable)  # waited out and retried, never dead-lettered

settings = settings_from_env()
broker = make_broker(settings.nats_url)
app = FastStream(broker)


class Resources:
    pool: Pool
    signer: CosignatureSigner
    log_keys: list[bytes]  # empty until pinned


res = Resources()


@app.on_startup
async def open_resources() -> None:
    res.pool = await db.create_pool(settings.database_url, max_size=4)
    await db.migrate(res.pool, store.SCHEMA, store.MIGRATIONS)
    res.signer = await load_signer(res.pool, settings.name)
    res.log_keys = list(settings.log_keys)
    log.info("witness %s, vkey %s", settings.name, res.signer.verifier().vkey)
    await ensure_streams(broker)  # before any consumer starts


@app.after_shutdown
async def close_pool() -> None:
    await res.pool.close()


checkpoints_in = durable_subscriber(
    broker,
    event_filter("checkpoint_signed"),
    RUNS,
    consumer(durable_name(settings.name), max_ack_pending=1024),
    PullSub(batch_size=64, timeout=0.5, batch=True),
)


@checkpoints_in
async def on_checkpoints(msg: NatsBatchMessage) -> None:
    raws: list[Msg] = list(msg.raw_message)
    with holding(raws):
        for i, raw in enumerate(raws):
            settled = await settle(broker, SERVICE, [raw], partial(witness, raw), infra_errors=OUTAGES)
            if not settled:  # keep the stream order: what follows waits for this one
                await retry_later(raws[i + 1 :])
                return


async def witness(raw: Msg) -> None:
    event = expect_event(raw, CheckpointSigned)
    note = event.checkpoint.encode()
    try:
        check_token(event.org_id, "org_id")
        offered, parsed = read_offered(note)
    except (ValueError, Malformed) as exc:
        raise Poison(str(exc)) from exc
    if (offered.origin, offered.size) != (event.origin, event.size) or not offered.origin.endswith(f"/{event.org_id}"):
        raise Poison(f"event of {event.org_id} names {event.origin} at {event.size}; its note {offered.origin}")
    try:
        log_key = pinned_key(offered, parsed, await pinned_log_keys())
    except Refused as exc:  # signed by no key this witness trusts
        async with res.pool.acquire() as conn:
            latest, _ = await store.held(conn, offered.origin, offered.size)
        await alert(event, latest, str(exc))
        return
    for _ in range(RACE_RETRIES):
        async with res.pool.acquire() as conn:
            latest, known = await store.held(conn, offered.origin, offered.size)
        ask = question(latest, known, offered)
        try:
            proof = await consistency_proof(event.org_id, *ask) if ask else []
            decision = decide(
                note,
                log=log_key,
                latest=latest,
                known=known,
                proof=proof,
                signer=res.signer,
                timestamp=int(time.time()),
            )
        except Refused as exc:
            await alert(event, known or latest, str(exc))
            return
        if isinstance(decision, OldNews):
            held_size = latest.checkpoint.size if latest else 0
            log.info("%s: size %d is older than %d, cosigned, and consistent", offered.origin, offered.size, held_size)
            return
        if isinstance(decision, Cosign) and not await advance(event.org_id, decision):
            continue  # another replica moved first: decide again from what it holds now
        await publish_event(broker, cosigned_event(event, decision.cosigned))
        return
    raise Transient(f"{offered.origin}: other witness replicas kept advancing first")


class _Raced(Exception):
    """Rolls back the transaction of a compare-and-set that found the latest moved."""


async def advance(org_id: str, decision: Cosign) -> bool:
    try:
        async with res.pool.acquire() as conn, conn.transaction():
            if not await store.advance(conn, org_id, decision.previous, decision.cosigned):
                raise _Raced
    except _Raced:
        return False
    return True


async def ask_log(subject: str, body: bytes) -> bytes:
    try:
        reply = await broker.request(body, subject, timeout=ASK_TIMEOUT_S)
    except NoRespondersError as exc:
        raise LogUnavailable(f"no service answers {subject}") from exc
    except TimeoutError as exc:
        raise LogUnavailable(f"no answer on {subject} within {ASK_TIMEOUT_S:.0f}s") from exc
    data: bytes = reply.body
    return data


async def consistency_proof(org_id: str, first: int, second: int) -> list[bytes]:
    """The log's proof from size `first` to `second`; a problem or no answer is an outage."""
    query = ConsistencyQuery(org_id=org_id, first=first, second=second)
    data = await ask_log(LEDGER_TLOG, msgspec.json.encode(query))
    try:
        answer = answer_decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise LogUnavailable(f"unreadable answer to a consistency question: {exc}") from exc
    if not isinstance(answer, ConsistencyAnswer):
        detail = getattr(answer, "detail", type(answer).__name__)
        raise LogUnavailable(f"{org_id}: no consistency proof from {first} to {second}: {detail}")
    return decode_hashes(answer.hashes)  # checked against the roots the witness holds, not the answer's


class _LedgerKey(msgspec.Struct, frozen=True):
    kid: str
    public_key: str


class _LedgerKeys(msgspec.Struct, frozen=True):
    keys: list[_LedgerKey]


async def pinned_log_keys() -> list[bytes]:
    """The log keys: configured, else pinned in this witness's schema, else (trust on first use)
    every key the ledger publishes now, pinned for good: a key it shows later is refused."""
    if res.log_keys:
        return res.log_keys
    async with res.pool.acquire() as conn:
        pinned = await store.log_keys(conn)
    if not pinned:
        try:
            published = msgspec.json.decode(await ask_log(LEDGER_KEYS, b"{}"), type=_LedgerKeys)
            keys = [(k.kid, k.public_key) for k in published.keys if len(b64url_strict(k.public_key)) == 32]
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as exc:
            raise LogUnavailable(f"unreadable key set from the ledger: {exc}") from exc
        if not keys:
            raise LogUnavailable("the ledger publishes no Ed25519 key yet")
        async with res.pool.acquire() as conn:
            await store.pin_log_keys(conn, keys)
            pinned = await store.log_keys(conn)
        log.warning("trusting the log's keys on first use, pinned: %s", ", ".join(kid for kid, _ in keys))
    res.log_keys = pinned
    return pinned


async def alert(event: CheckpointSigned, held: Cosigned | None, reason: str) -> None:
    """Refuse loudly: log, keep, and publish what was refused beside what was held."""
    log.critical("REFUSED checkpoint %s at size %d: %s", event.origin, event.size, reason)
    digest = hashlib.sha256(event.checkpoint.encode()).digest()
    held_note = held.cosigned if held else ""
    async with res.pool.acquire() as conn:
        await store.record_alert(conn, event.origin, event.size, digest, reason, held_note, event.checkpoint)
    await publish_event(
        broker,
        WitnessAlert(
            # One alert per refused note: two forks of one size are two alerts.
            event_id=derive_id("ev", f"{event.org_id}/{event.size}", "WitnessAlert", settings.name, digest.hex()),
            org_id=event.org_id,
            run_id=tree_run_id(event.size),
            occurred_at=utc_now(),
            producer=SERVICE,
            causation_id=event.event_id,
            origin=event.origin,
            size=event.size,
            witness=settings.name,
            reason=reason,
            held=held_note,
            offered=event.checkpoint,
        ),
    )


def cosigned_event(event: CheckpointSigned, cosigned: Cosigned) -> CheckpointCosigned:
    size = cosigned.checkpoint.size
    return CheckpointCosigned(
        event_id=derive_id("ev", f"{event.org_id}/{size}", "CheckpointCosigned", settings.name),
        org_id=event.org_id,
        run_id=tree_run_id(size),
        occurred_at=utc_now(),
        producer=SERVICE,
        causation_id=event.event_id,
        origin=cosigned.checkpoint.origin,
        size=size,
        witness=settings.name,
        witness_vkey=res.signer.verifier().vkey,
        cosigned=cosigned.cosigned,
    )


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

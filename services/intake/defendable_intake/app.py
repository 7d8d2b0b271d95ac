"""Intake: admits every ingest command, re-hashes evidence, emits run events.

Plan for one command:
1. decode and check the subject's org against the command's org (else dead-letter);
2. if the command was seen before, re-publish the events it produced (redelivery);
3. evidence: re-hash the staged S3 object; a mismatch deletes it and refuses;
   a match is copied to its content-addressed key;
4. in one transaction: lock the run, apply the pure admission rule, store the
   new state and the produced events (outbox);
5. publish the events (ack from JetStream), then ack the command.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
from collections import defaultdict
from datetime import UTC, datetime

import msgspec
from asyncpg import Connection, Pool
from faststream import FastStream
from faststream.nats import PullSub
from nats.aio.msg import Msg

from defendable_canonical import jcs
from defendable_canonical.events import (
    AnyCommand,
    AttachEvidence,
    Checked,
    CookChecked,
    CreateRun,
    Decide,
    DecideCook,
    Event,
    RequestCook,
    Submit,
    command_decoder,
    encode,
    event_decoder,
)
from defendable_canonical.model import EvidenceRef
from defendable_canonical.subjects import check_token
from defendable_runtime import db
from defendable_runtime.messaging import (
    INGEST,
    NatsBatchMessage,
    Poison,
    Transient,
    attempts,
    consume_events,
    consumer,
    dead_letter,
    durable_subscriber,
    ensure_streams,
    expect_event,
    jetstream,
    make_broker,
    publish_event,
    publish_events,
    retry_later,
    settle,
)
from defendable_runtime.progress import holding
from defendable_runtime.settings import from_env
from defendable_runtime.storage import BlobStore, evidence_key

from . import admission, cook_flow, governor, store
from .admission import Refusal

log = logging.getLogger("defendable.intake")
SERVICE = "intake"
ORDERING_RETRIES = 5  # a command may overtake its run's creation on redelivery; wait before refusing
EVIDENCE_WAIT_RETRIES = 30  # a submission waits this many deliveries (~1.5 min) for its declared evidence
VERDICT_WAIT_RETRIES = 30  # a decision waits this many deliveries (~1.5 min) for the verdict it was made on

settings = from_env()
broker = make_broker(settings.nats_url)
app = FastStream(broker)


class Resources:
    pool: Pool
    blobs: BlobStore


res = Resources()


@app.on_startup
async def open_resources() -> None:
    res.pool = await db.create_pool(settings.database_url)
    await db.migrate(res.pool, store.SCHEMA, store.MIGRATIONS)
    res.blobs = await BlobStore(settings).open()
    await res.blobs.ensure_bucket()
    await ensure_streams(broker)  # before any consumer starts
    governor.gov.configure(os.environ, res.pool, lambda events: publish_events(broker, events), ingest_backlog)


@app.after_startup
async def start_governor() -> None:
    governor.gov.start()  # the governance ticker: dark agents, pruning, the outbox relay


async def ingest_backlog() -> int:
    """Commands waiting for intake: the governor defers dark-agent ticks while any wait."""
    info = await jetstream(broker).consumer_info(INGEST.name, "intake")
    return (info.num_pending or 0) + (info.num_ack_pending or 0)


@app.after_shutdown
async def close_resources() -> None:
    # Not on_shutdown, which FastStream runs while handlers still use them (docs/decisions.md).
    await governor.gov.stop()
    await res.pool.close()
    await res.blobs.close()


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@durable_subscriber(broker, "ingest.>", INGEST, consumer("intake"), PullSub(batch_size=128, timeout=0.02, batch=True))
async def on_commands(msg: NatsBatchMessage) -> None:
    raws: list[Msg] = list(msg.raw_message)
    with holding(raws):  # a run's later commands wait for its earlier ones: all are reported
        await admit_batch(raws)


async def admit_batch(raws: list[Msg]) -> None:
    """Commands of one run are admitted in stream order; different runs concurrently."""
    by_run: dict[tuple[str, str], list[tuple[Msg, AnyCommand]]] = defaultdict(list)
    for raw in raws:
        try:
            command = decode_command(raw)
        except Poison as exc:
            await dead_letter(broker, SERVICE, raw, str(exc))
            await raw.term()
            continue
        by_run[(command.org_id, command.run_id)].append((raw, command))
    await asyncio.gather(*(admit_in_order(group) for group in by_run.values()))


async def admit_in_order(group: list[tuple[Msg, AnyCommand]]) -> None:
    for index, (raw, command) in enumerate(group):
        settled = await settle(
            broker, SERVICE, [raw], functools.partial(admit, raw, command), infra_errors=db.INFRA_ERRORS
        )  # fmt: skip
        if not settled:  # keep the run's order: what follows waits for the retry
            await retry_later([later for later, _ in group[index + 1 :]])
            return


def decode_command(raw: Msg) -> AnyCommand:
    try:
        command = command_decoder.decode(raw.data)
        check_token(command.org_id, "org_id")
        check_token(command.run_id, "run_id")
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as exc:
        raise Poison(f"undecodable command: {exc}") from exc
    if raw.subject.split(".")[-1] != command.org_id:
        raise Poison(f"subject {raw.subject} does not belong to org {command.org_id}")
    return command


async def admit(raw: Msg, command: AnyCommand) -> None:

    async with res.pool.acquire() as conn:
        seen = await store.command_events(conn, command.command_id)
    if seen is not None:
        for data in seen:
            await publish_event(broker, event_decoder.decode(data))
        return
    if isinstance(command, RequestCook | DecideCook):  # cooks have their own state (cook_flow.py)
        for event in await cook_flow.admit_cook(res.pool, command, attempts(raw), utc_now()):
            await publish_event(broker, event)
        return
    if isinstance(command, governor.COMMANDS):  # heartbeats, acknowledgements, unlocks (governor.py)
        for event in await governor.gov.admit(command):
            await publish_event(broker, event)
        return

    now = utc_now()
    staged: tuple[EvidenceRef, str] | None = None
    try:
        if isinstance(command, AttachEvidence):
            staged = await stage_evidence(command)
        canonical = canonical_submission(command) if isinstance(command, Submit) else b""
    except Refusal as refusal:
        evidence_id = command.evidence_id if isinstance(command, AttachEvidence) else None
        await refuse(command, str(refusal), now, evidence_id)
        return

    async with res.pool.acquire() as conn, conn.transaction():
        run = await store.load_run(conn, command.org_id, command.run_id)
        if run is None and not isinstance(command, CreateRun) and attempts(raw) < ORDERING_RETRIES:
            raise Transient(f"run {command.run_id} not known yet")
        try:
            events: list[Event]
            match command:
                case CreateRun():
                    await governor.gov.refuse_if_locked(conn, command)  # a locked lane refuses, citing its clause
                    run, created = admission.create_run(command, run, now)
                    events = [created]
                case AttachEvidence():
                    assert staged is not None
                    ref, key = staged
                    run = admission.require_open_run(run, command.run_id, "evidence")
                    await store.add_evidence(conn, run.org_id, run.run_id, ref, key)
                    events = [admission.attach_evidence(command.command_id, run, ref, command.kind, key, now)]
                case Submit():
                    evidence = await store.list_evidence(conn, command.org_id, command.run_id)
                    await require_declared_evidence(conn, command, evidence, attempts(raw))
                    events = [admission.submit(command, run, canonical, evidence, now)]
                case Decide():
                    require_verdict(command, run, attempts(raw))
                    evidence = await store.list_evidence(conn, command.org_id, command.run_id)
                    events = [admission.decide(command, run, evidence, now)]
        except Refusal as refusal:
            events = [
                admission.refused(
                    command.command_id, command.org_id, command.run_id, type(command).__name__, str(refusal), now
                )
            ]
        else:
            assert run is not None
            await store.save_run(conn, run)
        await store.record_command(
            conn, command.command_id, command.org_id, command.run_id, [encode(e) for e in events]
        )
    for event in events:
        await publish_event(broker, event)


async def refuse(command: AnyCommand, reason: str, now: str, evidence_id: str | None) -> None:
    event = admission.refused(
        command.command_id, command.org_id, command.run_id, type(command).__name__, reason, now
    )  # fmt: skip
    async with res.pool.acquire() as conn, conn.transaction():
        if evidence_id is not None:
            await store.refuse_evidence(conn, command.org_id, command.run_id, evidence_id, reason)
        await store.record_command(conn, command.command_id, command.org_id, command.run_id, [encode(event)])
    await publish_event(broker, event)


async def require_declared_evidence(
    conn: Connection, command: Submit, evidence: list[EvidenceRef], delivery: int
) -> None:
    """A submission is admitted only with every piece of evidence its submitter attached first."""
    missing = sorted(set(command.evidence_ids) - {e.id for e in evidence})
    if not missing:
        return
    refused = await store.refused_evidence(conn, command.org_id, command.run_id, missing)
    if refused:
        first = next(iter(refused))
        raise Refusal(f"evidence {first} was refused ({refused[first]}); attach it again in a new run")
    if delivery < EVIDENCE_WAIT_RETRIES:
        raise Transient(f"submission waits for evidence {', '.join(missing)}")
    raise Refusal(f"evidence {', '.join(missing)} never arrived; the submission was not admitted")


def require_verdict(command: Decide, run: admission.RunState | None, delivery: int) -> None:
    """A decision made on a verdict waits until intake has recorded that verdict too.

    The gateway accepts a decision once its read model shows the run checked;
    intake learns of the same Checked event through its own consumer
    (`on_checked`), which may lag behind the gateway's — more so while it
    catches up after an outage. Refusing then would drop an accepted approval.
    """
    if run is not None and run.status == "submitted" and delivery < VERDICT_WAIT_RETRIES:
        raise Transient(f"decision on run {command.run_id} waits for its verdict")


def canonical_submission(command: Submit) -> bytes:
    if len(command.submission) > admission.MAX_SUBMISSION_BYTES:
        raise Refusal(f"submission is {len(command.submission)} bytes; the limit is {admission.MAX_SUBMISSION_BYTES}")
    try:
        return jcs.canonicalize_json(bytes(command.submission))
    except jcs.CanonicalError as exc:
        raise Refusal(f"submission is not canonicalisable JSON: {exc}") from exc


async def stage_evidence(command: AttachEvidence) -> tuple[EvidenceRef, str]:
    """Re-hash the bytes server-side; only matching bytes reach their content-addressed key."""
    declared = command.sha256.removeprefix("sha256:")
    key = evidence_key(declared)
    match command.content, command.staging_key:
        case bytes() as content, None:
            actual, size = hashlib.sha256(content).hexdigest(), len(content)
            if (actual, size) != (declared, command.size):
                raise Refusal(mismatch(command, actual, size))
            # Content-addressed: writing the same bytes again (a redelivery) changes nothing.
            await res.blobs.put_bytes(key, content)
        case None, str() as staging_key:
            await promote_staged(command, staging_key, declared, key)
        case _:
            raise Refusal(f"evidence {command.evidence_id}: send exactly one of content and staging_key")
    ref = EvidenceRef(
        id=command.evidence_id,
        name=command.name,
        media_type=command.media_type,
        size=command.size,
        sha256="sha256:" + declared,
    )
    return ref, key


async def promote_staged(command: AttachEvidence, staging_key: str, declared: str, key: str) -> None:
    hashed = await res.blobs.hash_object(staging_key)
    if hashed is None:
        # A redelivery after a crash may find the staging object already promoted.
        if await res.blobs.hash_object(key) != (declared, command.size):
            raise Refusal(f"evidence {command.evidence_id}: no staged bytes at {staging_key}")
        return
    actual, size = hashed
    if (actual, size) != (declared, command.size):
        await res.blobs.delete(staging_key)
        raise Refusal(mismatch(command, actual, size))
    if not await res.blobs.exists(key):
        await res.blobs.copy(staging_key, key)
    await res.blobs.delete(staging_key)


def mismatch(command: AttachEvidence, actual: str, size: int) -> str:
    return (
        f"evidence {command.evidence_id}: bytes hash to sha256:{actual} ({size} bytes) but were declared as "
        f"{command.sha256} ({command.size} bytes); nothing was stored"
    )


async def record_verdict(raw: Msg) -> None:
    event = expect_event(raw, Checked)
    async with res.pool.acquire() as conn, conn.transaction():
        run = await store.load_run(conn, event.org_id, event.run_id)
        if admission.record_checked(run, event):
            assert run is not None
            await store.save_run(conn, run)
        governed = await governor.gov.on_checked(conn, run, event)  # high flags and usage (governor.py)
    await governor.gov.flush(governed)


consume_events(broker, SERVICE, "checked", "intake-checked", record_verdict, infra_errors=db.INFRA_ERRORS)


async def record_cook_verdict(raw: Msg) -> None:
    await cook_flow.record_cook_checked(res.pool, expect_event(raw, CookChecked))


consume_events(
    broker, SERVICE, "cook_checked", "intake-cook-checked", record_cook_verdict, infra_errors=db.INFRA_ERRORS
)

"""Referee: checks each submission against its Flight Sheet and publishes the verdict.

The rule engine is pure (`check.py`); this module only moves bytes: Submitted in,
Checked out, the flight-sheet library answered over request-reply so the
gateway can refuse an unknown sheet or a wrong lane with a 4xx at once.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from asyncpg import Pool
from faststream import FastStream
from faststream.nats.annotations import NatsMessage
from nats.aio.msg import Msg

from defendable_canonical.events import Checked, CookRequested, Submitted, derive_id, encode, event_decoder
from defendable_canonical.subjects import REFEREE_FLIGHT_SHEET, REFEREE_FLIGHT_SHEETS
from defendable_runtime import db
from defendable_runtime.messaging import (
    Poison,
    consume_events,
    ensure_streams,
    expect_event,
    make_broker,
    publish_event,
)
from defendable_runtime.settings import from_env
from defendable_runtime.storage import BlobStore

from . import cook_check, evidence_files, evidence_reader, store
from .check import check_submission
from .sheet import Library, LoadedSheet, UnknownFlightSheet, load_library
from .text_rules import TEXT_RULE_KINDS
from .trail_reader import TrailRead, read_trail

log = logging.getLogger("defendable.referee")
SERVICE = "referee"

settings = from_env()
broker = make_broker(settings.nats_url)
app = FastStream(broker)


class Resources:
    pool: Pool
    library: Library
    blobs: BlobStore


res = Resources()


@app.on_startup
async def open_resources() -> None:
    # A directory of the org's own sheets replaces the packaged library; its lock file is required too.
    res.library = load_library(Path(settings.flight_sheets_dir) if settings.flight_sheets_dir else None)
    res.pool = await db.create_pool(settings.database_url)
    res.blobs = await BlobStore(settings).open()  # evidence text and trails in, normalised trails out
    await db.migrate(res.pool, store.SCHEMA, store.MIGRATIONS)
    await ensure_streams(broker)  # before any consumer starts


@app.after_shutdown
async def close_resources() -> None:
    # Not on_shutdown, which FastStream runs while handlers still use them (docs/decisions.md).
    # A failed start may have opened neither: let its own error be the one reported.
    if hasattr(res, "pool"):
        await res.pool.close()
    if hasattr(res, "blobs"):
        await res.blobs.close()


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def referee(raw: Msg) -> None:
    event = expect_event(raw, Submitted)
    async with res.pool.acquire() as conn:
        stored = await store.stored_check(conn, event.event_id)
    if stored is None:
        sheet = sheet_for(event)
        trail = await read_trail(res.blobs, event.evidence)
        texts = await evidence_texts(sheet, event)
        if evidence_files.reads_files(sheet.sheet):
            checked = await judge_files(event, sheet, texts, trail)
        else:
            checked = judge(event, sheet, texts, trail)
        async with res.pool.acquire() as conn, conn.transaction():
            stored = await store.record_check(conn, event.event_id, event.org_id, event.run_id, encode(checked))
    await publish_event(broker, event_decoder.decode(stored))


consume_events(broker, SERVICE, "submitted", "referee", referee, infra_errors=db.INFRA_ERRORS)


async def on_cook_requested(raw: Msg) -> None:
    """A cook's decision (cook_check.py), stored under the request's event id like a verdict."""
    event = expect_event(raw, CookRequested)
    async with res.pool.acquire() as conn:
        stored = await store.stored_check(conn, event.event_id)
    if stored is None:
        # Up to ~4 s of bootstrap at the item limit: off the loop, so progress reports keep going.
        checked = await asyncio.to_thread(cook_check.check_cook, event, res.library, utc_now())
        async with res.pool.acquire() as conn, conn.transaction():
            stored = await store.record_check(conn, event.event_id, event.org_id, event.run_id, encode(checked))
    await publish_event(broker, event_decoder.decode(stored))


# fetch=2: at most two cooks decided at once (each bounded by lift.MAX_WORK).
consume_events(
    broker, SERVICE, "cook_requested", "referee-cooks", on_cook_requested, fetch=2, infra_errors=db.INFRA_ERRORS
)


def sheet_for(event: Submitted) -> LoadedSheet:
    try:
        return res.library.get(event.flight_sheet.id, event.flight_sheet.version)
    except UnknownFlightSheet as exc:
        raise Poison(f"run {event.run_id} names a flight sheet this referee does not have: {exc}") from exc


async def evidence_texts(sheet: LoadedSheet, event: Submitted) -> dict[str, str]:
    """The text of the attached items, only for sheets whose rules read it (most read none)."""
    if not any(rule.kind in TEXT_RULE_KINDS for rule in sheet.sheet.rules):
        return {}
    wanted = evidence_reader.to_read(event.evidence, text=True, trail=False)
    return evidence_reader.decode_texts(wanted, await evidence_reader.read_items(res.blobs, wanted))


async def judge_files(event: Submitted, sheet: LoadedSheet, texts: dict[str, str], trail: TrailRead) -> Checked:
    """A sheet that computes from the evidence files: copies in a work directory of the run's
    own, the check in a worker thread (seconds of DuckDB on a big dataset), one such run at a
    time per referee so disk and memory stay bounded; progress reports hold the message meanwhile."""
    async with FILE_CHECKS:
        with tempfile.TemporaryDirectory(prefix="referee-", dir=settings.work_dir or None) as workdir:
            fetched = await evidence_files.fetch_files(
                res.blobs,
                event.evidence,
                Path(workdir),
                max_item_bytes=settings.max_evidence_bytes,
                max_run_bytes=settings.max_run_file_bytes,
            )
            return await asyncio.to_thread(judge, event, sheet, texts, trail, fetched)


FILE_CHECKS = asyncio.Semaphore(1)  # asyncio primitives bind their loop on first use (3.10+)


def judge(
    event: Submitted,
    sheet: LoadedSheet,
    texts: dict[str, str],
    trail: TrailRead,
    fetched: evidence_files.FetchedFiles | None = None,
) -> Checked:
    steps = trail.trail.steps if trail.trail is not None else None
    findings, verdict = check_submission(
        sheet,
        bytes(event.submission),
        event.evidence,
        evidence_text=texts,
        trail=steps,
        trail_error=trail.error,
        files=fetched.paths if fetched else None,
        files_skipped=fetched.skipped if fetched else None,
    )
    return Checked(
        event_id=derive_id("ev", event.event_id, "Checked"),
        org_id=event.org_id,
        run_id=event.run_id,
        occurred_at=utc_now(),
        producer=SERVICE,
        causation_id=event.event_id,
        flight_sheet=sheet.ref(),
        submission_sha256=event.submission_sha256,
        findings=findings,
        verdict=verdict,
        execution_trail=trail.trail.summary if trail.trail is not None else msgspec.UNSET,
        trail_key=trail.key,
    )


class SheetQuery(msgspec.Struct, frozen=True):
    ref: str  # "id@version"
    full: bool = False  # also answer the sheet's file bytes, exactly as published


class SheetAnswer(msgspec.Struct, frozen=True, kw_only=True):
    found: bool
    id: str = ""
    version: str = ""
    lane: str = ""
    sha256: str = ""
    title: str = ""
    error: str = ""
    sheet: msgspec.Raw | None = None  # the published file's JSON, when asked for in full


class SheetSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    version: str
    lane: str
    sha256: str
    title: str


@broker.subscriber(REFEREE_FLIGHT_SHEET, queue="referee")
async def on_flight_sheet(msg: NatsMessage) -> bytes:
    try:
        query = msgspec.json.decode(msg.body, type=SheetQuery)
        sheet = res.library.get_ref(query.ref)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return msgspec.json.encode(SheetAnswer(found=False, error=f"bad query: {exc}"))
    except UnknownFlightSheet as exc:
        return msgspec.json.encode(SheetAnswer(found=False, error=str(exc)))
    ref = sheet.ref()
    raw = msgspec.Raw(sheet.raw) if query.full else None
    return msgspec.json.encode(
        SheetAnswer(
            found=True, id=ref.id, version=ref.version, lane=sheet.lane, sha256=ref.sha256, title=sheet.title, sheet=raw
        )
    )


@broker.subscriber(REFEREE_FLIGHT_SHEETS, queue="referee")
async def on_flight_sheets(msg: NatsMessage) -> bytes:
    """Every sheet in the library, sorted by id@version (a few dozen at most: one reply)."""
    return msgspec.json.encode(
        [
            SheetSummary(id=s.sheet.id, version=s.sheet.version, lane=s.lane, sha256=s.sha256, title=s.title)
            for s in res.library.sheets()
        ]
    )

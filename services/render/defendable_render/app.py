"""Render: Minted in, a deterministic PDF in S3 and Rendered out, for receipts of every kind.

The PDF is regenerable from the receipt JSON (no PDF is the only copy of
anything), so a redelivery simply renders the same bytes again.
"""

from __future__ import annotations

import asyncio
import logging

from asyncpg import Pool
from faststream import FastStream
from nats.aio.msg import Msg

from defendable_canonical.digest import sha256_digest
from defendable_canonical.events import Minted, Rendered, derive_id
from defendable_canonical.jcs import CanonicalError
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

from . import store
from .pdf import render_receipt_pdf

log = logging.getLogger("defendable.render")
SERVICE = "render"

settings = from_env()
broker = make_broker(settings.nats_url)
app = FastStream(broker)


class Resources:
    pool: Pool
    blobs: BlobStore


res = Resources()


def pdf_key(org_id: str, receipt_hash: str) -> str:
    return f"receipts/{org_id}/{receipt_hash.removeprefix('sha256:')}.pdf"


@app.on_startup
async def open_resources() -> None:
    res.pool = await db.create_pool(settings.database_url)
    await db.migrate(res.pool, store.SCHEMA, store.MIGRATIONS)
    res.blobs = await BlobStore(settings).open()
    await res.blobs.ensure_bucket()
    await ensure_streams(broker)  # before any consumer starts


@app.after_shutdown
async def close_resources() -> None:
    # Not on_shutdown, which FastStream runs while handlers still use them (docs/decisions.md).
    await res.pool.close()
    await res.blobs.close()


async def render(raw: Msg) -> None:
    event = expect_event(raw, Minted)
    # CPU-bound; a worker thread keeps acks and heartbeats flowing meanwhile.
    try:
        pdf = await asyncio.to_thread(render_receipt_pdf, bytes(event.payload), event.receipt_hash, event.signature)
    except CanonicalError as exc:  # a schema no layout draws, or a payload that is not its schema's
        raise Poison(f"receipt {event.receipt_hash} cannot be drawn: {exc}") from exc
    key = pdf_key(event.org_id, event.receipt_hash)
    await res.blobs.put_bytes(key, pdf, "application/pdf")
    digest = sha256_digest(pdf)
    async with res.pool.acquire() as conn:
        await store.record_pdf(conn, event.receipt_hash, event.org_id, key, digest, len(pdf))
    await publish_event(
        broker,
        Rendered(
            event_id=derive_id("ev", event.event_id, "Rendered"),
            org_id=event.org_id,
            run_id=event.run_id,
            occurred_at=event.occurred_at,
            producer=SERVICE,
            causation_id=event.event_id,
            receipt_hash=event.receipt_hash,
            pdf_key=key,
            pdf_sha256=digest,
            pdf_size=len(pdf),
        ),
    )


consume_events(broker, SERVICE, "minted", "render", render, fetch=32, infra_errors=db.INFRA_ERRORS)

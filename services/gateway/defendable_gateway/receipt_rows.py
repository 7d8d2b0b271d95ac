"""gateway.receipts rows: one per Minted receipt of any kind (run, cook, incident, unlock)."""

from __future__ import annotations

import msgspec
from asyncpg import Connection

from defendable_canonical.events import Minted, Rendered


async def record_minted(conn: Connection, event: Minted) -> None:
    """Idempotent: a redelivered Minted finds its row already there."""
    await conn.execute(
        """INSERT INTO gateway.receipts
           (receipt_hash, org_id, run_id, seq, parent_hash, payload, signature, share_token)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING""",
        event.receipt_hash, event.org_id, event.run_id, event.seq, event.parent_hash, bytes(event.payload),
        msgspec.json.encode(event.signature), event.share_token,
    )  # fmt: skip


async def record_rendered(conn: Connection, event: Rendered) -> None:
    await conn.execute(
        "UPDATE gateway.receipts SET pdf_key = $2 WHERE receipt_hash = $1", event.receipt_hash, event.pdf_key
    )

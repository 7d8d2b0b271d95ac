"""The salts that reveal a receipt's redacted fields (docs/redaction.md), kept for the org.

They arrive on the run's `Approved` event and are never part of the receipt: a receipt's
reader sees only the commitments, and the org hands over one field's disclosure to reveal it.
"""

from __future__ import annotations

from typing import Any

from asyncpg import Connection, Pool

from defendable_canonical.events import Approved
from defendable_canonical.redaction import Disclosure

DISCLOSURE_MIGRATIONS = [
    """
    CREATE TABLE gateway.disclosures (
        org_id text NOT NULL,
        run_id text NOT NULL,
        path text NOT NULL,
        value text NOT NULL,
        salt text NOT NULL,
        PRIMARY KEY (org_id, run_id, path)
    );
    """,
]


async def record_disclosures(conn: Connection, event: Approved) -> None:
    """Idempotent: a redelivered Approved event carries the same salts and changes nothing."""
    if not event.disclosures:
        return
    await conn.executemany(
        """INSERT INTO gateway.disclosures (org_id, run_id, path, value, salt) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (org_id, run_id, path) DO NOTHING""",
        [(event.org_id, event.run_id, d.path, d.value, d.salt) for d in event.disclosures],
    )


async def run_disclosures(pool: Pool | Connection, org_id: str, run_id: str) -> list[Disclosure]:
    rows: list[Any] = await pool.fetch(
        "SELECT path, value, salt FROM gateway.disclosures WHERE org_id = $1 AND run_id = $2 ORDER BY path",
        org_id,
        run_id,
    )
    return [Disclosure(path=r["path"], value=r["value"], salt=r["salt"]) for r in rows]

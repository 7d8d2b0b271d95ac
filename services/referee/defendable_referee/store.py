"""The referee's record of what it decided (schema `referee`). Only this module imports asyncpg.

A verdict is a pure function of (sheet, submission, evidence), so re-checking is
safe; the table makes it *identical*: a redelivered submission re-publishes the
stored Checked event byte for byte.
"""

from __future__ import annotations

from asyncpg import Connection

SCHEMA = "referee"
MIGRATIONS = [
    """
    CREATE TABLE referee.checks (
        submitted_event_id text PRIMARY KEY,
        org_id text NOT NULL,
        run_id text NOT NULL,
        checked_event bytea NOT NULL,
        checked_at timestamptz NOT NULL DEFAULT now()
    );
    """,
]


async def stored_check(conn: Connection, submitted_event_id: str) -> bytes | None:
    data = await conn.fetchval(
        "SELECT checked_event FROM referee.checks WHERE submitted_event_id = $1", submitted_event_id
    )
    return None if data is None else bytes(data)


async def record_check(conn: Connection, submitted_event_id: str, org_id: str, run_id: str, event: bytes) -> bytes:
    """Store the check; if a racing replica stored one first, theirs wins and is returned."""
    await conn.execute(
        """INSERT INTO referee.checks (submitted_event_id, org_id, run_id, checked_event)
           VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
        submitted_event_id,
        org_id,
        run_id,
        event,
    )
    stored = await stored_check(conn, submitted_event_id)
    assert stored is not None
    return stored

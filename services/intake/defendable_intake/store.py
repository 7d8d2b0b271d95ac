"""Intake's own tables (schema `intake`). Only this module imports asyncpg.

`commands` is both the idempotency record and the outbox: the events a command
produced are stored with it in the same transaction as the state change, so a
redelivered command re-publishes exactly the same events (same ids) instead of
acting twice.
"""

from __future__ import annotations

import msgspec
from asyncpg import Connection

from defendable_canonical.model import EvidenceRef

from . import cook_store, governance_store
from .admission import RunState

SCHEMA = "intake"
MIGRATIONS = [
    """
    CREATE TABLE intake.runs (
        org_id text NOT NULL,
        run_id text NOT NULL,
        status text NOT NULL,
        state bytea NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (org_id, run_id)
    );
    CREATE TABLE intake.evidence (
        org_id text NOT NULL,
        run_id text NOT NULL,
        evidence_id text NOT NULL,
        position bigserial,
        ref bytea NOT NULL,
        storage_key text NOT NULL,
        PRIMARY KEY (org_id, run_id, evidence_id)
    );
    CREATE TABLE intake.commands (
        command_id text PRIMARY KEY,
        org_id text NOT NULL,
        run_id text NOT NULL,
        events bytea[] NOT NULL,
        processed_at timestamptz NOT NULL DEFAULT now()
    );
    """,
    """
    CREATE TABLE intake.refused_evidence (
        org_id text NOT NULL,
        run_id text NOT NULL,
        evidence_id text NOT NULL,
        reason text NOT NULL,
        PRIMARY KEY (org_id, run_id, evidence_id)
    );
    """,
    cook_store.MIGRATION,  # intake.cooks
    governance_store.MIGRATION,  # intake.governance, intake.lane_locks, intake.governance_outbox
]

_state_decoder = msgspec.json.Decoder(RunState)
_ref_decoder = msgspec.json.Decoder(EvidenceRef)


async def load_run(conn: Connection, org_id: str, run_id: str) -> RunState | None:
    """Read and lock the run row for the rest of the transaction."""
    data = await conn.fetchval(
        "SELECT state FROM intake.runs WHERE org_id = $1 AND run_id = $2 FOR UPDATE", org_id, run_id
    )
    return None if data is None else _state_decoder.decode(data)


async def save_run(conn: Connection, run: RunState) -> None:
    await conn.execute(
        """INSERT INTO intake.runs (org_id, run_id, status, state) VALUES ($1, $2, $3, $4)
           ON CONFLICT (org_id, run_id) DO UPDATE SET status = $3, state = $4, updated_at = now()""",
        run.org_id,
        run.run_id,
        run.status,
        msgspec.json.encode(run),
    )


async def list_evidence(conn: Connection, org_id: str, run_id: str) -> list[EvidenceRef]:
    rows = await conn.fetch(
        "SELECT ref FROM intake.evidence WHERE org_id = $1 AND run_id = $2 ORDER BY position", org_id, run_id
    )
    return [_ref_decoder.decode(r["ref"]) for r in rows]


async def add_evidence(conn: Connection, org_id: str, run_id: str, ref: EvidenceRef, storage_key: str) -> None:
    await conn.execute(
        """INSERT INTO intake.evidence (org_id, run_id, evidence_id, ref, storage_key) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT DO NOTHING""",
        org_id,
        run_id,
        ref.id,
        msgspec.json.encode(ref),
        storage_key,
    )


async def command_events(conn: Connection, command_id: str) -> list[bytes] | None:
    events = await conn.fetchval("SELECT events FROM intake.commands WHERE command_id = $1", command_id)
    return None if events is None else list(events)


async def record_command(conn: Connection, command_id: str, org_id: str, run_id: str, events: list[bytes]) -> None:
    await conn.execute(
        "INSERT INTO intake.commands (command_id, org_id, run_id, events) VALUES ($1, $2, $3, $4)",
        command_id,
        org_id,
        run_id,
        events,
    )


async def refuse_evidence(conn: Connection, org_id: str, run_id: str, evidence_id: str, reason: str) -> None:
    await conn.execute(
        "INSERT INTO intake.refused_evidence VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        org_id,
        run_id,
        evidence_id,
        reason,
    )


async def refused_evidence(conn: Connection, org_id: str, run_id: str, evidence_ids: list[str]) -> dict[str, str]:
    rows = await conn.fetch(
        """SELECT evidence_id, reason FROM intake.refused_evidence
           WHERE org_id = $1 AND run_id = $2 AND evidence_id = ANY($3::text[])""",
        org_id,
        run_id,
        evidence_ids,
    )
    return {r["evidence_id"]: r["reason"] for r in rows}

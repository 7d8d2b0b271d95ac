"""The gateway's tables (schema `gateway`): orgs, API keys and the read model.

The read model is fed only by `run.>` events and is a copy for portals and
share pages; the ledger's own table stays the authority (verification asks the
ledger). Updates are idempotent upserts and a run's stage only moves forward,
so a redelivered or reordered event cannot move a run backwards.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import msgspec
from asyncpg import Connection, Pool

from defendable_canonical.events import (
    TRANSPARENCY_EVENTS,
    AnyEvent,
    Approved,
    Checked,
    CommandRefused,
    EvidenceAttached,
    Minted,
    Rejected,
    Rendered,
    RunCreated,
    Submitted,
)
from defendable_canonical.stages import RUN_STAGES

from . import cook_store, incident_store
from .disclosure_store import DISCLOSURE_MIGRATIONS, record_disclosures
from .org_settings import ORG_SETTINGS_MIGRATIONS
from .receipt_rows import record_minted, record_rendered

SCHEMA = "gateway"
MIGRATIONS = [
    """
    CREATE TABLE gateway.orgs (
        org_id text PRIMARY KEY,
        name text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE gateway.api_keys (
        key_id text PRIMARY KEY,
        org_id text NOT NULL REFERENCES gateway.orgs,
        key_hash text NOT NULL UNIQUE,
        role text NOT NULL,
        label text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz
    );
    CREATE TABLE gateway.runs (
        org_id text NOT NULL,
        run_id text NOT NULL,
        project text,
        lane text,
        flight_sheet text,
        stage text NOT NULL,
        stage_rank int NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        submission_sha256 text,
        findings bytea,
        verdict bytea,
        approval bytea,
        receipt_hash text,
        refusals bytea[] NOT NULL DEFAULT '{}',
        PRIMARY KEY (org_id, run_id)
    );
    CREATE INDEX runs_listing ON gateway.runs (org_id, created_at DESC, run_id DESC);
    CREATE TABLE gateway.evidence (
        org_id text NOT NULL,
        run_id text NOT NULL,
        evidence_id text NOT NULL,
        name text NOT NULL,
        media_type text NOT NULL,
        kind text NOT NULL,
        size bigint NOT NULL,
        sha256 text NOT NULL,
        status text NOT NULL,
        reason text,
        command_id text,
        position bigserial,
        PRIMARY KEY (org_id, run_id, evidence_id)
    );
    CREATE TABLE gateway.receipts (
        receipt_hash text PRIMARY KEY,
        org_id text NOT NULL,
        run_id text NOT NULL,
        seq bigint NOT NULL,
        parent_hash text NOT NULL,
        payload bytea NOT NULL,
        signature bytea NOT NULL,
        share_token text NOT NULL UNIQUE,
        pdf_key text,
        UNIQUE (org_id, seq)
    );
    """,
    # The execution trail's summary (a TrailSummary) and where its step records are stored.
    "ALTER TABLE gateway.runs ADD COLUMN trail bytea, ADD COLUMN trail_key text;",
    cook_store.MIGRATION,  # gateway.cooks
    incident_store.MIGRATION,  # gateway.incidents, gateway.lane_locks
    # When the referee decided (Checked.occurred_at): the time of the verdict's OTel events.
    "ALTER TABLE gateway.runs ADD COLUMN checked_at text;",
    *DISCLOSURE_MIGRATIONS,  # gateway.disclosures
    *ORG_SETTINGS_MIGRATIONS,  # gateway.org_settings
]

STAGES = RUN_STAGES


# ------------------------------------------------------------------ orgs and keys


async def create_org(conn: Connection, org_id: str, name: str) -> None:
    await conn.execute("INSERT INTO gateway.orgs (org_id, name) VALUES ($1, $2)", org_id, name)


async def add_key(conn: Connection, key_id: str, org_id: str, key_hash: str, role: str, label: str) -> None:
    await conn.execute(
        "INSERT INTO gateway.api_keys (key_id, org_id, key_hash, role, label) VALUES ($1, $2, $3, $4, $5)",
        key_id,
        org_id,
        key_hash,
        role,
        label,
    )


async def find_key(pool: Pool, key_hash: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        "SELECT key_id, org_id, role, label FROM gateway.api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        key_hash,
    )
    return None if row is None else dict(row)


# ------------------------------------------------------------------ requests recorded by the gateway itself


async def record_requested_run(
    pool: Pool, org_id: str, run_id: str, project: str, lane: str, flight_sheet: str
) -> None:
    await pool.execute(
        """INSERT INTO gateway.runs (org_id, run_id, project, lane, flight_sheet, stage, stage_rank)
           VALUES ($1, $2, $3, $4, $5, 'requested', 0)""",
        org_id,
        run_id,
        project,
        lane,
        flight_sheet,
    )


async def record_pending_evidence(
    pool: Pool,
    org_id: str,
    run_id: str,
    evidence_id: str,
    name: str,
    media_type: str,
    kind: str,
    size: int,
    sha: str,
    command_id: str,
) -> None:
    await pool.execute(
        """INSERT INTO gateway.evidence
           (org_id, run_id, evidence_id, name, media_type, kind, size, sha256, status, command_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9) ON CONFLICT DO NOTHING""",
        org_id,
        run_id,
        evidence_id,
        name,
        media_type,
        kind,
        size,
        sha,
        command_id,
    )


# ------------------------------------------------------------------ reads


async def get_run(pool: Pool, org_id: str, run_id: str) -> dict[str, Any] | None:
    row = await pool.fetchrow("SELECT * FROM gateway.runs WHERE org_id = $1 AND run_id = $2", org_id, run_id)
    return None if row is None else dict(row)


async def run_evidence(pool: Pool, org_id: str, run_id: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        """SELECT evidence_id, name, media_type, kind, size, sha256, status, reason FROM gateway.evidence
           WHERE org_id = $1 AND run_id = $2 ORDER BY position""",
        org_id,
        run_id,
    )
    return [dict(r) for r in rows]


def encode_cursor(created_at: Any, run_id: str) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([created_at.isoformat(), run_id])).decode()


async def list_runs(
    pool: Pool, org_id: str, project: str | None, stage: str | None, cursor: tuple[datetime, str] | None, limit: int
) -> list[dict[str, Any]]:
    clauses = ["org_id = $1"]
    args: list[Any] = [org_id]
    if project is not None:
        args.append(project)
        clauses.append(f"project = ${len(args)}")
    if stage is not None:
        args.append(stage)
        clauses.append(f"stage = ${len(args)}")
    if cursor is not None:
        args += [cursor[0], cursor[1]]
        clauses.append(f"(created_at, run_id) < (${len(args) - 1}::timestamptz, ${len(args)})")
    args.append(limit)
    # Only fixed clause text and $n placeholders are interpolated; every value is a bind parameter.
    rows = await pool.fetch(
        f"""SELECT run_id, project, lane, flight_sheet, stage, created_at, receipt_hash FROM gateway.runs
            WHERE {" AND ".join(clauses)} ORDER BY created_at DESC, run_id DESC LIMIT ${len(args)}""",  # noqa: S608
        *args,
    )
    return [dict(r) for r in rows]


async def get_receipt(pool: Pool, receipt_hash: str) -> dict[str, Any] | None:
    row = await pool.fetchrow("SELECT * FROM gateway.receipts WHERE receipt_hash = $1", receipt_hash)
    return None if row is None else dict(row)


async def get_receipt_by_token(pool: Pool, token: str) -> dict[str, Any] | None:
    row = await pool.fetchrow("SELECT * FROM gateway.receipts WHERE share_token = $1", token)
    return None if row is None else dict(row)


# ------------------------------------------------------------------ the read model fold


async def _advance(conn: Connection, org_id: str, run_id: str, stage: str, sets: str = "", *args: Any) -> None:
    """Upsert the run and move its stage forward only."""
    # `sets` is fixed SQL from `apply_event` (with $n placeholders); every value is a bind parameter.
    await conn.execute(
        f"""INSERT INTO gateway.runs (org_id, run_id, stage, stage_rank) VALUES ($1, $2, $3, $4)
            ON CONFLICT (org_id, run_id) DO UPDATE SET
              stage = CASE WHEN gateway.runs.stage_rank < $4 THEN $3 ELSE gateway.runs.stage END,
              stage_rank = GREATEST(gateway.runs.stage_rank, $4) {sets}""",  # noqa: S608
        org_id,
        run_id,
        stage,
        STAGES[stage],
        *args,
    )


async def apply_event(conn: Connection, event: AnyEvent) -> None:
    if isinstance(event, TRANSPARENCY_EVENTS):  # the ledger keeps checkpoints; nothing to fold
        return
    if cook_store.is_cook(event.run_id):  # cooks fold into their own table
        await cook_store.apply_event(conn, event)
        return
    if incident_store.owns(event):  # incidents, lane locks and their receipts fold into their own tables
        await incident_store.apply_event(conn, event)
        return
    o, r = event.org_id, event.run_id
    match event:
        case RunCreated():
            await _advance(
                conn, o, r, "created",
                ", project = $5, lane = $6, flight_sheet = $7",
                event.project, event.lane, event.flight_sheet.key,
            )  # fmt: skip
        case EvidenceAttached():
            e = event.evidence
            await conn.execute(
                """INSERT INTO gateway.evidence
                     (org_id, run_id, evidence_id, name, media_type, kind, size, sha256, status)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'attached')
                   ON CONFLICT (org_id, run_id, evidence_id) DO UPDATE SET status = 'attached', reason = NULL""",
                o, r, e.id, e.name, e.media_type, event.kind, e.size, e.sha256,
            )  # fmt: skip
        case Submitted():
            await _advance(conn, o, r, "submitted", ", submission_sha256 = $5", event.submission_sha256)
        case Checked():
            trail = None if event.execution_trail is msgspec.UNSET else msgspec.json.encode(event.execution_trail)
            await _advance(
                conn, o, r, "checked", ", findings = $5, verdict = $6, trail = $7, trail_key = $8, checked_at = $9",
                msgspec.json.encode(event.findings), msgspec.json.encode(event.verdict), trail, event.trail_key or None,
                event.occurred_at,
            )  # fmt: skip
        case Approved():
            await _advance(conn, o, r, "approved", ", approval = $5", msgspec.json.encode(event.receipt.approval))
            await record_disclosures(conn, event)
        case Rejected():
            approval = {"decision": "reject", "approver": event.approver, "decided_at": event.decided_at}
            await _advance(
                conn, o, r, "rejected", ", approval = $5", msgspec.json.encode(approval | {"note": event.note})
            )
        case Minted():
            await record_minted(conn, event)
            await _advance(conn, o, r, "minted", ", receipt_hash = $5", event.receipt_hash)
        case Rendered():
            await record_rendered(conn, event)
            await _advance(conn, o, r, "rendered")
        case CommandRefused():
            reason = msgspec.json.encode(
                {"command": event.command_type, "reason": event.reason, "at": event.occurred_at}
            )
            if event.command_type == "AttachEvidence":
                await conn.execute(
                    """UPDATE gateway.evidence SET status = 'refused', reason = $4
                       WHERE org_id = $1 AND run_id = $2 AND command_id = $3""",
                    o, r, event.command_id, event.reason,
                )  # fmt: skip
            stage = "refused" if event.command_type == "CreateRun" else "requested"
            await _advance(conn, o, r, stage)  # a refused CreateRun is the first this model hears of its run
            await conn.execute(
                "UPDATE gateway.runs SET refusals = refusals || $3::bytea WHERE org_id = $1 AND run_id = $2",
                o, r, reason,
            )  # fmt: skip

"""The gateway's governance read model (schema `gateway`; the migration is in store.py's list).

Fed only by `run.>` events, like the runs' read model: `IncidentOpened`, `LaneLocked`,
`IncidentAcknowledged`, `LaneUnlocked`, refusals of governance commands, and the `Minted`
(and `Rendered`) receipts of incidents and unlocks, stored beside the runs' receipts. Every fold is an idempotent upsert
that tolerates reordering: an acknowledgement carries the whole incident, an unlock names
its lock, a status only moves forward, and an unlocked lock stays unlocked.

`gateway.lane_locks` is what `POST /runs` is checked against (one indexed read); intake
checks again, authoritatively, when it admits the run. Governance ids — incidents
(`inc_…`), unlocks (`unl_…`), agents (`agent_…`) — never become runs here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import msgspec
from asyncpg import Connection, Pool

from defendable_canonical.events import (
    AnyEvent,
    CommandRefused,
    IncidentAcknowledged,
    IncidentOpened,
    LaneLocked,
    LaneUnlocked,
    Minted,
    Rendered,
)

from .receipt_rows import record_minted, record_rendered

GOVERNANCE_PREFIXES: Final = ("inc_", "unl_", "agent_")
MIGRATION = """
    CREATE TABLE gateway.incidents (
        org_id text NOT NULL,
        incident_id text NOT NULL,
        kind text,
        lane text,
        clause_id text,
        response text,
        profile_key text,
        agent_profile bytea,
        trigger bytea,
        policy bytea,
        opened_at text,
        status text NOT NULL DEFAULT 'open',
        status_rank int NOT NULL DEFAULT 0,
        acknowledgement bytea,
        unlock_id text,
        unlock bytea,
        refusals bytea[] NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (org_id, incident_id)
    );
    CREATE INDEX incidents_listing ON gateway.incidents (org_id, created_at DESC, incident_id DESC);
    CREATE TABLE gateway.lane_locks (
        org_id text NOT NULL,
        incident_id text NOT NULL,
        profile_key text NOT NULL,
        scope text NOT NULL,
        clause_id text NOT NULL,
        reason text NOT NULL DEFAULT '',
        locked_at text NOT NULL,
        unlocked_at text,
        unlock_id text,
        PRIMARY KEY (org_id, incident_id)
    );
    CREATE INDEX lane_locks_held ON gateway.lane_locks (org_id, profile_key) WHERE unlocked_at IS NULL;
    -- an incident's and an unlock's receipts are found by their id (the receipt's run_id)
    CREATE INDEX receipts_by_run ON gateway.receipts (org_id, run_id);
"""


def owns_id(run_id: str) -> bool:
    """An incident's, an unlock's or an agent's id: events about it are not about a run."""
    return run_id.startswith(GOVERNANCE_PREFIXES)


def owns(event: AnyEvent) -> bool:
    """This module folds `event` (store.py folds every other one)."""
    return isinstance(event, IncidentOpened | LaneLocked | IncidentAcknowledged | LaneUnlocked) or owns_id(event.run_id)


# ------------------------------------------------------------------ the fold


async def apply_event(conn: Connection, event: AnyEvent) -> None:
    """Fold one event that `owns`; anything else about a governance id is ignored."""
    o = event.org_id
    match event:
        case Minted():  # an incident's or an unlock's receipt
            await record_minted(conn, event)
        case Rendered():
            await record_rendered(conn, event)
        case IncidentOpened():
            await _upsert_incident(
                conn, o, event.run_id, event.kind, event.lane, event.policy.clause_id, event.response,
                event.profile_key, msgspec.json.encode(event.agent_profile), msgspec.json.encode(event.trigger),
                msgspec.json.encode(event.policy), event.opened_at,
            )  # fmt: skip
        case LaneLocked():
            await conn.execute(
                """INSERT INTO gateway.lane_locks
                     (org_id, incident_id, profile_key, scope, clause_id, reason, locked_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (org_id, incident_id) DO UPDATE SET reason = EXCLUDED.reason""",
                o, event.incident_id, event.profile_key, event.lane, event.clause_id, event.reason, event.locked_at,
            )  # fmt: skip
        case IncidentAcknowledged(receipt=body):
            await _upsert_incident(
                conn, o, body.incident_id, body.kind, body.lane, body.policy.clause_id, body.response,
                body.profile_key, msgspec.json.encode(body.agent_profile), msgspec.json.encode(body.trigger),
                msgspec.json.encode(body.policy), body.opened_at,
            )  # fmt: skip
            await conn.execute(
                """UPDATE gateway.incidents SET acknowledgement = COALESCE(acknowledgement, $3),
                     status = CASE WHEN status_rank < 1 THEN 'acknowledged' ELSE status END,
                     status_rank = GREATEST(status_rank, 1)
                   WHERE org_id = $1 AND incident_id = $2""",
                o, body.incident_id, msgspec.json.encode(body.acknowledgement),
            )  # fmt: skip
        case LaneUnlocked(record=record):
            # Inserted when the unlock overtakes its lock (reordered delivery); the lock then
            # arrives to an unlocked row and only fills in its reason.
            await conn.execute(
                """INSERT INTO gateway.lane_locks
                     (org_id, incident_id, profile_key, scope, clause_id, locked_at, unlocked_at, unlock_id)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                   ON CONFLICT (org_id, incident_id) DO UPDATE
                   SET unlocked_at = COALESCE(gateway.lane_locks.unlocked_at, EXCLUDED.unlocked_at),
                       unlock_id = COALESCE(gateway.lane_locks.unlock_id, EXCLUDED.unlock_id)""",
                o, record.incident_id, record.profile_key, record.lane, record.policy.clause_id, record.locked_at,
                record.approval.decided_at, record.unlock_id,
            )  # fmt: skip
            await conn.execute(
                """UPDATE gateway.incidents SET unlock_id = COALESCE(unlock_id, $3), unlock = COALESCE(unlock, $4)
                   WHERE org_id = $1 AND incident_id = $2""",
                o, record.incident_id, record.unlock_id, msgspec.json.encode(record),
            )  # fmt: skip
        case CommandRefused() if owns_id(event.run_id):
            # An acknowledgement or unlock intake would not admit (an SDK's, or a race the
            # gateway's 409 checks missed) is shown on its incident; a refused heartbeat has
            # no incident to show it on, and no run is invented for it.
            reason = msgspec.json.encode(
                {"command": event.command_type, "reason": event.reason, "at": event.occurred_at}
            )
            await conn.execute(
                """UPDATE gateway.incidents SET refusals = refusals || $3::bytea
                   WHERE org_id = $1 AND incident_id = $2 AND NOT ($3::bytea = ANY(refusals))""",
                o, event.run_id, reason,
            )  # fmt: skip
        case _:
            pass


async def _upsert_incident(conn: Connection, org_id: str, incident_id: str, *fields: Any) -> None:
    await conn.execute(
        """INSERT INTO gateway.incidents (org_id, incident_id, kind, lane, clause_id, response, profile_key,
                                          agent_profile, trigger, policy, opened_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
           ON CONFLICT (org_id, incident_id) DO UPDATE SET
             kind = EXCLUDED.kind, lane = EXCLUDED.lane, clause_id = EXCLUDED.clause_id,
             response = EXCLUDED.response, profile_key = EXCLUDED.profile_key,
             agent_profile = EXCLUDED.agent_profile, trigger = EXCLUDED.trigger, policy = EXCLUDED.policy,
             opened_at = EXCLUDED.opened_at""",
        org_id,
        incident_id,
        *fields,
    )


# ------------------------------------------------------------------ reads


async def held_lock(pool: Pool, org_id: str, profile_key: str, lane: str) -> dict[str, Any] | None:
    """The lock that refuses a new run of this profile in `lane` (its own, else every lane's)."""
    row = await pool.fetchrow(
        """SELECT incident_id, scope, clause_id, reason, locked_at FROM gateway.lane_locks
           WHERE org_id = $1 AND profile_key = $2 AND scope IN ($3, '*') AND unlocked_at IS NULL
           ORDER BY scope = '*', locked_at LIMIT 1""",
        org_id,
        profile_key,
        lane,
    )
    return None if row is None else dict(row)


_COLUMNS: Final = """i.incident_id, i.kind, i.lane, i.clause_id, i.response, i.profile_key, i.agent_profile,
    i.trigger, i.policy, i.opened_at, i.status, i.acknowledgement, i.unlock_id, i.unlock, i.refusals,
    i.created_at, l.locked_at, l.unlocked_at, l.reason AS lock_reason,
    (SELECT r.receipt_hash FROM gateway.receipts r WHERE r.org_id = i.org_id AND r.run_id = i.incident_id)
      AS receipt_hash,
    (SELECT r.receipt_hash FROM gateway.receipts r WHERE r.org_id = i.org_id AND r.run_id = i.unlock_id)
      AS unlock_receipt_hash"""


_MINTED: Final = "EXISTS (SELECT 1 FROM gateway.receipts r WHERE r.org_id = i.org_id AND r.run_id = i.incident_id)"
_STATUS_FILTERS: Final = {
    "open": "i.status = 'open'",
    "acknowledged": f"i.status = 'acknowledged' AND NOT {_MINTED}",
    "minted": _MINTED,
}
STATUSES: Final = tuple(_STATUS_FILTERS)


async def get_incident(pool: Pool, org_id: str, incident_id: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        f"""SELECT {_COLUMNS} FROM gateway.incidents i
            LEFT JOIN gateway.lane_locks l ON l.org_id = i.org_id AND l.incident_id = i.incident_id
            WHERE i.org_id = $1 AND i.incident_id = $2""",  # noqa: S608  # fixed column list
        org_id,
        incident_id,
    )
    return None if row is None else dict(row)


async def list_incidents(
    pool: Pool, org_id: str, status: str | None, cursor: tuple[datetime, str] | None, limit: int
) -> list[dict[str, Any]]:
    """Newest first; `status` one of STATUSES (minted: its receipt is on the chain)."""
    clauses = ["i.org_id = $1"]
    args: list[Any] = [org_id]
    if status is not None:
        clauses.append(_STATUS_FILTERS[status])
    if cursor is not None:
        args += [cursor[0], cursor[1]]
        clauses.append(f"(i.created_at, i.incident_id) < (${len(args) - 1}::timestamptz, ${len(args)})")
    args.append(limit)
    # Only fixed clause text and $n placeholders are interpolated; every value is a bind parameter.
    rows = await pool.fetch(
        f"""SELECT {_COLUMNS} FROM gateway.incidents i
            LEFT JOIN gateway.lane_locks l ON l.org_id = i.org_id AND l.incident_id = i.incident_id
            WHERE {" AND ".join(clauses)}
            ORDER BY i.created_at DESC, i.incident_id DESC LIMIT ${len(args)}""",  # noqa: S608
        *args,
    )
    return [dict(r) for r in rows]

"""Intake's governance tables (schema `intake`; the migration is in store.py's list).

* `governance`: one row per org, the `GovernanceState` as msgspec JSON. Every change is made
  under the row's lock (`SELECT … FOR UPDATE`), in the same transaction as the outbox of the
  events it produced, so a crash loses nothing and a redelivery duplicates nothing.
  `tick_due_ns` is the earliest instant a Tick can change the row (a dark-agent deadline, or
  the next pruning), so the ticker reads only the rows that are due.
* `lane_locks`: the state's locks, one row each, rewritten with the state: what CreateRun is
  checked against, without decoding any state.
* `governance_outbox`: the events produced by inputs that are not intake commands (a
  verdict, a Tick), keyed by the causing event's (or tick's) id. A redelivered verdict finds
  its events here and publishes them again; rows a crash left unpublished are published by
  the ticker. (Commands keep theirs in `commands`, as every intake command does.)
"""

from __future__ import annotations

from collections.abc import Sequence

from asyncpg import Connection, Pool

from .governance import GovernanceState, decode_state, encode_state

MIGRATION = """
    CREATE TABLE intake.governance (
        org_id text PRIMARY KEY,
        state bytea NOT NULL,
        policy text NOT NULL,
        tick_due_ns bigint NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX governance_due ON intake.governance (tick_due_ns);
    CREATE TABLE intake.lane_locks (
        org_id text NOT NULL,
        profile_key text NOT NULL,
        scope text NOT NULL,
        clause_id text NOT NULL,
        incident_id text NOT NULL,
        reason text NOT NULL,
        PRIMARY KEY (org_id, profile_key, scope)
    );
    CREATE TABLE intake.governance_outbox (
        cause_id text PRIMARY KEY,
        org_id text NOT NULL,
        events bytea[] NOT NULL,
        published boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX governance_outbox_unpublished ON intake.governance_outbox (created_at) WHERE NOT published;
"""


async def lock_state(conn: Connection, org_id: str, *, skip_locked: bool = False) -> GovernanceState | None:
    """The org's state, its row locked for the rest of the transaction (created empty if missing).

    With `skip_locked`, None when another transaction holds the row (a Tick on another replica)."""
    suffix = "FOR UPDATE SKIP LOCKED" if skip_locked else "FOR UPDATE"
    query = f"SELECT state FROM intake.governance WHERE org_id = $1 {suffix}"  # noqa: S608  # fixed text
    data = await conn.fetchval(query, org_id)
    if data is not None:
        return decode_state(data)
    if skip_locked:
        return None
    empty = GovernanceState(org_id=org_id)
    await conn.execute(
        """INSERT INTO intake.governance (org_id, state, policy, tick_due_ns) VALUES ($1, $2, '', 0)
           ON CONFLICT (org_id) DO NOTHING""",
        org_id,
        encode_state(empty),
    )
    data = await conn.fetchval(query, org_id)
    return empty if data is None else decode_state(data)


async def save_state(conn: Connection, state: GovernanceState, policy: str, tick_due_ns: int) -> None:
    await conn.execute(
        """UPDATE intake.governance SET state = $2, policy = $3, tick_due_ns = $4, updated_at = now()
           WHERE org_id = $1""",
        state.org_id,
        encode_state(state),
        policy,
        tick_due_ns,
    )


async def replace_locks(conn: Connection, org_id: str, locks: Sequence[tuple[str, str, str, str, str]]) -> None:
    """The org's lock rows become `locks`: (profile_key, scope, clause_id, incident_id, reason)."""
    await conn.execute("DELETE FROM intake.lane_locks WHERE org_id = $1", org_id)
    if locks:
        await conn.executemany(
            "INSERT INTO intake.lane_locks VALUES ($1, $2, $3, $4, $5, $6)", [(org_id, *lock) for lock in locks]
        )


async def lock_reason(conn: Connection, org_id: str, profile_key: str, lane: str) -> str | None:
    """The refusal text of the lock on `lane` (or on every lane) for this profile, if any."""
    reason: str | None = await conn.fetchval(
        """SELECT reason FROM intake.lane_locks WHERE org_id = $1 AND profile_key = $2 AND scope IN ($3, '*')
           ORDER BY scope = '*' LIMIT 1""",
        org_id,
        profile_key,
        lane,
    )
    return reason


async def due_orgs(pool: Pool, now_ns: int, limit: int) -> list[str]:
    rows = await pool.fetch(
        "SELECT org_id FROM intake.governance WHERE tick_due_ns <= $1 ORDER BY tick_due_ns LIMIT $2", now_ns, limit
    )
    return [r["org_id"] for r in rows]


async def outbox_events(conn: Connection, cause_id: str) -> list[bytes] | None:
    events = await conn.fetchval("SELECT events FROM intake.governance_outbox WHERE cause_id = $1", cause_id)
    return None if events is None else list(events)


async def add_outbox(conn: Connection, cause_id: str, org_id: str, events: list[bytes]) -> None:
    await conn.execute(
        "INSERT INTO intake.governance_outbox (cause_id, org_id, events) VALUES ($1, $2, $3)",
        cause_id,
        org_id,
        events,
    )


async def mark_published(pool: Pool, cause_ids: list[str]) -> None:
    await pool.execute(
        "UPDATE intake.governance_outbox SET published = true WHERE cause_id = ANY($1::text[])", cause_ids
    )


async def unpublished(pool: Pool, older_than_s: float, limit: int) -> list[tuple[str, list[bytes]]]:
    """Outbox rows still unpublished `older_than_s` after they were written (a crash came between)."""
    rows = await pool.fetch(
        """SELECT cause_id, events FROM intake.governance_outbox
           WHERE NOT published AND created_at < now() - make_interval(secs => $1)
           ORDER BY created_at LIMIT $2""",
        older_than_s,
        limit,
    )
    return [(r["cause_id"], list(r["events"])) for r in rows]


async def prune_outbox(pool: Pool, older_than_s: float) -> None:
    """Forget published rows past any redelivery: the state's own de-duplication covers the rest."""
    await pool.execute(
        "DELETE FROM intake.governance_outbox WHERE published AND created_at < now() - make_interval(secs => $1)",
        older_than_s,
    )

"""Intake's cook tables (schema `intake`, migration appended in store.py). SQL only.

A cook's state is one row per (org_id, cook_id), locked for the transaction that admits a
command on it. Runs are read from `intake.runs`, always filtered by the cook's org: another
org's run is simply not there.
"""

from __future__ import annotations

import msgspec
from asyncpg import Connection

from .cooks import CookRun, CookState

MIGRATION = """
    CREATE TABLE intake.cooks (
        org_id text NOT NULL,
        cook_id text NOT NULL,
        status text NOT NULL,
        state bytea NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (org_id, cook_id)
    );
"""

_cook_decoder = msgspec.json.Decoder(CookState)
_run_decoder = msgspec.json.Decoder(CookRun)  # a view of the stored RunState: the rest is skipped
RUNS_PER_QUERY = 2_000  # a cook's runs are read in slices: a bounded slice of row bytes at a time


async def load_cook(conn: Connection, org_id: str, cook_id: str) -> CookState | None:
    """Read and lock the cook row for the rest of the transaction."""
    data = await conn.fetchval(
        "SELECT state FROM intake.cooks WHERE org_id = $1 AND cook_id = $2 FOR UPDATE", org_id, cook_id
    )
    return None if data is None else _cook_decoder.decode(data)


async def save_cook(conn: Connection, cook: CookState) -> None:
    await conn.execute(
        """INSERT INTO intake.cooks (org_id, cook_id, status, state) VALUES ($1, $2, $3, $4)
           ON CONFLICT (org_id, cook_id) DO UPDATE SET status = $3, state = $4, updated_at = now()""",
        cook.org_id,
        cook.cook_id,
        cook.status,
        msgspec.json.encode(cook),
    )


async def load_runs(conn: Connection, org_id: str, run_ids: list[str]) -> dict[str, CookRun]:
    """What a cook reads of the org's runs among `run_ids` (at most two eval sets' worth:
    cooks.run_ids bounds it), RUNS_PER_QUERY at a time.

    Not locked: a cook reads verdicts, and a run's verdict never changes once recorded.
    """
    found: dict[str, CookRun] = {}
    for start in range(0, len(run_ids), RUNS_PER_QUERY):
        rows = await conn.fetch(
            "SELECT run_id, state FROM intake.runs WHERE org_id = $1 AND run_id = ANY($2::text[])",
            org_id,
            run_ids[start : start + RUNS_PER_QUERY],
        )
        found.update((row["run_id"], _run_decoder.decode(row["state"])) for row in rows)
    return found

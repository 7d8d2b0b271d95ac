"""The gateway's read model of cooks (table `gateway.cooks`, migration appended in store.py).

Fed like the runs' read model: `store.apply_event` hands every event whose run_id is a
cook's ("cook_<hex>") to `apply_event` here. Upserts are idempotent and a cook's stage only
moves forward (requested → checked | refused → approved | rejected → minted), so a
redelivered or reordered event cannot move it back. A cook's receipt joins
`gateway.receipts` beside the runs' receipts, so /receipts/{hash} and /share/{token} serve it.
"""

from __future__ import annotations

from typing import Any

import msgspec
from asyncpg import Connection, Pool

from defendable_canonical.events import (
    AnyEvent,
    CommandRefused,
    CookApproved,
    CookChecked,
    CookRejected,
    CookRequested,
    Minted,
    Rendered,
)

from .receipt_rows import record_minted, record_rendered

COOK_PREFIX = "cook_"
MIGRATION = """
    CREATE TABLE gateway.cooks (
        org_id text NOT NULL,
        cook_id text NOT NULL,
        project text,
        base_model text,
        cooked_model text,
        dataset bytea,
        eval_set_name text,
        eval_set_items int,
        stage text NOT NULL,
        stage_rank int NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        decision bytea,
        approval bytea,
        receipt_hash text,
        refusals bytea[] NOT NULL DEFAULT '{}',
        PRIMARY KEY (org_id, cook_id)
    );
"""
STAGES = {"requested": 0, "checked": 1, "refused": 1, "approved": 2, "rejected": 2, "minted": 3}


def is_cook(run_id: str) -> bool:
    return run_id.startswith(COOK_PREFIX)


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """What GET /cooks/{id} shows of the referee's CookChecked."""

    eligible: bool
    reasons: list[str]
    noise_floor: str
    flight_sheet: Any
    base_model: str | None
    cooked_model: str | None
    eval_set: Any
    lift: Any
    pre: dict[str, Any]
    post: dict[str, Any]


def decision_of(event: CookChecked) -> Decision:
    return Decision(
        eligible=event.eligible,
        reasons=event.reasons,
        noise_floor=event.noise_floor,
        flight_sheet=event.flight_sheet,
        base_model=event.base_model,
        cooked_model=event.cooked_model,
        eval_set=event.eval_set,
        lift=event.lift,
        pre={"mean_score": event.mean_pre, "items": event.pre},
        post={"mean_score": event.mean_post, "items": event.post},
    )


# ------------------------------------------------------------------ requests recorded by the gateway itself


async def record_requested_cook(
    pool: Pool, org_id: str, cook_id: str, project: str, base_model: str, cooked_model: str, dataset: bytes,
    eval_set_name: str, eval_set_items: int,
) -> None:  # fmt: skip
    await pool.execute(
        """INSERT INTO gateway.cooks (org_id, cook_id, project, base_model, cooked_model, dataset, eval_set_name,
                                      eval_set_items, stage, stage_rank)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'requested', 0)""",
        org_id, cook_id, project, base_model, cooked_model, dataset, eval_set_name, eval_set_items,
    )  # fmt: skip


async def get_cook(pool: Pool, org_id: str, cook_id: str) -> dict[str, Any] | None:
    row = await pool.fetchrow("SELECT * FROM gateway.cooks WHERE org_id = $1 AND cook_id = $2", org_id, cook_id)
    return None if row is None else dict(row)


# ------------------------------------------------------------------ the fold


async def _advance(conn: Connection, org_id: str, cook_id: str, stage: str, sets: str = "", *args: Any) -> None:
    """Upsert the cook and move its stage forward only (as store._advance does for runs)."""
    # `sets` is fixed SQL from `apply_event` (with $n placeholders); every value is a bind parameter.
    await conn.execute(
        f"""INSERT INTO gateway.cooks (org_id, cook_id, stage, stage_rank) VALUES ($1, $2, $3, $4)
            ON CONFLICT (org_id, cook_id) DO UPDATE SET
              stage = CASE WHEN gateway.cooks.stage_rank < $4 THEN $3 ELSE gateway.cooks.stage END,
              stage_rank = GREATEST(gateway.cooks.stage_rank, $4) {sets}""",  # noqa: S608
        org_id,
        cook_id,
        stage,
        STAGES[stage],
        *args,
    )


async def apply_event(conn: Connection, event: AnyEvent) -> None:
    o, c = event.org_id, event.run_id
    match event:
        case CookRequested():  # also fills in a cook published straight to NATS, which the gateway never saw
            await _advance(
                conn, o, c, "requested",
                ", project = $5, base_model = $6, cooked_model = $7, dataset = $8, eval_set_name = $9,"
                " eval_set_items = $10",
                event.project, event.pre.model, event.post.model, msgspec.json.encode(event.dataset),
                event.eval_set.name, len(event.eval_set.items),
            )  # fmt: skip
        case CookChecked():
            stage = "checked" if event.eligible else "refused"
            await _advance(conn, o, c, stage, ", decision = $5", msgspec.json.encode(decision_of(event)))
        case CookApproved():
            approval = msgspec.to_builtins(event.receipt.approval) | {"decision": "approve"}
            await _advance(conn, o, c, "approved", ", approval = $5", msgspec.json.encode(approval))
        case CookRejected():
            approval = {"decision": "reject", "approver": event.approver, "decided_at": event.decided_at}
            await _advance(
                conn, o, c, "rejected", ", approval = $5", msgspec.json.encode(approval | {"note": event.note})
            )
        case Minted():
            await record_minted(conn, event)
            await _advance(conn, o, c, "minted", ", receipt_hash = $5", event.receipt_hash)
        case Rendered():
            await record_rendered(conn, event)
        case CommandRefused():
            reason = msgspec.json.encode(
                {"command": event.command_type, "reason": event.reason, "at": event.occurred_at}
            )
            # A refused request ends the cook; a refused decision leaves it where it was.
            stage = "refused" if event.command_type == "RequestCook" else "requested"
            await _advance(conn, o, c, stage, ", refusals = gateway.cooks.refusals || $5::bytea", reason)

"""Cook commands through intake: one transaction each, as `app.admit` does for runs.

Plan for one RequestCook or DecideCook (app.py has already re-published the events of a
command it saw before, and publishes what this returns):
1. lock the cook's row; for a request, read the org's runs it names (bounded first);
2. wait (Transient, a redelivery later) while what the command rests on is on its way:
   a run's verdict, the cook's request, the referee's decision — the gateway accepts a
   command once *its* read model shows the state, and intake's own consumers may lag;
3. apply the pure rule (cooks.py): new state and events, or a CommandRefused;
4. store the state and the command's events (the outbox) in the same transaction.
"""

from __future__ import annotations

import asyncio

from asyncpg import Pool

from defendable_canonical.events import CookChecked, DecideCook, Event, RequestCook, encode
from defendable_runtime.messaging import Transient

from . import admission, cook_store, cooks, store
from .admission import Refusal

ORDERING_RETRIES = 5  # a decision may overtake its cook's request on redelivery (as app.ORDERING_RETRIES)
VERDICT_WAIT_RETRIES = 30  # ~1.5 min of deliveries for a verdict or a cook decision on its way
# Requests admitted at once: each reads up to 20,000 runs and builds an event of up to ~6.4 MB,
# so a burst of cooks waits here rather than multiplying that (as the referee decides two at once).
REQUESTS_AT_ONCE = 2
_requesting = asyncio.Semaphore(REQUESTS_AT_ONCE)


async def admit_cook(pool: Pool, command: RequestCook | DecideCook, delivery: int, now: str) -> list[Event]:
    """Admit one cook command (module plan); the events to publish once this returns."""
    if isinstance(command, RequestCook):
        async with _requesting:
            return await _admit(pool, command, delivery, now)
    return await _admit(pool, command, delivery, now)


async def _admit(pool: Pool, command: RequestCook | DecideCook, delivery: int, now: str) -> list[Event]:
    org_id, cook_id = command.org_id, command.run_id
    async with pool.acquire() as conn, conn.transaction():
        # 1. The cook, locked; the runs a request names.
        cook = await cook_store.load_cook(conn, org_id, cook_id)
        try:
            event: Event
            match command:
                case RequestCook():
                    runs = await cook_store.load_runs(conn, org_id, cooks.run_ids(command))
                    # 2. Verdicts on their way.
                    if (waiting := cooks.awaiting_verdict(runs.values())) and delivery < VERDICT_WAIT_RETRIES:
                        raise Transient(f"cook {cook_id} waits for the verdicts of {', '.join(waiting[:5])}")
                    # 3. The rule.
                    cook, event = cooks.request_cook(command, cook, runs, now)
                case DecideCook():
                    if cook is None and delivery < ORDERING_RETRIES:
                        raise Transient(f"cook {cook_id} not known yet")
                    if cook is not None and cook.status == "requested" and delivery < VERDICT_WAIT_RETRIES:
                        raise Transient(f"decision on cook {cook_id} waits for the referee's")
                    event = cooks.decide(command, cook, now)
        except Refusal as refusal:
            event = admission.refused(command.command_id, org_id, cook_id, type(command).__name__, str(refusal), now)
        else:
            assert cook is not None
            await cook_store.save_cook(conn, cook)
        # 4. The outbox.
        await store.record_command(conn, command.command_id, org_id, cook_id, [encode(event)])
    return [event]


async def record_cook_checked(pool: Pool, checked: CookChecked) -> None:
    """Note the referee's decision, so that a human's may follow (idempotent under redelivery)."""
    async with pool.acquire() as conn, conn.transaction():
        cook = await cook_store.load_cook(conn, checked.org_id, checked.run_id)
        if cooks.record_checked(cook, checked):
            assert cook is not None
            await cook_store.save_cook(conn, cook)

"""A service stopped gracefully (SIGTERM, as a deployment does) finishes what it is handling,
so its stop is quick and the next process picks up at once, not after the ack wait.

FastStream runs `on_shutdown` hooks before it stops the consumers: a service that closed its
pool there failed its running handlers, waited out the 15 s graceful timeout and left their
messages to come back after the ack wait. Services now close resources in `after_shutdown`;
`tests/runtime/test_stop_hand_back.py` covers the messages a stopping consumer was sent but
never fetched.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from defendable.client import AsyncClient
from defendable_gateway.admin import CreatedOrg
from defendable_stack.servers import Stack

from .conftest import Services, create
from .test_crash_ledger import LONG_ACK_WAIT_S, SETTLE_S, bounded

COMMANDS = 600
GRACEFUL_TIMEOUT_S = 15.0  # FastStream's default, which the services keep


async def created_count(conn: asyncpg.Connection, org_id: str) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM intake.runs WHERE org_id = $1", org_id))


async def test_intake_stopped_mid_stream_finishes_its_batch_and_the_next_intake_takes_the_rest(
    stack: Stack, services: Services, org: CreatedOrg, submitter: AsyncClient
) -> None:
    # 1. The commands queue in INGEST while no intake runs; an intake with a 30 s ack wait (so
    # that a hand-back and a redelivery cannot be mistaken for each other) starts on them and
    # is stopped as soon as it has admitted its first run.
    assert await asyncio.to_thread(services.stop, "intake") == 0
    try:
        run_ids = await bounded(COMMANDS, 20, lambda _: create(submitter))
    finally:
        services.start("intake", CONSUMER_ACK_WAIT_S=str(LONG_ACK_WAIT_S))
    conn = await asyncpg.connect(stack.database_url)
    try:
        deadline = time.monotonic() + SETTLE_S
        while not await created_count(conn, org.org_id):
            assert time.monotonic() < deadline, "the restarted intake admitted nothing"
            await asyncio.sleep(0.005)
        stopping = time.monotonic()
        assert await asyncio.to_thread(services.stop, "intake") == 0, "intake did not exit cleanly on SIGTERM"
        stop_took = time.monotonic() - stopping
        before = await created_count(conn, org.org_id)
        assert 0 < before < COMMANDS, f"the stop must land mid-stream: {before} of {COMMANDS} admitted"

        # 2. A fresh intake (the same ack wait: the consumer's current one times redeliveries)
        # admits the rest well before any of it could come back by the ack wait.
        restarted = time.monotonic()
        services.start("intake", CONSUMER_ACK_WAIT_S=str(LONG_ACK_WAIT_S))
        count = before
        while count < COMMANDS and time.monotonic() - restarted < SETTLE_S:
            await asyncio.sleep(0.05)
            count = await created_count(conn, org.org_id)
        took = time.monotonic() - restarted
    finally:
        await conn.close()
        assert await asyncio.to_thread(services.stop, "intake") == 0
        services.start("intake")  # the default ack wait again, for the tests after this one
    assert count == COMMANDS, f"{count} of {COMMANDS} runs admitted ({before} before the stop)"
    # Redeliveries are timed from delivery, before the restart: half the ack wait tells them apart.
    assert took < LONG_ACK_WAIT_S / 2, f"the rest took {took:.1f} s: they waited for the ack wait"
    # FastStream waits up to 15 s (its graceful timeout) for running handlers: they must finish.
    assert stop_took < GRACEFUL_TIMEOUT_S, f"the stop took {stop_took:.1f} s: running handlers did not finish"
    await bounded(len(run_ids), 20, lambda i: submitter.wait_for(run_ids[i], ("created",), timeout=SETTLE_S))

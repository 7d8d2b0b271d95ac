"""A live process keeps what it fetched past a short ack wait (`defendable_runtime.progress`).

Each service is restarted here with a 1.5 s ack wait and held up for four of them on a
row lock the test takes in its database: a mint waiting for the org's head row, a run's
commands waiting for the run's row. Nothing may be redelivered meanwhile, not even to a
second replica pulling from the same durable (without the progress reports, each held
message is), and once the lock goes everything completes exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import ConsumerInfo

from defendable.client import AsyncClient
from defendable_canonical.subjects import INGEST_STREAM, RUNS_STREAM
from defendable_gateway.admin import CreatedOrg
from defendable_stack.servers import Stack

from .conftest import Services, create
from .memo import EVIDENCE, memo
from .test_crash_ledger import (
    SETTLE_S,
    approve_all,
    assert_one_gapless_receipt_per_run,
    checked_runs,
    receipt_count,
    receipt_rows,
    wait_for_receipts,
)

ACK_WAIT_S = 1.5


@pytest.fixture
async def nc(stack: Stack) -> AsyncIterator[NatsClient]:
    client = await nats.connect(stack.nats_url)
    yield client
    await client.close()


async def restarted(services: Services, name: str, ack_wait: float | None) -> None:
    assert await asyncio.to_thread(services.stop, name) == 0
    services.start(name, **({} if ack_wait is None else {"CONSUMER_ACK_WAIT_S": str(ack_wait)}))


async def held_by(nc: NatsClient, stream: str, durable: str, count: int) -> ConsumerInfo:
    """The consumer once `count` messages are delivered to it and unanswered."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        info: ConsumerInfo = await nc.jetstream().consumer_info(stream, durable)
        if (info.num_ack_pending or 0) >= count or time.monotonic() > deadline:
            assert info.num_ack_pending == count, info
            return info
        await asyncio.sleep(0.05)


async def held_past_the_ack_wait(
    nc: NatsClient, stream: str, durable: str, count: int, still_waiting: Callable[[], Awaitable[None]]
) -> None:
    """`count` messages held by `durable` for four ack waits: none redelivered, none answered,
    and a second replica pulling from the same durable gets none of them."""
    await held_by(nc, stream, durable, count)
    await asyncio.sleep(4 * ACK_WAIT_S)
    replica = await nc.jetstream().pull_subscribe_bind(durable, stream)
    try:
        with pytest.raises(nats.errors.TimeoutError):
            taken = await replica.fetch(1, timeout=1.0)
            pytest.fail(f"a second replica was handed a held message: {taken[0].subject}")
    finally:
        await replica.unsubscribe()
    info = await nc.jetstream().consumer_info(stream, durable)
    assert info.num_redelivered == 0, info
    assert info.num_ack_pending == count, info
    await still_waiting()


@pytest.mark.timeout(600)
async def test_a_held_up_ledger_keeps_its_approvals_past_a_short_ack_wait(
    stack: Stack, services: Services, org: CreatedOrg, submitter: AsyncClient, approver: AsyncClient, nc: NatsClient
) -> None:
    org_id = org.org_id
    run_ids = await checked_runs(submitter, 20)
    await restarted(services, "ledger", ACK_WAIT_S)
    try:
        await approver.approve(run_ids[0])
        assert await wait_for_receipts(stack.database_url, org_id, 1) == 1  # the head row exists now
        lock = await asyncpg.connect(stack.database_url)
        try:
            async with lock.transaction():
                await lock.execute("SELECT 1 FROM ledger.heads WHERE org_id = $1 FOR UPDATE", org_id)
                await approve_all(approver, run_ids[1:])

                async def nothing_minted() -> None:
                    assert await receipt_count(stack.database_url, org_id) == 1

                await held_past_the_ack_wait(nc, RUNS_STREAM, "ledger", len(run_ids) - 1, nothing_minted)
        finally:
            await lock.close()
        assert await wait_for_receipts(stack.database_url, org_id, len(run_ids)) == len(run_ids)
        assert_one_gapless_receipt_per_run(await receipt_rows(stack.database_url, org_id), run_ids)
    finally:
        await restarted(services, "ledger", None)  # the default ack wait, for the tests after this one


@pytest.mark.timeout(600)
async def test_held_up_intake_keeps_a_runs_queued_commands_past_a_short_ack_wait(
    stack: Stack, services: Services, submitter: AsyncClient, nc: NatsClient
) -> None:
    """The first command blocks on the run's row; the run's later ones wait behind it, in order."""
    run_id = await create(submitter)
    await submitter.wait_for(run_id, ("created",))
    await restarted(services, "intake", ACK_WAIT_S)
    try:
        lock = await asyncpg.connect(stack.database_url)
        try:
            async with lock.transaction():
                await lock.execute("SELECT 1 FROM intake.runs WHERE run_id = $1 FOR UPDATE", run_id)
                for name, data in EVIDENCE.items():
                    await submitter.add_file(run_id, name, data)
                await submitter.submit(run_id, memo())
                commands = len(EVIDENCE) + 1

                async def nothing_admitted() -> None:
                    run = await submitter.run(run_id)
                    attached = [e for e in run["evidence"] if e["status"] == "attached"]
                    assert run["stage"] == "created" and attached == [], run

                await held_past_the_ack_wait(nc, INGEST_STREAM, "intake", commands, nothing_admitted)
        finally:
            await lock.close()
        run = await submitter.wait_for(run_id, ("checked",), timeout=SETTLE_S)
        assert run["stage"] == "checked", run
        assert [e["status"] for e in run["evidence"]] == ["attached"] * len(EVIDENCE), run
    finally:
        await restarted(services, "intake", None)

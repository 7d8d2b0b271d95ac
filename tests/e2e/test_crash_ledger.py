"""A ledger SIGKILLed mid-mint: every approval is minted exactly once, the chain has no gap (DESIGN.md §6).

Approvals the dead process had fetched but not acked come back after the
consumer's ack wait (`CONSUMER_ACK_WAIT_S`, 10 s: a live process reports progress
on what it holds, `defendable_runtime.progress`, so the wait can be short); the
restarted ledger finds what was committed before the kill through its head lock
and `minted_for`, and mints only the rest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest

from defendable.client import ApiError, AsyncClient
from defendable_gateway.admin import CreatedOrg
from defendable_stack.servers import Stack

from .conftest import Services, checked_run

T = TypeVar("T")

RUNS = 200
CONCURRENCY = 20
# Mints resume after the killed consumer's ack wait; the machine is shared: be generous.
SETTLE_S = 240.0
ACK_WAIT_S = 10.0  # every consumer's by default (`defendable_runtime.progress`)
LONG_ACK_WAIT_S = 30.0  # what it was before processes reported progress on what they hold


async def bounded(count: int, concurrency: int, make: Callable[[int], Awaitable[T]]) -> list[T]:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> T:
        async with gate:
            return await make(i)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def checked_runs(client: AsyncClient, count: int, concurrency: int = CONCURRENCY) -> list[str]:
    return await bounded(count, concurrency, lambda _: checked_run(client))


async def approve_all(client: AsyncClient, run_ids: list[str], concurrency: int = CONCURRENCY) -> None:
    await bounded(len(run_ids), concurrency, lambda i: client.approve(run_ids[i], note=f"approval {i}"))


async def receipt_rows(database_url: str, org_id: str) -> list[tuple[int, str]]:
    """(seq, run_id) of the org's receipts in seq order, straight from the ledger's table."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT seq, run_id FROM ledger.receipts WHERE org_id = $1 ORDER BY seq", org_id)
    finally:
        await conn.close()
    return [(int(r["seq"]), str(r["run_id"])) for r in rows]


async def receipt_count(database_url: str, org_id: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM ledger.receipts WHERE org_id = $1", org_id))
    finally:
        await conn.close()


async def wait_for_receipts(database_url: str, org_id: str, expected: int, within: float = SETTLE_S) -> int:
    """Poll until the org has `expected` receipts; return the last count (a caller asserts it)."""
    deadline = time.monotonic() + within
    count = -1
    while time.monotonic() < deadline:
        count = await receipt_count(database_url, org_id)
        if count >= expected:
            await asyncio.sleep(2.0)  # anything beyond `expected` (a double mint) would land now
            return await receipt_count(database_url, org_id)
        await asyncio.sleep(0.5)
    return count


async def patient(call: Callable[[], Awaitable[T]], within: float = SETTLE_S) -> T:
    """Retry a read through a dependency outage (5xx, refused connections) until it answers."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await call()
        except (ApiError, httpx.HTTPError, OSError, TimeoutError) as exc:
            if (isinstance(exc, ApiError) and exc.status < 500) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)


async def verified_chain(client: AsyncClient) -> dict[str, Any]:
    async def ask() -> dict[str, Any]:
        response = await client.get("/ledger/verify")
        if response.status_code != 200:
            raise ApiError(response.status_code, response.text)
        body: dict[str, Any] = response.json()
        return body

    return await patient(ask)


async def assert_every_run_has_its_receipt(
    client: AsyncClient, run_ids: list[str], rows: list[tuple[int, str]]
) -> None:
    seq_of = {run_id: seq for seq, run_id in rows}

    async def check(i: int) -> None:
        run_id = run_ids[i]
        await patient(lambda: client.wait_for(run_id, ("minted", "rendered"), timeout=SETTLE_S))
        status, body = await client.receipt(run_id)
        assert status == 200, (run_id, status, body)
        assert body["payload"]["run_id"] == run_id and body["payload"]["seq"] == seq_of[run_id]

    await bounded(len(run_ids), CONCURRENCY, check)


def assert_one_gapless_receipt_per_run(rows: list[tuple[int, str]], run_ids: list[str]) -> None:
    assert [seq for seq, _ in rows] == list(range(1, len(run_ids) + 1)), "the chain has a gap or a repeat"
    minted = [run_id for _, run_id in rows]
    assert len(set(minted)) == len(minted), "a run was minted twice"
    assert set(minted) == set(run_ids)


async def assert_one_verified_chain(
    database_url: str, client: AsyncClient, org_id: str, run_ids: list[str]
) -> list[tuple[int, str]]:
    """The org's table holds one gapless receipt per run, and the ledger verifies the whole
    chain; the rows, (seq, run_id) in seq order, for further checks."""
    rows = await receipt_rows(database_url, org_id)
    assert_one_gapless_receipt_per_run(rows, run_ids)
    report = await verified_chain(client)
    assert report["ok"] is True and report["length"] == len(run_ids) and report["first_bad"] is None, report
    return rows


@pytest.mark.timeout(900)
async def test_ledger_sigkill_with_200_approved_runs_in_flight_mints_each_exactly_once(
    stack: Stack, services: Services, org: CreatedOrg, submitter: AsyncClient, approver: AsyncClient
) -> None:
    org_id = org.org_id
    run_ids = await checked_runs(submitter, RUNS)

    # 1. Approve all 200 while watching the table; SIGKILL the ledger at its first committed receipt.
    async def kill_at_first_receipt() -> tuple[int, float]:
        conn = await asyncpg.connect(stack.database_url)
        try:
            for _ in range(int(SETTLE_S / 0.01)):
                count = int(await conn.fetchval("SELECT count(*) FROM ledger.receipts WHERE org_id = $1", org_id))
                if count:
                    await asyncio.to_thread(services.kill, "ledger")
                    return count, time.monotonic()
                await asyncio.sleep(0.01)
        finally:
            await conn.close()
        raise AssertionError("no receipt was minted while the approvals went in")

    killer = asyncio.create_task(kill_at_first_receipt())
    await approve_all(approver, run_ids)
    seen_at_kill, killed_at = await asyncio.wait_for(killer, SETTLE_S)
    survived_kill = await receipt_count(stack.database_url, org_id)
    assert 0 < survived_kill < RUNS, f"the kill must land mid-mint: {survived_kill} of {RUNS} were minted"

    # 2. A fresh ledger finishes the work, including the dead one's unacked batch, which comes
    # back after the short ack wait rather than after the 30 s it used to be.
    services.start("ledger")
    final = await wait_for_receipts(stack.database_url, org_id, RUNS)
    took = time.monotonic() - killed_at
    assert final == RUNS, f"{final} receipts for {RUNS} approvals ({seen_at_kill} seen at the kill)"
    assert took < LONG_ACK_WAIT_S, f"minting resumed {took:.1f} s after the kill (ack wait {ACK_WAIT_S} s)"

    rows = await assert_one_verified_chain(stack.database_url, approver, org_id, run_ids)
    await assert_every_run_has_its_receipt(approver, run_ids, rows)


@pytest.mark.timeout(900)
async def test_ledger_stopped_mid_mint_hands_back_what_it_fetched(
    stack: Stack, services: Services, org: CreatedOrg, submitter: AsyncClient, approver: AsyncClient
) -> None:
    """A graceful stop (SIGTERM) finishes the batches it took and hands back the approvals still
    waiting for the minter, so a fresh ledger mints them at once, not after the ack wait (30 s
    here, so that a hand-back and a redelivery cannot be mistaken for each other)."""
    org_id = org.org_id
    run_ids = await checked_runs(submitter, RUNS)
    # 1. All 200 approvals queue in JetStream while no ledger runs; then a ledger minting ten per
    # transaction fetches them all at once and stops at its first committed receipt.
    assert services.stop("ledger") == 0
    await approve_all(approver, run_ids)
    services.start("ledger", LEDGER_MINT_BATCH="10", CONSUMER_ACK_WAIT_S=str(LONG_ACK_WAIT_S))
    conn = await asyncpg.connect(stack.database_url)
    try:
        deadline = time.monotonic() + SETTLE_S
        while not await conn.fetchval("SELECT count(*) FROM ledger.receipts WHERE org_id = $1", org_id):
            assert time.monotonic() < deadline, "the restarted ledger minted nothing"
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
    assert await asyncio.to_thread(services.stop, "ledger") == 0, "the ledger did not exit cleanly on SIGTERM"
    survived_stop = await receipt_count(stack.database_url, org_id)
    assert 0 < survived_stop < RUNS, f"the stop must land mid-mint: {survived_stop} of {RUNS} were minted"

    # 2. A fresh ledger mints the rest well before any of it could have come back by the ack wait.
    restarted = time.monotonic()
    services.start("ledger", CONSUMER_ACK_WAIT_S=str(LONG_ACK_WAIT_S))
    final = await wait_for_receipts(stack.database_url, org_id, RUNS, within=SETTLE_S)
    took = time.monotonic() - restarted
    assert final == RUNS, f"{final} receipts for {RUNS} approvals ({survived_stop} before the stop)"
    assert took < LONG_ACK_WAIT_S, f"the rest took {took:.1f} s: the stopped ledger did not hand them back"
    await assert_one_verified_chain(stack.database_url, approver, org_id, run_ids)

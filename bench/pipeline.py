"""Whole-stack figures: sustained full runs/s, approve→minted latency, ledger mints/s for one org."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import nats

from defendable.client import AsyncClient
from defendable_canonical.events import Approved, derive_id, encode
from defendable_canonical.perf import typical_body
from defendable_canonical.subjects import event_subject
from defendable_gateway.admin import create_org
from defendable_stack.demo import SHEET, memo


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def full_runs(env: dict[str, str], base_url: str, runs: int, concurrency: int) -> dict[str, Any]:
    """Each run: create → 10 KiB evidence → submission → checked → approve → minted, `concurrency` at a time."""
    org = await create_org(env["DATABASE_URL"], "Bench Runs")
    keys = {k.role: k.key for k in org.keys}
    submitter, approver = AsyncClient(base_url, keys["submitter"]), AsyncClient(base_url, keys["approver"])
    latencies: list[float] = []
    evidence = os.urandom(10 * 1024)
    submission = memo()

    async def one() -> None:
        run_id = await submitter.create_run("bench", SHEET, {"model": "bench", "harness": "bench"})
        for name in ("term_sheet.pdf", "t12.csv", "appraisal.pdf"):
            if name == "term_sheet.pdf":
                await submitter.add_file(run_id, name, evidence)
            else:
                await submitter.add_note(run_id, name, "see term sheet")
        await submitter.submit(run_id, submission)
        await submitter.wait_for(run_id, ("checked",))
        approved_at = time.perf_counter()
        await approver.approve(run_id)
        await approver.wait_for(run_id, ("minted", "rendered"))  # long-poll: woken by the read model
        latencies.append(time.perf_counter() - approved_at)

    sem = asyncio.Semaphore(concurrency)

    async def bounded() -> None:
        async with sem:
            await one()

    start = time.perf_counter()
    await asyncio.gather(*(bounded() for _ in range(runs)))
    elapsed = time.perf_counter() - start
    await submitter.aclose()
    await approver.aclose()
    return {
        "runs": runs,
        "concurrency": concurrency,
        "full_runs_per_s": runs / elapsed,
        "approve_to_minted_p50_ms": 1000 * statistics.median(latencies),
        "approve_to_minted_p99_ms": 1000 * percentile(latencies, 0.99),
        "note": "each run adds two evidence notes beside the 10 KiB file so the memo's claims resolve",
    }


async def publish_approvals(nats_url: str, org_id: str, n: int, tag: str) -> None:
    """`n` approvals of typical bodies for `org_id`, as intake publishes them, 500 in flight at a time."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for base in range(0, n, 500):
        events = []
        for i in range(base, min(n, base + 500)):
            body = typical_body(i, org_id)
            events.append(
                Approved(
                    event_id=derive_id("ev", tag, org_id, str(i)),
                    org_id=org_id,
                    run_id=body.run_id,
                    occurred_at=now,
                    producer="bench",
                    receipt=body,
                )
            )
        await asyncio.gather(
            *(js.publish(event_subject(e), encode(e), headers={"Nats-Msg-Id": e.event_id}) for e in events)
        )
    await nc.close()


async def ledger_mints(
    env: dict[str, str],
    n: int,
    stop_ledger: Callable[[], None],
    start_ledger: Callable[[], None],
    cpu: Callable[[], dict[str, float]],
    org_id: str | None = None,
) -> dict[str, Any]:
    """Approvals queued while the ledger is down, then drained: receipts/s for one org
    (`org_id`, a fresh one by default), and the CPU microseconds each process spent per
    receipt while draining (`cpu()` reads every process's CPU seconds)."""
    org_id = org_id or f"bench-ledger-{os.urandom(4).hex()}"
    stop_ledger()
    await publish_approvals(env["NATS_URL"], org_id, n, "bench")
    conn = await asyncpg.connect(env["DATABASE_URL"])
    try:
        start_ledger()
        # The head row moves in the same transaction as the receipts it counts, and reading
        # it costs the same at any chain length (a count(*) every 10 ms did not).
        head = "SELECT coalesce(max(seq), 0) FROM ledger.heads WHERE org_id = $1"
        count, deadline = 0, time.monotonic() + 300  # a ledger that died would leave this waiting
        while count == 0:
            count = await conn.fetchval(head, org_id)
            await asyncio.sleep(0.005)
            if time.monotonic() > deadline:
                raise TimeoutError("the ledger minted nothing in 300 s: see its log")
        first, t0, before = count, time.perf_counter(), cpu()
        while count < n:
            await asyncio.sleep(0.01)
            count = await conn.fetchval(head, org_id)
            if time.monotonic() > deadline + 600:
                raise TimeoutError(f"the ledger minted {count} of {n} approvals in 900 s: see its log")
        elapsed, after = time.perf_counter() - t0, cpu()
    finally:
        await conn.close()
    minted = count - first
    return {
        "approvals": n,
        "mints_per_s": minted / elapsed,
        "first_batch": first,
        "cpu_us_per_mint": {name: round(1e6 * (after[name] - before.get(name, 0.0)) / minted, 1) for name in after},
    }

"""The transparency log's figures (`python -m bench --only tlog`), on the bench's stack.

- ``proofs_served``: inclusion proofs served/s over HTTP, `GET /ledger/proof/inclusion?hash=`
  on the gateway with an org key (`concurrency` requests in flight, httpx), for receipts of
  an org the ledger has just minted; the gateway asks the ledger over NATS request-reply
  (`svc.ledger.tlog`). Beside it, the same question asked of the ledger over NATS directly,
  and the CPU each process spent per proof. Sampled answers are checked (RFC 9162).
- ``checkpoint_cost``: what `tlog.extend_log` costs inside each mint transaction — append a
  batch's leaves from the stored border, consistency proof from the last checkpoint, sign
  the new checkpoint, COPY the nodes, insert the checkpoint — timed in this process against
  the bench's PostgreSQL on a fresh org, batches of LEDGER_MINT_BATCH (2,000: what the mint
  loop takes while draining a backlog) from a tree of ``tree_before`` leaves, before the
  mint runs; ``checkpoint_cost_after_mints`` again after them, at the median batch the "on"
  runs took (PostgreSQL then vacuums what they wrote: slower by wall clock, not by CPU).
  ``in_process`` splits out the pure work (Merkle append of a batch, consistency proof and
  Ed25519 signature of the note) and, for scale, the per-receipt Ed25519 signatures of the
  same batch.
- ``mint_rate``: ledger mints/s for one org (`pipeline.ledger_mints`: a backlog drained, render
  and the gateway stopped) with the log on and with LEDGER_TLOG=off (a benchmarking knob of the
  ledger, never for production), the ledger restarted between runs, alternating on/off
  ``repeats`` times; the medians, and their ratio against the target (with ≥ 0.80 × without).
  "Off" skips the Merkle nodes and the checkpoint signing and publishing; receipts are still
  signed (skipping their signature would store unverifiable receipts), and that cost is
  reported in-process beside it (``checkpoint_cost.in_process.receipt_signatures_ms``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import msgspec
import nats

from defendable_canonical.checkpoint import Checkpoint, sign_checkpoint
from defendable_canonical.merkle import MerkleTree, receipt_leaf_hash, verify_inclusion
from defendable_canonical.note import Ed25519Signer
from defendable_canonical.subjects import LEDGER_TLOG
from defendable_canonical.tlog_api import DEFAULT_ORIGIN_PREFIX, InclusionAnswer, InclusionQuery, answer_decoder
from defendable_gateway.admin import create_org
from defendable_ledger import tlog
from defendable_ledger.keys import Signer

from .pipeline import ledger_mints, percentile, publish_approvals

RATIO_TARGET = 0.80  # mints/s with the log on ÷ with LEDGER_TLOG=off (the floor)
DEFAULT_MINT_BATCH = int(os.environ.get("LEDGER_MINT_BATCH", "2000"))  # the ledger's own default


def check_answer(answer: dict[str, Any] | InclusionAnswer, receipt_hash: str) -> None:
    """The proof links the receipt's leaf to the root it names (raises otherwise)."""
    a = answer if isinstance(answer, InclusionAnswer) else msgspec.convert(answer, InclusionAnswer)
    assert a.receipt_hash == receipt_hash, (a.receipt_hash, receipt_hash)
    hashes = [base64.b64decode(h) for h in a.hashes]
    verify_inclusion(receipt_leaf_hash(receipt_hash), a.leaf_index, a.tree_size, hashes, base64.b64decode(a.root_hash))


async def in_flight(n: int, concurrency: int, one: Callable[[int], Any]) -> tuple[float, list[float]]:
    """Run ``one(i)`` for i < n, ``concurrency`` at a time: (elapsed seconds, latencies)."""
    latencies: list[float] = []
    sem = asyncio.Semaphore(concurrency)

    async def timed(i: int) -> None:
        async with sem:
            t = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(timed(i) for i in range(n)))
    return time.perf_counter() - t0, latencies


def cpu_per(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float | None]:
    """CPU µs per operation by process; None where it went down (a PostgreSQL backend that
    exited meanwhile takes its CPU seconds with it)."""
    spent = {k: after[k] - before.get(k, 0.0) for k in after}
    return {k: round(1e6 * v / n, 1) if v >= 0 else None for k, v in spent.items()}


async def proofs_rate(
    n: int, concurrency: int, one: Callable[..., Awaitable[None]], cpu: Callable[[], dict[str, float]]
) -> dict[str, Any]:
    """``one(i)`` for n picks, ``concurrency`` in flight, after 50 checked warm-ups: rate, latency, CPU."""
    for i in range(50):
        await one(i, check=True)
    before = cpu()
    elapsed, latencies = await in_flight(n, concurrency, one)
    after = cpu()
    return {
        "proofs_per_s": round(n / elapsed, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 2),
        "p99_ms": round(1000 * percentile(latencies, 0.99), 2),
        "cpu_us_per_proof": cpu_per(before, after, n),
    }


async def proofs_served(
    env: dict[str, str], base_url: str, quick: bool, cpu: Callable[[], dict[str, float]], concurrency: int = 16
) -> dict[str, Any]:
    """Mint ``receipts`` for a fresh org (gateway up, so its read model has them), then ask
    for inclusion proofs of random ones over HTTP, and over NATS directly."""
    receipts = 2_000 if quick else 10_000
    n = 1_000 if quick else 5_000
    org = await create_org(env["DATABASE_URL"], f"Bench Proofs {os.urandom(3).hex()}")
    key = next(k.key for k in org.keys if k.role == "submitter")
    await publish_approvals(env["NATS_URL"], org.org_id, receipts, "bench-proofs")
    conn = await asyncpg.connect(env["DATABASE_URL"])
    try:
        deadline = time.monotonic() + 300
        count = 0
        while count < receipts:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the gateway's read model has {count} of {receipts} receipts")
            await asyncio.sleep(0.2)
            count = await conn.fetchval("SELECT count(*) FROM gateway.receipts WHERE org_id = $1", org.org_id)
        rows = await conn.fetch("SELECT receipt_hash, seq FROM gateway.receipts WHERE org_id = $1", org.org_id)
        tree = await conn.fetchval("SELECT max(size) FROM ledger.checkpoints WHERE org_id = $1", org.org_id)
    finally:
        await conn.close()
    rng = random.Random(7)  # noqa: S311  # which receipts to ask for, not a secret
    picks = [rows[rng.randrange(len(rows))] for _ in range(n)]
    result: dict[str, Any] = {"receipts": receipts, "tree_size": tree, "requests": n, "concurrency": concurrency}

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=60) as client:

        async def http_one(i: int, check: bool = False) -> None:
            h = picks[i]["receipt_hash"]
            r = await client.get("/ledger/proof/inclusion", params={"hash": h})
            if r.status_code != 200:
                raise RuntimeError(f"inclusion proof: HTTP {r.status_code} {r.text[:200]}")
            if check:
                check_answer(r.json(), h)

        result["http"] = await proofs_rate(n, concurrency, http_one, cpu)

    nc = await nats.connect(env["NATS_URL"])
    try:

        async def nats_one(i: int, check: bool = False) -> None:
            row = picks[i]
            query = InclusionQuery(org_id=org.org_id, receipt_hash=row["receipt_hash"], seq=row["seq"])
            reply = await nc.request(LEDGER_TLOG, msgspec.json.encode(query), timeout=30)
            answer = answer_decoder.decode(reply.data)
            if not isinstance(answer, InclusionAnswer):
                raise RuntimeError(f"svc.ledger.tlog answered {answer!r}")
            if check:
                check_answer(answer, row["receipt_hash"])

        result["nats_request_reply"] = await proofs_rate(n, concurrency, nats_one, cpu)
    finally:
        await nc.close()
    result["reached"] = result["http"]["proofs_per_s"]
    return result


async def batch_sizes(database_url: str, org_id: str) -> list[int]:
    """The batches the ledger minted for this org: the steps between its checkpoints."""
    conn = await asyncpg.connect(database_url)
    try:
        sizes = [r["size"] for r in await conn.fetch(
            "SELECT size FROM ledger.checkpoints WHERE org_id = $1 ORDER BY size", org_id
        )]  # fmt: skip
    finally:
        await conn.close()
    return [b - a for a, b in zip([0, *sizes], sizes, strict=False)]


async def mint_rate(
    env: dict[str, str],
    n: int,
    repeats: int,
    stop_ledger: Callable[[], None],
    start_ledger: Callable[[bool], None],
    cpu: Callable[[], dict[str, float]],
) -> dict[str, Any]:
    """`ledger_mints` with the log on, then off, ``repeats`` times; medians and their ratio."""
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    batches: list[int] = []
    for _ in range(repeats):
        for mode in ("on", "off"):
            org_id = f"bench-tlog-{mode}-{os.urandom(4).hex()}"
            print(f"bench:   {n} mints, log {mode}", flush=True)
            start = functools.partial(start_ledger, mode == "on")
            figures = await ledger_mints(env, n, stop_ledger, start, cpu, org_id=org_id)
            steps = await batch_sizes(env["DATABASE_URL"], org_id)
            if mode == "on":
                batches += steps[1:]  # the first batch is whatever had arrived when the ledger started
                assert sum(steps) == n, f"log on: checkpoints cover {sum(steps)} of {n} receipts"
            else:
                assert not steps, f"LEDGER_TLOG=off, yet {len(steps)} checkpoints were signed"
            runs[mode].append(figures)
    on = statistics.median(r["mints_per_s"] for r in runs["on"])
    off = statistics.median(r["mints_per_s"] for r in runs["off"])

    def cpu_median(mode: str) -> dict[str, float]:
        keys = runs[mode][0]["cpu_us_per_mint"]
        return {k: round(statistics.median(r["cpu_us_per_mint"][k] for r in runs[mode]), 1) for k in keys}

    spent_on, spent_off = cpu_median("on"), cpu_median("off")
    servers_on = sum(v for k, v in spent_on.items() if k != "bench client")
    servers_off = sum(v for k, v in spent_off.items() if k != "bench client")
    return {
        "approvals_per_run": n,
        "repeats": repeats,
        "order": "on, off alternating; the ledger restarted before each run",
        "mints_per_s_on": [round(r["mints_per_s"], 1) for r in runs["on"]],
        "mints_per_s_off": [round(r["mints_per_s"], 1) for r in runs["off"]],
        "median_on": round(on, 1),
        "median_off": round(off, 1),
        "ratio_on_to_off": round(on / off, 3),
        "target_ratio": RATIO_TARGET,
        "meets_target": on / off >= RATIO_TARGET,
        "cpu_us_per_mint_on": spent_on,
        "cpu_us_per_mint_off": spent_off,
        # What the ratio would be were the drain CPU-bound (ledger, PostgreSQL, NATS): less noisy.
        "cpu_ratio_off_to_on": round(servers_off / servers_on, 3) if servers_on else None,
        "batch_receipts_median": statistics.median(batches) if batches else None,
        "batches_per_run": round(len(batches) / repeats + 1, 1),
        "off_skips": "Merkle nodes, checkpoint signing and CheckpointSigned publishing (LEDGER_TLOG=off); "
        "receipts are still signed with Ed25519 each, on and off",
    }


AUTOVACUUM = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"


async def checkpoint_cost(database_url: str, batch: int, quick: bool) -> dict[str, Any]:
    """`tlog.extend_log` in this process against the bench's PostgreSQL, a fresh org, a batch at a time."""
    batches = 10 if quick else 30
    tree_before = 20_000 if quick else 100_000
    signer = Signer.generate()
    keys = tlog.LogKeys(signer, DEFAULT_ORIGIN_PREFIX)
    org_id = f"bench-checkpoint-{os.urandom(4).hex()}"

    def hashes(start: int, count: int) -> list[str]:
        return [f"sha256:{os.urandom(32).hex()}" for _ in range(start, start + count)]

    conn = await asyncpg.connect(database_url)
    timings: list[float] = []
    cpu: list[float] = []
    vacuuming = 0
    try:
        async with conn.transaction():  # the tree a busy org has: not timed
            await tlog.extend_log(conn, keys, org_id, 0, hashes(0, tree_before))
        # No ANALYZE: the statistics still think this org is empty, the worst case. Before
        # tlog_store.nodes probed node by node, a batch measured 200-450 ms here, not ~30.
        with contextlib.suppress(asyncpg.PostgresError):  # flush what the mint runs wrote, not while timing
            await conn.execute("CHECKPOINT")
        size = tree_before
        for _ in range(batches):
            batch_hashes = hashes(size, batch)
            async with conn.transaction():
                t, c = time.perf_counter(), time.process_time()
                await tlog.extend_log(conn, keys, org_id, size, batch_hashes)
                timings.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
            size += batch
            vacuuming = max(vacuuming, await conn.fetchval(AUTOVACUUM))
    finally:
        await conn.close()
    per_batch = statistics.median(timings)
    return {
        "batch_receipts": batch,
        "tree_before": tree_before,
        "batches": batches,
        "extend_log_ms_per_batch": round(1000 * per_batch, 2),
        "extend_log_p90_ms": round(1000 * percentile(timings, 0.9), 2),
        "extend_log_us_per_receipt": round(1e6 * per_batch / batch, 2),
        # This process's CPU in it (the ledger's share; the rest is PostgreSQL and waiting).
        "extend_log_cpu_ms_per_batch": round(1000 * statistics.median(cpu), 2),
        "autovacuum_workers_seen": vacuuming,  # PostgreSQL busy vacuuming beside it (after many mints)
        "in_process": in_process(batch, tree_before, signer),
    }


def in_process(batch: int, tree_before: int, signer: Signer, repeats: int = 5) -> dict[str, Any]:
    """The pure parts of one batch's log work, and its receipts' signatures, medians in ms."""
    tree = MerkleTree(receipt_leaf_hash(f"sha256:{os.urandom(32).hex()}") for _ in range(tree_before))
    border = tree.compact_range()
    receipt_hashes = [f"sha256:{os.urandom(32).hex()}" for _ in range(batch)]
    origin = f"{DEFAULT_ORIGIN_PREFIX}/org_bench"
    note_signer = Ed25519Signer(origin, signer.private_key)
    previous = Checkpoint(origin, tree_before, tree.root())
    for h in receipt_hashes:
        tree.append(receipt_leaf_hash(h))
    proof = tree.consistency_proof(tree_before)
    after = Checkpoint(origin, tree.size, tree.root())
    messages = [bytes.fromhex(h[7:]) for h in receipt_hashes]

    def append() -> None:
        b = border
        for h in receipt_hashes:
            b, _ = b.append(receipt_leaf_hash(h))

    def ms(work: Callable[[], object], times: int = 1) -> float:
        samples = []
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(times):
                work()
            samples.append((time.perf_counter() - t) / times)
        return round(1000 * statistics.median(samples), 3)

    return {
        "merkle_append_ms": ms(append),
        "consistency_proof_ms": ms(lambda: tree.consistency_proof(tree_before), 100),
        "sign_checkpoint_ms": ms(lambda: sign_checkpoint(after, note_signer, previous=previous, proof=proof), 100),
        "receipt_signatures_ms": ms(lambda: signer.sign_all(messages)),
        "note": "receipt_signatures_ms: the batch's per-receipt Ed25519 signatures (Signer.sign_all, 2 threads), "
        "paid on and off; the rest is what LEDGER_TLOG=off skips, without the database",
    }

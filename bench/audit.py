"""Audit replay runs/s: `defendable audit replay` over 100,000 runs of one org in a real JetStream.

Plan:
1. a nats-server of our own (fsync on every write, as the stack runs it) with the RUNS
   stream exactly as the services declare it;
2. N runs synthesised as the services record them — RunCreated, Submitted (one of a few
   distinct CRE memos), Checked (the referee's own `check_submission` on that memo), Approved
   (the receipt body as intake builds it), Minted (chained, in batches of 1,000 as the
   ledger mints, by the ledger's own `mint.chain_batch` and signer) — published in atomic
   batches of up to 1,000 (the services' publisher), in stream order;
3. a responder here on `svc.ledger.tlog` (`receipts` pages) and `svc.ledger.keys`, serving
   the chained receipts as the ledger serves its table, so the replay needs no database;
4. the CLI itself, `python -m defendable_cli.main audit replay --json`, as a subprocess,
   twice: with the referee's re-check of every submission, and without (`--no-recheck`).
   Its own `seconds` (connect to report) gives runs/s; its CPU (user + system, the figure a
   busy shared machine cannot inflate) and peak RSS are measured beside. Each replay must
   report no divergence, or the figure is refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import nats
import psutil
from nats.aio.msg import Msg

from defendable_canonical.digest import GENESIS_HASH, sha256_digest
from defendable_canonical.events import (
    Approved,
    Checked,
    Event,
    Minted,
    RunCreated,
    Submitted,
    derive_id,
    encode,
)
from defendable_canonical.jcs import canonicalize
from defendable_canonical.model import (
    AgentProfile,
    Approval,
    Finding,
    ReceiptBody,
    Verdict,
    receipt_schema_for,
)
from defendable_canonical.subjects import LEDGER_KEYS, LEDGER_TLOG, event_subject
from defendable_canonical.tlog_api import (
    MAX_PAGE,
    ReceiptsAnswer,
    ReceiptsQuery,
    StoredReceiptRow,
    TlogProblem,
    query_decoder,
)
from defendable_ledger.keys import Signer
from defendable_ledger.mint import MintRequest, chain_batch, minted_event_id
from defendable_referee.check import check_submission
from defendable_referee.sheet import load_library
from defendable_runtime.batching import ATOMIC_BATCH_MAX, BATCH_BYTES_MAX, Outgoing, store_batch
from defendable_runtime.messaging import STREAMS
from defendable_stack.demo import EVIDENCE_REFS, SHEET, memo
from defendable_stack.servers import start_nats

ORG = "org_audit_bench"
AT = "2026-05-01T09:00:00.000Z"
MINT_BATCH = 1000  # approvals the ledger chains per transaction
PROFILE = AgentProfile(model="gpt-bench", harness="bench", tools=["calculator"], runtime="python3.11")
REFS = EVIDENCE_REFS
# Distinct memos (honey, flagged, wrong figures): the runs cycle through them.
VARIANTS: list[dict[str, Any]] = [
    {},
    {"dscr": "1.5822"},
    {"dscr": "1.6000"},
    {"noi": 880_000},
    {"monthly": "47405.11"},
    {"ads": "568861.00"},
    {"dscr": "1.4000", "noi": 800_000},
    {"formula": "noi / ads"},
]


@dataclass
class Synthesised:
    runs: int
    events: int
    bytes: int
    rows: list[StoredReceiptRow] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)


def _envelope(kind: str, run_id: str) -> dict[str, Any]:
    return {
        "event_id": derive_id("ev", kind, ORG, run_id),
        "org_id": ORG,
        "run_id": run_id,
        "occurred_at": AT,
        "producer": "bench",
    }


def _variants() -> list[tuple[bytes, str, list[Finding], Verdict]]:
    sheet = load_library().get(SHEET)
    out: list[tuple[bytes, str, list[Finding], Verdict]] = []
    for kw in VARIANTS:
        submission = canonicalize(memo(**kw))
        findings, verdict = check_submission(sheet, submission, REFS)
        out.append((submission, sha256_digest(submission), findings, verdict))
    return out


async def synthesise(nats_url: str, n: int) -> Synthesised:
    """Publish `n` runs' events to RUNS; return the stored receipts the ledger would hold."""
    sheet = load_library().get(SHEET).ref()
    variants = _variants()
    signer = Signer.generate()
    out = Synthesised(runs=n, events=0, bytes=0, keys={signer.kid: signer(b"\x00" * 32).public_key})
    client = await nats.connect(nats_url)
    js = client.jetstream()
    await js.add_stream(STREAMS[0])
    assignment_sha256 = sha256_digest(b"Assess DSCR and LTV for the Harbour Point refinancing.")
    head_seq, head_hash = 0, str(GENESIS_HASH)
    pending: list[asyncio.Task[None]] = []
    try:
        for start in range(0, n, MINT_BATCH):
            events: list[Event] = []
            approvals: list[Approved] = []
            for i in range(start, min(start + MINT_BATCH, n)):
                run_id = f"run_{i:07d}"
                submission, digest, findings, verdict = variants[i % len(variants)]
                submitted = Submitted(
                    **_envelope("Submitted", run_id),
                    lane="agent_work",
                    flight_sheet=sheet,
                    evidence=REFS,
                    submission_sha256=digest,
                    submission=msgspec.Raw(submission),
                )
                body = ReceiptBody(
                    schema=receipt_schema_for("agent_work"),
                    org_id=ORG,
                    run_id=run_id,
                    lane="agent_work",
                    project="Harbour Point refinancing",
                    flight_sheet=sheet,
                    agent_profile=PROFILE,
                    assignment_sha256=assignment_sha256,
                    evidence=REFS,
                    submission_sha256=digest,
                    findings=findings,
                    verdict=verdict,
                    approval=Approval(approver="Bench Approver", decided_at=AT),
                )
                events += [
                    RunCreated(
                        **_envelope("RunCreated", run_id),
                        project=body.project,
                        lane="agent_work",
                        flight_sheet=sheet,
                        agent_profile=PROFILE,
                        assignment="Assess DSCR and LTV for the Harbour Point refinancing.",
                        assignment_sha256=assignment_sha256,
                    ),
                    submitted,
                    Checked(
                        **_envelope("Checked", run_id) | {"causation_id": submitted.event_id},
                        flight_sheet=sheet,
                        submission_sha256=digest,
                        findings=findings,
                        verdict=verdict,
                    ),
                ]
                approvals.append(Approved(**_envelope("Approved", run_id), receipt=body))
            requests = [MintRequest(ORG, a.run_id, a.event_id, a.receipt) for a in approvals]
            minted = chain_batch(head_seq, head_hash, requests, AT, signer.sign_all, ["t"] * len(requests))
            head_seq, head_hash = minted[-1].seq, minted[-1].receipt_hash
            events += approvals
            for r in minted:
                events.append(
                    Minted(
                        event_id=r.minted_event_id,
                        org_id=ORG,
                        run_id=r.run_id,
                        occurred_at=AT,
                        producer="bench",
                        causation_id=r.approval_event_id,
                        seq=r.seq,
                        receipt_hash=r.receipt_hash,
                        parent_hash=r.parent_hash,
                        payload=msgspec.Raw(r.payload),
                        signature=r.signature,
                        share_token=r.share_token,
                    )
                )
                out.rows.append(
                    StoredReceiptRow(
                        seq=r.seq,
                        receipt_hash=r.receipt_hash,
                        parent_hash=r.parent_hash,
                        payload=msgspec.Raw(r.payload),
                        signature=msgspec.Raw(msgspec.json.encode(r.signature)),
                        minted_at=AT,
                    )
                )
            assert minted_event_id(approvals[0].event_id) == minted[0].minted_event_id
            outgoing = [Outgoing(event_subject(e), encode(e), e.event_id) for e in events]
            out.events += len(outgoing)
            out.bytes += sum(len(o.data) for o in outgoing)
            while len(pending) >= 4:  # a few batches in flight while the next is built
                await pending.pop(0)
            pending.append(asyncio.create_task(_store(client, outgoing)))
        for task in pending:
            await task
    finally:
        await client.close()
    return out


async def _store(client: Any, outgoing: list[Outgoing]) -> None:
    batch: list[Outgoing] = []
    size = 0
    for message in outgoing:
        if batch and (len(batch) == ATOMIC_BATCH_MAX or size + len(message.data) > BATCH_BYTES_MAX):
            await _commit(client, batch)
            batch, size = [], 0
        batch.append(message)
        size += len(message.data)
    if batch:
        await _commit(client, batch)


async def _commit(client: Any, batch: list[Outgoing]) -> None:
    failed = [e for e in await store_batch(client, batch) if e is not None]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(batch)} events were not stored: {failed[0]}")


async def serve_ledger(nats_url: str, synthesised: Synthesised) -> Any:
    """Answer `receipts` pages and the key set as the ledger would; returns the connection."""
    client = await nats.connect(nats_url)
    rows = synthesised.rows
    keys = msgspec.json.encode({"keys": [{"kid": k, "public_key": v} for k, v in synthesised.keys.items()]})

    async def on_tlog(msg: Msg) -> None:
        try:
            query = query_decoder.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            await msg.respond(msgspec.json.encode(TlogProblem(status=400, detail=str(exc))))
            return
        if not isinstance(query, ReceiptsQuery) or query.org_id != ORG:
            await msg.respond(msgspec.json.encode(TlogProblem(status=404, detail="not served by the bench")))
            return
        after, limit = max(query.after, 0), max(1, min(query.limit, MAX_PAGE))
        await msg.respond(msgspec.json.encode(ReceiptsAnswer(receipts=rows[after : after + limit])))

    async def on_keys(msg: Msg) -> None:
        await msg.respond(keys)

    await client.subscribe(LEDGER_TLOG, cb=on_tlog)
    await client.subscribe(LEDGER_KEYS, cb=on_keys)
    await client.flush()
    return client


async def run_replay(nats_url: str, *extra: str) -> dict[str, Any]:
    """The CLI as a user runs it; its JSON report, wall seconds and peak RSS."""
    argv = [sys.executable, "-m", "defendable_cli.main", "audit", "replay", "--org", ORG, "--nats", nats_url, "--json"]
    began = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = await asyncio.create_subprocess_exec(
        *argv, *extra, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    peak = 0
    watched = psutil.Process(proc.pid)

    async def watch() -> None:
        nonlocal peak
        while True:
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.Error:
                return
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch())
    stdout, stderr = await proc.communicate()
    watcher.cancel()
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the replay is the one child waited for
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if proc.returncode != 0:
        raise RuntimeError(f"audit replay exited {proc.returncode}: {stderr.decode()[-2000:]}{stdout.decode()[-2000:]}")
    report: dict[str, Any] = json.loads(stdout)
    return {"report": report, "wall_s": wall, "cpu_s": cpu, "peak_rss_mib": peak / 2**20}


def audit_replay(quick: bool, runs: int | None = None) -> dict[str, Any]:
    n = runs or int(os.environ.get("BENCH_AUDIT_RUNS", 5_000 if quick else 100_000))
    return asyncio.run(_audit_replay(n))


async def _audit_replay(n: int) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="defendable-bench-audit-"))
    server = start_nats(base / "nats")
    try:
        began = time.perf_counter()
        synthesised = await synthesise(server.url, n)
        synth_s = time.perf_counter() - began
        print(
            f"bench: audit: {n:,} runs, {synthesised.events:,} events ({synthesised.bytes / 2**20:,.0f} MiB)"
            f" synthesised and stored in {synth_s:.0f} s",
            flush=True,
        )
        responder = await serve_ledger(server.url, synthesised)
        figures: dict[str, Any] = {
            "runs": n,
            "events": synthesised.events,
            "event_mib": round(synthesised.bytes / 2**20, 1),
            "cpus": os.cpu_count(),
        }
        try:
            for name, extra in (("receipts_only", ("--no-recheck",)), ("with_recheck", ())):
                result = await run_replay(server.url, *extra)
                report, summary = result["report"], result["report"]["summary"]
                if not report["ok"] or summary["receipts"] != n or summary["rebuilt"] != n:
                    raise RuntimeError(f"the replay of a faithful record diverged: {json.dumps(summary)[:2000]}")
                if extra == () and summary["rechecked"] != n:
                    raise RuntimeError(f"only {summary['rechecked']} of {n} runs were re-checked")
                seconds = report["seconds"]
                figures[name] = {
                    "runs_per_s": round(n / seconds, 1),
                    "seconds": seconds,
                    "wall_s_with_startup": round(result["wall_s"], 2),
                    "cpu_s": round(result["cpu_s"], 2),  # the replay process's, startup included
                    "cpu_ms_per_run": round(1000 * result["cpu_s"] / n, 3),
                    "peak_rss_mib": round(result["peak_rss_mib"], 1),
                }
                print(f"bench: audit: {name}: {n / seconds:,.0f} runs/s ({seconds:.1f} s)", flush=True)
        finally:
            await responder.close()
        figures["runs_per_s"] = figures["with_recheck"]["runs_per_s"]
        return figures
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(audit_replay("--quick" in sys.argv), indent=2))

"""`python -m bench [--quick] [--only PART ...]`: measure, then write bench/results/latest.json.

`--only` (micro, baselines, pipeline, ledger, otlp, referee, dataset, proofs, audit, tlog) measures just those
parts, for quick before/after comparisons, and writes bench/results/partial.json instead.

Plan: 1. in-process figures on a quiet machine (canonical, chain, PDF);
2. a fresh stack (servers + the five services) on free ports; 3. raw baselines
on those servers; 4. sustained full runs/s and approve→minted latency, with
each process's CPU per run; 5. ledger mints/s for one org, the other
consumers stopped; 6. the transparency log (bench/tlog.py): inclusion proofs served/s over
HTTP (before render and the gateway stop), then the mint rate with the log on and with
LEDGER_TLOG=off (the ledger restarted between runs, alternating, medians; the target is
their ratio, ≥ 0.80) and the checkpoint cost per mint batch; 7. the JSON, with the targets
beside the figures.

The transparency log's figures (`--only tlog`; `tlog_headline` in latest.json gathers them):
inclusion proofs served/s, `tlog.proofs_served.http.proofs_per_s` (16 requests in flight
to `GET /ledger/proof/inclusion`; `.nats_request_reply` asks `svc.ledger.tlog` directly);
proofs verified/s, `proofs.reached` (the Python verifier, part `proofs`); the checkpoint
cost per mint batch, `tlog.checkpoint_cost.extend_log_ms_per_batch` and `_us_per_receipt`
(`tlog.extend_log` against this PostgreSQL, batches of the size the ledger took while
draining, with the pure Merkle/signing costs beside it); the mint rate with the log on and
off, `tlog.mint_rate.median_on` / `median_off` and `ratio_on_to_off` (target
`mint_rate_tlog_on_to_off_ratio`). LEDGER_TLOG=off is a benchmarking knob of the ledger,
never for production; receipts stay signed with it (see bench/tlog.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from defendable_stack.process import free_port, spawn
from defendable_stack.servers import start_stack

from .audit import audit_replay
from .baselines import baselines
from .dataset import dataset_sheets
from .micro import micro
from .otlp import otlp
from .pipeline import full_runs, ledger_mints
from .proofs import proofs
from .referee import referee_checks
from .tlog import DEFAULT_MINT_BATCH, RATIO_TARGET, checkpoint_cost, mint_rate, proofs_served

SERVICES = ("gateway", "intake", "referee", "ledger", "render")
PARTS = ["micro", "baselines", "pipeline", "ledger", "otlp", "referee", "dataset", "proofs", "audit", "tlog"]
TARGETS = {
    "full_runs_per_s": 150,
    "ledger_mints_per_s": 10_000,
    "chain_verify_receipts_per_s": 500_000,
    "render_pdfs_per_s": 50,
    "cre_sheet_checks_per_s": 2_000,  # the slowest of the three CRE-lane sheets, one core
    "otlp_spans_per_s": 20_000,  # the slower of protobuf and JSON, one core
    # Ledger mints/s with the transparency log (Merkle nodes, signed checkpoints) ÷ with LEDGER_TLOG=off.
    "mint_rate_tlog_on_to_off_ratio": RATIO_TARGET,
}
# Upper bounds (lower is better): the Dataset lane's seven sheets over a 1,000,000-row CSV, two cores.
LIMITS = {
    "dataset_seven_sheets_s": 30.0,
    "dataset_peak_rss_gib": 1.5,
}
CRE_SHEETS = ("cre_memo_dscr_ltv_v1@1.0.0", "cre_memo_noi_cap_rate_v1@1.0.0", "fin_wacc_calculation_v1@1.0.0")
RESULTS = Path(__file__).parent / "results"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User+system CPU of each process and its children (PostgreSQL backends), plus this client."""
    out: dict[str, float] = {}
    for name, pid in {**pids, "bench client": os.getpid()}.items():
        try:
            root = psutil.Process(pid)
            family = [root, *root.children(recursive=True)] if name != "bench client" else [root]
            out[name] = sum(p.cpu_times().user + p.cpu_times().system for p in family)
        except psutil.Error:
            out[name] = 0.0
    return out


def wait_ready(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("gateway not ready")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=PARTS, help="measure only these parts")
    args = parser.parse_args()
    parts = set(args.only)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    figures: dict[str, Any] = {}
    if "micro" in parts:
        print("bench: in-process figures (canonical, chain, render)", flush=True)
        figures["micro"] = micro(args.quick)
    if "otlp" in parts:
        print("bench: OTLP ingest spans/s (decode, normalise, hash)", flush=True)
        figures["otlp"] = otlp(args.quick)
    if "proofs" in parts:
        print("bench: proofs verified/s (Python verifier)", flush=True)
        figures["proofs"] = proofs(args.quick)
    if "referee" in parts:
        print("bench: referee checks/s per Flight Sheet", flush=True)
        figures["referee"] = referee_checks(args.quick)
    if "dataset" in parts:
        print("bench: Dataset lane, seven sheets over one CSV (BENCH_DATASET_ROWS, default 1,000,000)", flush=True)
        figures["dataset"] = dataset_sheets(args.quick)
    if "audit" in parts:
        print("bench: audit replay runs/s (BENCH_AUDIT_RUNS, default 100,000), with and without re-checks", flush=True)
        figures["audit"] = audit_replay(args.quick)
    if parts & {"baselines", "pipeline", "ledger", "tlog"}:
        figures |= stack_figures(parts, args.quick)
    if parts != set(PARTS):
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "partial.json").write_text(json.dumps({"started_at": started, **figures}, indent=2) + "\n")
        print(json.dumps(figures, indent=2))
        print(f"bench: wrote {RESULTS / 'partial.json'}")
        return 0
    return write_results(started, args.quick, figures)


def stack_figures(parts: set[str], quick: bool) -> dict[str, Any]:
    """The figures that need a running stack: a fresh one on free ports, stopped after."""
    figures: dict[str, Any] = {}
    base = Path(tempfile.mkdtemp(prefix="defendable-bench-"))
    stack = start_stack(base)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, **stack.env(), "GATEWAY_PORT": str(port), "PUBLIC_BASE_URL": url}

        def start(name: str, extra: dict[str, str] | None = None) -> None:
            argv = [sys.executable, "-m", f"defendable_{name}"]
            procs[name] = spawn(argv, base / "logs" / f"{name}.log", env={**env, **(extra or {})})

        def stop(name: str) -> None:
            if procs[name].poll() is None:
                procs[name].terminate()
                procs[name].wait(30)

        for name in SERVICES:
            start(name)
        wait_ready(url)
        time.sleep(1.0)  # let every consumer attach
        if "baselines" in parts:
            print("bench: raw baselines on the same servers", flush=True)
            figures["baselines"] = asyncio.run(baselines(stack.env(), url, quick))
        if "pipeline" in parts:
            print("bench: sustained full runs", flush=True)
            pids = {name: proc.pid for name, proc in procs.items()} | {s.name: s.pid for s in stack.servers}
            before = cpu_seconds(pids)
            runs = 100 if quick else 600
            figures["pipeline"] = asyncio.run(full_runs(stack.env(), url, runs, 48))
            after = cpu_seconds(pids)
            # What bounds throughput: CPU milliseconds each part spends per full run (all on one 2-core box).
            figures["pipeline"]["cpu_ms_per_run"] = {
                name: round(1000 * (after[name] - before.get(name, 0.0)) / runs, 2) for name in after
            }
        servers = {s.name: s.pid for s in stack.servers}
        if "tlog" in parts:
            print("bench: inclusion proofs served/s (HTTP and NATS), render stopped", flush=True)
            stop("render")  # it would render a PDF for every receipt minted for the proofs
            figures["tlog"] = {
                "proofs_served": asyncio.run(
                    proofs_served(
                        stack.env(),
                        url,
                        quick,
                        lambda: cpu_seconds(servers | {n: procs[n].pid for n in ("gateway", "ledger")}),
                    )
                )
            }
            print("bench: checkpoint cost per mint batch (tlog.extend_log, in-process)", flush=True)
            # Before the mint runs below: after them PostgreSQL is busy vacuuming what they wrote.
            cost = checkpoint_cost(stack.env()["DATABASE_URL"], DEFAULT_MINT_BATCH, quick)
            figures["tlog"]["checkpoint_cost"] = asyncio.run(cost)
        if "ledger" in parts:
            print("bench: ledger mints/s for one org", flush=True)
            # Last, and with render and the gateway stopped: the Minted events would
            # otherwise keep them busy and measure their cost, not the ledger's.
            stop("render")
            stop("gateway")
            figures["ledger"] = asyncio.run(
                ledger_mints(
                    stack.env(),
                    4_000 if quick else 20_000,
                    lambda: stop("ledger"),
                    lambda: start("ledger"),
                    lambda: cpu_seconds(servers | {"ledger": procs["ledger"].pid}),
                )
            )
        if "tlog" in parts:
            print("bench: ledger mints/s with the transparency log on and off (LEDGER_TLOG)", flush=True)
            stop("render")
            stop("gateway")
            rate = asyncio.run(
                mint_rate(
                    stack.env(),
                    10_000 if quick else 20_000,
                    3,
                    lambda: stop("ledger"),
                    lambda on: start("ledger", {"LEDGER_TLOG": "on" if on else "off"}),
                    lambda: cpu_seconds(servers | {"ledger": procs["ledger"].pid}),
                )
            )
            ledger_log = (base / "logs" / "ledger.log").read_text(errors="replace")
            rate["off_warnings_logged"] = ledger_log.count("LEDGER_TLOG=off: BENCHMARKING ONLY")
            figures["tlog"]["mint_rate"] = rate
            stop("ledger")  # timed alone, in this process, at the batch size the drain took
            print("bench: checkpoint cost per mint batch again, after the mint runs", flush=True)
            batch = int(rate["batch_receipts_median"] or DEFAULT_MINT_BATCH)
            cost = checkpoint_cost(stack.env()["DATABASE_URL"], batch, quick)
            figures["tlog"]["checkpoint_cost_after_mints"] = asyncio.run(cost)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        stack.stop()
        shutil.rmtree(base, ignore_errors=True)
    return figures


def tlog_headline(figures: dict[str, Any]) -> dict[str, Any]:
    """The transparency log's figures the issue asks for, in one place."""
    t = figures["tlog"]
    return {
        "inclusion_proofs_served_per_s": t["proofs_served"]["http"]["proofs_per_s"],
        "proofs_verified_per_s": figures["proofs"]["reached"],
        "checkpoint_ms_per_batch": t["checkpoint_cost"]["extend_log_ms_per_batch"],
        "checkpoint_us_per_receipt": t["checkpoint_cost"]["extend_log_us_per_receipt"],
        "batch_receipts": t["checkpoint_cost"]["batch_receipts"],
        "mints_per_s_tlog_on": t["mint_rate"]["median_on"],
        "mints_per_s_tlog_off": t["mint_rate"]["median_off"],
    }


def write_results(started: str, quick: bool, figures: dict[str, Any]) -> int:
    reached = {
        "full_runs_per_s": figures["pipeline"]["full_runs_per_s"],
        "ledger_mints_per_s": figures["ledger"]["mints_per_s"],
        "chain_verify_receipts_per_s": max(
            v for k, v in figures["micro"]["chain_verify"].items() if "raw" not in k and "sha" not in k
        ),
        "render_pdfs_per_s": figures["micro"]["render_pdfs_per_s"],
        "cre_sheet_checks_per_s": min(figures["referee"][k]["checks_per_s_cpu"] for k in CRE_SHEETS),
        "otlp_spans_per_s": figures["otlp"]["reached"],
        "mint_rate_tlog_on_to_off_ratio": figures["tlog"]["mint_rate"]["ratio_on_to_off"],
    }
    limited = {
        "dataset_seven_sheets_s": figures["dataset"]["seven_sheets_s"],
        "dataset_peak_rss_gib": figures["dataset"]["peak_rss_gib"],
    }
    result = {
        "started_at": started,
        "quick": quick,
        "machine": {"cpus": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version()},
        "targets": TARGETS,
        "reached": reached,
        "ratio_to_target": {k: reached[k] / TARGETS[k] for k in TARGETS},
        "limits": LIMITS,
        "measured": limited,
        "within_limits": {k: limited[k] <= LIMITS[k] for k in LIMITS},
        "tlog_headline": tlog_headline(figures),
        **figures,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(result, indent=2) + "\n")
    headline = {
        "reached": reached,
        "targets": TARGETS,
        "measured": limited,
        "limits": LIMITS,
        "tlog": tlog_headline(figures),
    }
    print(json.dumps(headline, indent=2))
    print(f"bench: wrote {RESULTS / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

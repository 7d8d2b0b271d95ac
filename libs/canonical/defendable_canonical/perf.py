"""Pure micro-benchmarks for the bench script: canonical encodes/s and chain verification/s.

`time.perf_counter` is the one clock read in this library, and only here: it measures
elapsed time and never reaches a receipt. Inputs are synthetic and deterministic; a
typical payload is ~2.5 KB (three evidence items, four findings, two flags).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

import msgspec

from . import jcs
from .chain import ChainVerifier, verify_chain
from .digest import GENESIS_HASH
from .model import (
    AgentProfile,
    Approval,
    EvidenceRef,
    Finding,
    FlightSheetRef,
    RankedFlag,
    ReceiptBody,
    ReceiptPayload,
    RiskBreakdown,
    StoredReceipt,
    Verdict,
    receipt_schema_for,
)
from .receipt import build_payload, payload_bytes, receipt_hash


def _hex(label: str, i: int) -> str:
    return hashlib.sha256(f"{label}:{i}".encode()).hexdigest()


def typical_body(i: int = 0, org_id: str = "org_bench") -> ReceiptBody:
    """A realistic receipt body: the size and shape the ledger mints."""
    evidence = [
        EvidenceRef(
            id=f"ev_{_hex('ev', i * 10 + k)[:32]}",
            name=f"artifacts/run-{i}/output-{k}.jsonl",
            media_type="application/x-ndjson",
            size=1_000_000 + 37 * k + i,
            sha256=f"sha256:{_hex('blob', i * 10 + k)}",
        )
        for k in range(3)
    ]
    findings = [
        Finding(
            rule_id=f"rule.{name}",
            kind=kind,
            status="flag" if k % 3 == 0 else "pass",
            tier="mid" if k % 3 == 0 else None,
            message=f"{name} checked against the flight sheet",
            observed="12" if k % 2 else None,
            expected="≤ 10" if k % 2 else None,
        )
        for k, (name, kind) in enumerate(
            [("evidence.count", "count"), ("tests.passed", "ratio"), ("cost.budget", "money"),
             ("secrets.none", "scan")]
        )
    ]  # fmt: skip
    flags = [RankedFlag(rule_id=f.rule_id, tier="mid", message=f.message) for f in findings if f.status == "flag"]
    return ReceiptBody(
        schema=receipt_schema_for("agent_work"),
        org_id=org_id,
        run_id=f"run_{_hex('run', i)[:32]}",
        lane="agent_work",
        project="checkout-service-migration",
        flight_sheet=FlightSheetRef(id="fs_code_change", version="3", sha256=f"sha256:{_hex('fs', 3)}"),
        agent_profile=AgentProfile(model="claude-sonnet", harness="defendable-sdk/0.4", tools=["bash", "edit", "web"]),
        assignment_sha256=f"sha256:{_hex('assignment', i)}",
        evidence=evidence,
        submission_sha256=f"sha256:{_hex('submission', i)}",
        findings=findings,
        verdict=Verdict(
            score="66.67",
            severity="jelly",
            risk=RiskBreakdown(mid=len(flags)),
            client_ready=False,
            recommended_action="review",
            flags=flags,
        ),
        approval=Approval(approver="user_ops_lead", decided_at="2026-01-02T03:04:05Z", note="reviewed the flags"),
    )


def typical_payload(i: int = 0) -> ReceiptPayload:
    return build_payload(typical_body(i), seq=i + 1, parent_hash=GENESIS_HASH, minted_at="2026-01-02T03:04:06Z")


def sample_chain(n: int, org_id: str = "org_bench") -> list[StoredReceipt]:
    """`n` correctly chained stored receipts (no signatures), as the ledger would hold them."""
    chain: list[StoredReceipt] = []
    parent = str(GENESIS_HASH)
    for seq in range(1, n + 1):
        payload = build_payload(typical_body(seq, org_id), seq, parent, "2026-01-02T03:04:06Z")
        data = payload_bytes(payload)
        digest = receipt_hash(data)
        chain.append(StoredReceipt(seq=seq, receipt_hash=digest, parent_hash=parent, payload=msgspec.Raw(data)))
        parent = digest
    return chain


def _rate(n: int, run: Callable[[], object]) -> float:
    """Calls per second of `run`, which performs `n` operations, best of three."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return n / best


def bench_canonical_encodes(n: int, *, general: bool = False) -> float:
    """Encodes/s of a typical ReceiptPayload via `canonical_struct` (or the general path)."""
    payload = typical_payload()
    if general:
        return _rate(n, lambda: [jcs.canonicalize(msgspec.to_builtins(payload)) for _ in range(n)])
    return _rate(n, lambda: [jcs.canonical_struct(payload) for _ in range(n)])


def bench_raw_sha256(receipts: list[StoredReceipt]) -> float:
    """Baseline: hashlib.sha256 over the same payload bytes, nothing else."""
    payloads = [bytes(r.payload) for r in receipts]
    sha256 = hashlib.sha256
    return _rate(len(payloads), lambda: [sha256(p).digest() for p in payloads])


def bench_chain_verify(n: int) -> dict[str, float]:
    """Receipts/s verified from stored bytes: strict (re-canonicalises), non-strict, raw sha256."""
    receipts = sample_chain(n)
    report = verify_chain(receipts)
    if not report.ok:  # a benchmark of a failing chain would mislead
        raise RuntimeError(f"benchmark chain does not verify: {report.first_bad}")
    return {
        "strict": _rate(n, lambda: verify_chain(receipts, strict_canonical=True)),
        "non_strict": _rate(n, lambda: verify_chain(receipts, strict_canonical=False)),
        "non_strict_fed_5000": _rate(n, lambda: _feed(receipts, 5000)),
        "raw_sha256": bench_raw_sha256(receipts),
        "payload_bytes_mean": sum(len(r.payload) for r in receipts) / max(n, 1),
    }


def _feed(receipts: list[StoredReceipt], chunk: int) -> object:
    """As the ledger streams a chain: `ChainVerifier` fed `chunk` receipts at a time."""
    verifier = ChainVerifier(strict_canonical=False)
    for start in range(0, len(receipts), chunk):
        verifier.feed(receipts[start : start + chunk])
    return verifier.report()

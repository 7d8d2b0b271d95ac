"""Render throughput: ``python -m defendable_render.perf [n]`` prints PDFs/s, reused vs fresh fonts."""

from __future__ import annotations

import base64
import hashlib
import statistics
import sys
import time

from defendable_canonical.digest import sha256_digest
from defendable_canonical.jcs import canonical_struct
from defendable_canonical.model import (
    EVAL_RECEIPT_SCHEMA,
    AgentProfile,
    Approval,
    EvidenceRef,
    Finding,
    FlightSheetRef,
    RankedFlag,
    ReceiptPayload,
    RiskBreakdown,
    Severity,
    Signature,
    Tier,
    Verdict,
)
from defendable_render.pdf import render_receipt_pdf


def _hex(seed: str) -> str:
    return sha256_digest(seed.encode())


def sample_payload(
    *,
    seq: int = 42,
    approver: str = "Zoë Ångström-Łukasiewicz",
    project: str = "Ünïcödé проект — Q3 αξιολόγηση",
    evidence: int = 4,
    flags: int = 3,
) -> ReceiptPayload:
    """A realistic receipt; the keyword arguments stretch it for edge cases."""
    tiers: tuple[Tier, ...] = ("high", "mid", "low")
    ranked = [
        RankedFlag(
            rule_id=f"math.recompute.{i:03d}",
            tier=tiers[i % 3],
            message=f"Claimed total {1000 + i} EUR does not re-derive: formula yields {990 + i} EUR (tolerance 0.5 %).",
        )
        for i in range(flags)
    ]
    findings = [
        Finding(rule_id="structure.required_fields", kind="structure", status="pass"),
        Finding(rule_id="schema.output", kind="schema", status="pass"),
        *(
            Finding(
                rule_id=f.rule_id,
                kind="math",
                status="flag",
                tier=f.tier,
                message=f.message,
                observed=f"{1000 + i}",
                expected=f"{990 + i}",
            )
            for i, f in enumerate(ranked)
        ),
        Finding(
            rule_id="evidence.references",
            kind="evidence",
            status="open",
            tier="low",
            message="claim c-7 cites evidence that was not attached",
        ),
    ]
    risk = RiskBreakdown(
        high=sum(f.tier == "high" for f in ranked),
        mid=sum(f.tier == "mid" for f in ranked),
        low=sum(f.tier == "low" for f in ranked),
    )
    severity: Severity = "propolis" if risk.high else ("jelly" if ranked else "honey")
    kinds = ("text/csv", "application/pdf", "application/json", "image/png")
    return ReceiptPayload(
        schema=EVAL_RECEIPT_SCHEMA,
        org_id="org_01HZX4V7Q8",
        seq=seq,
        parent_hash=_hex(f"parent-{seq}"),
        run_id="run_01J8ZK3M2N4P5Q6R7S8T9V0W1X",
        lane="agent_work",
        project=project,
        flight_sheet=FlightSheetRef(id="fs.invoice-reconciliation", version="3.1.0", sha256=_hex("flight-sheet")),
        agent_profile=AgentProfile(
            model="claude-sonnet-4",
            harness="defendable-sdk 0.4",
            tools=["python", "web.fetch", "sql.readonly"],
            runtime="python 3.12 / linux-x86_64",
        ),
        assignment_sha256=_hex("assignment"),
        evidence=[
            EvidenceRef(
                id=f"ev_{i:04d}",
                name=f"ledger-export-{i:04d} Ελλάδα.csv" if i % 2 else f"invoice-{i:04d}.pdf",
                media_type=kinds[i % 4],
                size=1234 * (i + 1) ** 3,
                sha256=_hex(f"evidence-{i}"),
            )
            for i in range(evidence)
        ],
        submission_sha256=_hex("submission"),
        findings=findings,
        verdict=Verdict(
            score=f"{100 * (len(findings) - len(ranked) - 1) / len(findings):.2f}",
            severity=severity,
            risk=risk,
            client_ready=not ranked,
            recommended_action="review" if ranked else "approve",
            flags=ranked,
        ),
        approval=Approval(
            approver=approver,
            decided_at="2025-03-14T09:26:53Z",
            note="Reviewed the two mid flags with finance; totals reconcile after FX rounding.",
        ),
        minted_at="2025-03-14T09:27:04Z",
    )


def sample_receipt(**kwargs: object) -> tuple[bytes, str]:
    """(canonical payload bytes, receipt hash) for ``sample_payload(**kwargs)``."""
    data = canonical_struct(sample_payload(**kwargs))  # type: ignore[arg-type]
    return data, sha256_digest(data)


SAMPLE_SIGNATURE = Signature(
    kid="ledger-2025-01",
    public_key="Zq8lS9kQ0b2x3fK1mYcV7tWnHj4uR6pE5aD8sG2hL0o",
    sig="3kq0m1bV8yX2cW9nZ4tR7uJ6pL5oK3iH2gF1dS0aQ9wE8rT7yU6iO5pA4sD3fG2hJ1kL0zX9cV8bN7mQ6wE5rA",
)


# Letters outside the sample's text, so that each varied receipt needs a new glyph set.
_VARIED = "ÀÂÄÆÇÉÈÊËÎÏÔŒÙÛÜŸßΑΒΓΔΘΚΛΞΠΣΦΨΩБГДЖЗИЙЛПФЦЧШЩЫЭЮЯ"


def _varied_name(k: int) -> str:
    """A name whose first two letters differ from those of every other ``k`` below ~2,500."""
    size = len(_VARIED)
    return f"{_VARIED[k % size]}{_VARIED[(k // size) % size]} Ångström"


def signature_for(i: int) -> Signature:
    """A distinct, deterministic signature per receipt, as the ledger's are: base64url text
    whose letters differ from receipt to receipt (the font-subset cache must not care)."""
    sig = base64.urlsafe_b64encode(hashlib.sha512(f"sig-{i}".encode()).digest()).decode().rstrip("=")
    return Signature(kid=SAMPLE_SIGNATURE.kid, public_key=SAMPLE_SIGNATURE.public_key, sig=sig)


def bench_render(n: int, *, reuse_fonts: bool = True, varied: bool = False, run: int = 0) -> float:
    """PDFs per second over ``n`` renders of distinct receipts (one warm-up render first),
    each with its own signature.

    ``varied`` gives every receipt an approver name with letters of its own, so the
    embedded-font cache in ``pdf`` mostly misses: the figure for unrepetitive text.
    Pass a different ``run`` for each repetition so that no name repeats between runs.
    """
    receipts = [
        sample_receipt(seq=i + 1, approver=_varied_name(run * (n + 1) + i)) if varied else sample_receipt(seq=i + 1)
        for i in range(n + 1)
    ]
    signatures = [signature_for(run * (n + 1) + i) for i in range(n + 1)]
    render_receipt_pdf(*receipts[0], signatures[0], reuse_fonts=reuse_fonts)
    start = time.perf_counter()
    for (data, digest), signature in zip(receipts[1:], signatures[1:], strict=True):
        render_receipt_pdf(data, digest, signature, reuse_fonts=reuse_fonts)
    return n / (time.perf_counter() - start)


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv else 50
    for label, reuse, varied in (
        ("fresh fonts             ", False, False),
        ("reused fonts            ", True, False),
        ("reused fonts, new glyphs", True, True),
    ):
        runs = [bench_render(n, reuse_fonts=reuse, varied=varied, run=run) for run in range(3)]
        print(f"{label}: median {statistics.median(runs):6.1f} PDFs/s over 3 runs of {n}")


if __name__ == "__main__":
    main(sys.argv[1:])

"""Referee checks/s per Flight Sheet, in process, one core.

Each sheet is checked against its hand-checked passing submission from the
tests (a realistic memo: every section, every calculation, every citation),
with the evidence text the referee would have read from S3. A "check" is one
`check_submission` call: decode, every rule, the verdict. Median of rounds of
~0.5 s each, by this process's CPU time (noise on a shared box inflates wall
time, not CPU time), with the wall figure beside it.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

import msgspec

from defendable_canonical.model import EvidenceRef
from defendable_referee.check import check_submission
from defendable_referee.sheet import LoadedSheet, load_library

FIXTURES = Path(__file__).parents[1] / "tests/referee/fixtures"
TARGET_CRE_CHECKS_PER_S = 2_000


def _pdf(id_: str, name: str, digit: str) -> EvidenceRef:
    return EvidenceRef(id=id_, name=name, media_type="application/pdf", size=1024, sha256="sha256:" + digit * 64)


def _text(id_: str, filename: str) -> tuple[EvidenceRef, str]:
    data = (FIXTURES / "evidence" / filename).read_bytes()
    ref = EvidenceRef(
        id=id_,
        name=filename,
        media_type="text/plain",
        size=len(data),
        sha256="sha256:" + hashlib.sha256(data).hexdigest(),
    )
    return ref, data.decode()


CRE_EVIDENCE = [
    _pdf("ev_term_sheet", "term_sheet.pdf", "1"),
    _pdf("ev_t12", "t12_operating_statement.pdf", "2"),
    _pdf("ev_appraisal", "appraisal.pdf", "3"),
]
WACC_EVIDENCE = [
    _pdf("ev_market_data", "market_data.pdf", "4"),
    _pdf("ev_balance_sheet", "balance_sheet.pdf", "5"),
    _pdf("ev_cost_of_capital", "cost_of_capital.pdf", "6"),
]
BRIEF, BRIEF_TEXT = _text("ev_brief", "policy_brief.txt")
REPORT, REPORT_TEXT = _text("ev_report", "annual_report.txt")

# sheet -> (fixture, evidence, evidence text)
CASES: dict[str, tuple[str, list[EvidenceRef], dict[str, str]]] = {
    "cre_memo_dscr_ltv_v1@1.0.0": ("memo_pass.json", CRE_EVIDENCE, {}),
    "cre_memo_noi_cap_rate_v1@1.0.0": ("memo_noi_pass.json", CRE_EVIDENCE, {}),
    "fin_wacc_calculation_v1@1.0.0": ("memo_wacc_pass.json", WACC_EVIDENCE, {}),
    "genai_evidence_citation_v1@1.0.0": ("citation_pass.json", [BRIEF], {BRIEF.id: BRIEF_TEXT}),
    "evx_numerical_fact_extraction_v1@1.0.0": ("extraction_pass.json", [REPORT], {REPORT.id: REPORT_TEXT}),
}


def _round(sheet: LoadedSheet, body: bytes, evidence: list[EvidenceRef], texts: dict[str, str]) -> tuple[float, float]:
    n = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while time.process_time() - cpu0 < 0.5:
        for _ in range(50):
            check_submission(sheet, body, evidence, evidence_text=texts)
        n += 50
    return n / (time.process_time() - cpu0), n / (time.perf_counter() - wall0)


def referee_checks(quick: bool) -> dict[str, Any]:
    library = load_library()
    rounds = 3 if quick else 7
    out: dict[str, Any] = {}
    for key, (fixture, evidence, texts) in CASES.items():
        sheet = library.get(key)
        body = msgspec.json.encode(json.loads((FIXTURES / fixture).read_text()))
        findings, verdict = check_submission(sheet, body, evidence, evidence_text=texts)
        assert verdict.severity == "honey", (key, verdict)  # measuring a failing path would flatter nothing
        measured = [_round(sheet, body, evidence, texts) for _ in range(rounds)]
        out[key] = {
            "checks_per_s_cpu": round(statistics.median(m[0] for m in measured)),
            "checks_per_s_wall": round(statistics.median(m[1] for m in measured)),
            "findings": len(findings),
            "submission_bytes": len(body),
        }
    out["target_cre_checks_per_s"] = TARGET_CRE_CHECKS_PER_S
    return out


if __name__ == "__main__":
    print(json.dumps(referee_checks(quick=True), indent=2))

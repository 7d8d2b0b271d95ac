"""The `trail` rule: the execution trail must hold the tool calls the sheet requires."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from defendable_canonical.model import EvidenceRef, Finding
from defendable_canonical.trail import StepRecord
from defendable_referee.check import check_submission
from defendable_referee.sheet import load_library

FIXTURES = Path(__file__).parent / "fixtures"
SHEET = "cre_memo_noi_cap_rate_v1@1.1.0"
EVIDENCE = [
    EvidenceRef(id="ev_t12", name="t12.pdf", media_type="application/pdf", size=1, sha256="sha256:" + "2" * 64),
    EvidenceRef(id="ev_appraisal", name="a.pdf", media_type="application/pdf", size=1, sha256="sha256:" + "3" * 64),
]


def step(
    seq: int, kind: str, tool: str | None = None, status: str = "ok", flags: list[str] | None = None
) -> StepRecord:
    return StepRecord(
        seq=seq,
        trace_id="ab" * 16,
        span_id=f"{seq:016x}",
        kind=kind,  # type: ignore[arg-type]
        name=f"step {seq}",
        tool_name=tool,
        start_ns=str(seq),
        end_ns=str(seq + 1),
        status=status,  # type: ignore[arg-type]
        flags=flags or [],
    )


def trail_findings(steps: list[StepRecord] | None, error: str = "") -> list[Finding]:
    memo: dict[str, Any] = json.loads((FIXTURES / "memo_noi_pass.json").read_text())
    sheet = load_library().get(SHEET)
    findings, _ = check_submission(sheet, msgspec.json.encode(memo), EVIDENCE, trail=steps, trail_error=error)
    return [f for f in findings if f.kind == "trail"]


def test_a_successful_required_call_passes_and_names_its_steps() -> None:
    intact, tool = trail_findings([step(1, "agent"), step(2, "tool", "read_rent_roll"), step(3, "llm")])
    assert (intact.status, tool.status) == ("pass", "pass")
    assert tool.message == "required tool read_rent_roll: 1 successful call (step 2)"


def test_a_failed_or_other_tool_call_does_not_count() -> None:
    _, tool = trail_findings([step(1, "tool", "read_rent_roll", status="error"), step(2, "tool", "guess_rent")])
    assert (tool.status, tool.tier) == ("flag", "high")
    assert tool.message == (
        "required tool read_rent_roll: 0 successful calls, 1 needed; 1 failed"
        " (the memo's NOI must come from the rent roll)"
    )


def test_no_trail_or_an_unreadable_one_flags_the_trail_and_every_required_tool() -> None:
    absent, tool = trail_findings(None)
    assert absent.status == "flag" and "attached no execution trail" in absent.message
    assert tool.status == "flag" and "no trail shows it was called" in tool.message
    [unreadable, _] = trail_findings(None, error="otlp-traces-1.pb: malformed protobuf")
    assert unreadable.message == "no execution trail to check: otlp-traces-1.pb: malformed protobuf"


def test_integrity_problems_are_flagged_at_the_sheets_integrity_tier() -> None:
    steps = [step(1, "tool", "read_rent_roll", flags=["cycle"]), step(2, "llm", flags=["missing_parent"])]
    intact, tool = trail_findings(steps)
    assert (intact.status, intact.tier) == ("flag", "mid") and "cycle: step 1" in intact.message
    assert "missing_parent" not in intact.message  # a partial trace is not a broken one
    assert tool.status == "pass"


def test_the_older_version_of_the_sheet_has_no_trail_rule() -> None:
    old = load_library().get("cre_memo_noi_cap_rate_v1@1.0.0")
    assert "trail" not in [r.kind for r in old.sheet.rules]

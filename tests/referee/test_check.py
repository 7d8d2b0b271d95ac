"""End-to-end checks of CRE memos against the packaged sheet: the product's promises."""

from __future__ import annotations

from typing import Any

import msgspec

from defendable_canonical.model import Finding
from defendable_referee.check import MAX_SUBMISSION_BYTES, check_submission
from defendable_referee.sheet import LoadedSheet

from .conftest import EVIDENCE, Check


def calc(memo: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in memo["calculations"] if c["name"] == name)
    return found


def unsatisfied(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.status != "pass"]


def set_input(memo: dict[str, Any], name: str, value: object) -> None:
    """Change a base input everywhere the memo states it, so the memo stays self-consistent."""
    for entry in memo["inputs_used"]:
        if entry["name"] == name:
            entry["value"] = value
    for c in memo["calculations"]:
        if name in c["inputs"]:
            c["inputs"][name] = value


def test_passing_memo_is_honey_and_approved(check: Check, memo: dict[str, Any]) -> None:
    findings, verdict = check(memo)
    assert unsatisfied(findings) == []
    assert [f.kind for f in findings][:2] == ["structure", "schema"]
    assert {f.kind for f in findings} == {"structure", "schema", "math", "evidence", "policy"}
    assert (verdict.severity, verdict.recommended_action, verdict.score) == ("honey", "approve", "100.00")
    assert verdict.client_ready and verdict.flags == []


def test_reported_dscr_of_1_85_for_inputs_that_give_1_5821_is_a_high_flag(check: Check, memo: dict[str, Any]) -> None:
    dscr = calc(memo, "dscr")
    dscr["result"] = "1.85"
    dscr["formula"] = "1.85"  # an agent that hard-codes the figure passes its own formula...
    findings, verdict = check(memo)
    flagged = unsatisfied(findings)
    assert len(flagged) == 1  # ...but not the sheet's independent re-derivation
    assert (flagged[0].tier, flagged[0].observed, flagged[0].expected) == ("high", "1.85", "1.5821")
    assert (verdict.severity, verdict.recommended_action, verdict.client_ready) == ("propolis", "resubmit", False)


def test_a_calculation_that_does_not_recompute_is_a_high_flag_with_observed_and_expected(
    check: Check, memo: dict[str, Any]
) -> None:
    calc(memo, "monthly_payment")["result"] = "47500.00"
    findings, verdict = check(memo)
    flags = [f for f in unsatisfied(findings) if "monthly_payment" in f.message]
    assert [(f.tier, f.observed, f.expected) for f in flags] == [("high", "47500.00", "47405.10")] * 2
    assert verdict.recommended_action == "resubmit"


def test_one_cent_of_rounding_is_within_currency_tolerance(check: Check, memo: dict[str, Any]) -> None:
    calc(memo, "monthly_payment")["result"] = "47405.11"
    findings, _ = check(memo)
    assert unsatisfied(findings) == []


def test_annual_debt_service_from_a_payment_rounded_to_cents_is_accepted(check: Check, memo: dict[str, Any]) -> None:
    ads = calc(memo, "annual_debt_service")
    ads.update(formula="12 * monthly_payment", inputs={"monthly_payment": "47405.10"}, result="568861.20")
    findings, verdict = check(memo)
    assert unsatisfied(findings) == []
    assert verdict.severity == "honey"


def test_a_formula_the_evaluator_refuses_is_a_high_flag_never_a_pass(check: Check, memo: dict[str, Any]) -> None:
    calc(memo, "ltv")["formula"] = "__import__('os').getcwd()"
    findings, _ = check(memo)
    refused = [f for f in unsatisfied(findings) if "formula refused" in f.message]
    assert len(refused) == 1 and refused[0].tier == "high"


def test_dscr_exactly_1_20_passes_the_inclusive_gate(check: Check, memo: dict[str, Any]) -> None:
    # 18,000,000 at 0% over 30 years: 50,000 a month, ADS 600,000; NOI 720,000 → DSCR exactly 1.20.
    # Value 22,500,000 → LTV exactly 0.80, the other inclusive bound.
    set_input(memo, "annual_rate", "0")
    set_input(memo, "loan_amount", 18_000_000)
    set_input(memo, "noi", 720_000)
    set_input(memo, "property_value", 22_500_000)
    calc(memo, "monthly_payment")["result"] = "50000.00"
    calc(memo, "annual_debt_service")["result"] = "600000.00"
    calc(memo, "dscr").update(inputs={"noi": 720_000, "annual_debt_service": 600_000}, result="1.2000")
    calc(memo, "ltv")["result"] = "0.8000"
    calc(memo, "cap_rate")["result"] = "0.0320"
    findings, verdict = check(memo)
    gates = [f for f in findings if f.kind == "policy"]
    assert [(f.status, f.observed) for f in gates] == [("pass", "1.2"), ("pass", "0.8")]
    assert unsatisfied(findings) == []
    assert verdict.recommended_action == "approve"


def test_gates_use_the_re_derived_figures_not_the_agents(check: Check, memo: dict[str, Any]) -> None:
    set_input(memo, "noi", 600_000)  # true DSCR 1.0547 < 1.20, while the memo still claims 1.5821
    findings, verdict = check(memo)
    gate = next(f for f in findings if f.kind == "policy" and "dscr" in f.message)
    assert (gate.status, gate.tier, gate.observed) == ("flag", "high", "1.0547387969")
    assert verdict.recommended_action == "reject"


def test_ltv_above_0_80_fails_its_gate_and_the_memo_is_rejected(check: Check, memo: dict[str, Any]) -> None:
    set_input(memo, "property_value", 9_000_000)
    calc(memo, "ltv")["result"] = "0.8333"
    calc(memo, "cap_rate")["result"] = "0.1000"
    findings, verdict = check(memo)
    assert [(f.kind, f.status) for f in unsatisfied(findings)] == [("policy", "flag")]
    assert (verdict.severity, verdict.recommended_action) == ("propolis", "reject")


def test_a_missing_base_input_leaves_dscr_open_and_the_gate_undecided(check: Check, memo: dict[str, Any]) -> None:
    memo["inputs_used"] = [i for i in memo["inputs_used"] if i["name"] != "noi"]
    memo["calculations"] = [c for c in memo["calculations"] if "noi" not in c["inputs"]]
    findings, verdict = check(memo)
    opened = [f for f in findings if f.status == "open"]
    assert [f.kind for f in opened] == ["math", "policy"]  # dscr cannot be re-derived; its gate is undecided
    assert "noi" in opened[0].message and all(f.tier == "high" for f in opened)
    assert (verdict.severity, verdict.client_ready, verdict.recommended_action) == ("propolis", False, "resubmit")


def test_inconsistent_inputs_are_flagged(check: Check, memo: dict[str, Any]) -> None:
    calc(memo, "ltv")["inputs"]["loan_amount"] = 7_000_000
    calc(memo, "ltv")["result"] = "0.7000"
    findings, _ = check(memo)
    assert any("loan_amount = 7500000" in f.message and f.status == "flag" for f in findings)


def test_a_claim_citing_unattached_evidence_is_a_high_flag(check: Check, memo: dict[str, Any]) -> None:
    memo["claims"][1]["evidence_reference"] = "ev_not_attached"
    findings, verdict = check(memo)
    [flag] = unsatisfied(findings)
    assert flag.kind == "evidence" and flag.tier == "high" and "ev_not_attached" in flag.message
    assert verdict.recommended_action == "resubmit"


def test_an_undisclosed_input_without_evidence_is_a_mid_flag_and_disclosing_it_clears_it(
    check: Check, memo: dict[str, Any]
) -> None:
    next(i for i in memo["inputs_used"] if i["name"] == "property_value").pop("evidence_reference")
    findings, verdict = check(memo)
    [flag] = unsatisfied(findings)
    assert (flag.kind, flag.tier, flag.observed) == ("evidence", "mid", "property_value")
    assert (verdict.severity, verdict.recommended_action, verdict.client_ready) == ("jelly", "review", True)
    memo["missing_inputs"] = ["property_value"]
    assert unsatisfied(check(memo)[0]) == []


def test_missing_sections_fail_structure_and_schema_and_are_rejected(check: Check, memo: dict[str, Any]) -> None:
    del memo["self_check"]
    memo["claims"] = []
    findings, verdict = check(memo)
    structure = next(f for f in findings if f.kind == "structure")
    assert structure.status == "flag" and "self_check" in structure.message and "claims" in structure.message
    assert next(f for f in findings if f.kind == "schema").status == "flag"
    assert verdict.recommended_action == "reject"


def test_schema_errors_are_reported_with_json_paths_and_bounded(check: Check, memo: dict[str, Any]) -> None:
    for c in memo["calculations"]:
        c["result"] = True
        c["surprise"] = 1
    findings, _ = check(memo)
    schema = next(f for f in findings if f.kind == "schema")
    assert "$.calculations[0]" in schema.message and "more" in schema.message
    assert schema.message.count("$.") == 5


def test_too_many_calculations_and_claims_are_flagged_not_processed(check: Check, memo: dict[str, Any]) -> None:
    memo["calculations"] = memo["calculations"] * 41  # 205
    memo["claims"] = memo["claims"] * 70  # 210
    findings, _ = check(memo)
    assert any("205 calculations; the limit is 200" in f.message for f in findings)
    assert any("210 claims; the limit is 200" in f.message for f in findings)


def test_malformed_or_non_object_submissions_are_high_flags_not_crashes(cre_sheet: LoadedSheet) -> None:
    oversized = b'{"a": "' + b"x" * MAX_SUBMISSION_BYTES + b'"}'
    for raw in (b"{not json", b"[1, 2]", b"null", b"[" * 100_000, oversized, b"\xff\xfe"):
        findings, verdict = check_submission(cre_sheet, raw, EVIDENCE)
        assert [(f.status, f.tier) for f in findings] == [("flag", "high")]
        assert (verdict.severity, verdict.recommended_action, verdict.score) == ("propolis", "reject", "0.00")


def test_hostile_memo_content_never_crashes_the_referee(check: Check, memo: dict[str, Any]) -> None:
    memo["calculations"] = [
        {"name": "x", "formula": "9**9**9**9", "inputs": {}, "result": "1", "units": "ratio"},
        {"name": "y", "formula": 42, "inputs": [], "result": {}, "units": None, "rounding": 99},
        {"name": "z", "formula": "a", "inputs": {"a": "1e400"}, "result": "1", "units": "ratio"},
        {"name": "w", "formula": "a", "inputs": {"a": 10**200}, "result": 10**200, "units": "ratio"},
        "not an object",
    ]
    memo["claims"] = [None, {"evidence_reference": ["ev_t12"]}]
    memo["inputs_used"] = {"loan_amount": 1}
    memo["missing_inputs"] = [{"name": 1}, None]
    findings, verdict = check(memo)
    assert not any(f.message.startswith("check could not run") for f in findings)
    assert verdict.severity == "propolis"


def test_findings_and_verdict_are_deterministic(cre_sheet: LoadedSheet, memo: dict[str, Any]) -> None:
    calc(memo, "dscr")["result"] = "1.85"
    raw = msgspec.json.encode(memo)
    first = check_submission(cre_sheet, raw, EVIDENCE)
    assert all(check_submission(cre_sheet, raw, EVIDENCE) == first for _ in range(3))

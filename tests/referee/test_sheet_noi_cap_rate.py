"""NOI and cap rate memos against `cre_memo_noi_cap_rate_v1`: the sheet's promises, figures checked by hand.

The passing memo (fixtures/memo_noi_pass.json), by hand:
    EGI = gross potential rent 1,300,000 − vacancy and credit loss 65,000 + other income 15,000 = 1,250,000.00
    NOI = EGI 1,250,000 − operating expenses 350,000 = 900,000.00
    cap rate = NOI 900,000 ÷ value 10,000,000 = 0.0900
It yields 16 findings: structure 1, schema 1, math 10 (3 recomputed calculations, input
consistency, 3 re-derived quantities, NOI's exclusions, EGI and NOI reconciled where they feed
the next calculation), evidence 2, policy 2 (NOI > 0, cap rate ≥ 0.05).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from defendable_canonical.model import Finding, Verdict
from defendable_referee.check import check_submission
from defendable_referee.errors import FlightSheetInvalid
from defendable_referee.sheet import LoadedSheet, load_library, load_sheet

from .conftest import EVIDENCE, FIXTURES

NOI_SHEET = "cre_memo_noi_cap_rate_v1@1.0.0"
SHEET_FILE = (
    Path(__file__).parents[2] / "services/referee/defendable_referee/flight_sheets" / "cre_memo_noi_cap_rate_v1.json"
)
MATH = "math.calculations"
RE_NOI = "re-derived from base inputs egi - operating_expenses = 900000.00 (±0.01)"
RE_CAP = "re-derived from base inputs noi / property_value = 0.0900 (±0.0001)"
EXCLUDED = "annual_debt_service, depreciation, capex"


@pytest.fixture(scope="module")
def noi_sheet() -> LoadedSheet:
    return load_library().get(NOI_SHEET)


@pytest.fixture
def memo() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "memo_noi_pass.json").read_text())
    return copy.deepcopy(data)


def run(sheet: LoadedSheet, memo: dict[str, Any]) -> tuple[list[Finding], Verdict]:
    return check_submission(sheet, msgspec.json.encode(memo), EVIDENCE)


def flags(verdict: Verdict) -> list[tuple[str, str, str]]:
    return [(f.rule_id, f.tier, f.message) for f in verdict.flags]


def calc(memo: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in memo["calculations"] if c["name"] == name)
    return found


def restate_noi(memo: dict[str, Any], noi: str, cap_rate: str) -> None:
    """The memo's NOI, in its calculation and where cap rate reads it, and the cap rate it gives."""
    calc(memo, "noi")["result"] = noi
    calc(memo, "cap_rate")["inputs"]["noi"] = noi
    calc(memo, "cap_rate")["result"] = cap_rate


def restate_opex(memo: dict[str, Any], opex: str, noi: str, cap_rate: str) -> None:
    """Operating expenses everywhere the memo states them, and the NOI and cap rate that follow."""
    next(i for i in memo["inputs_used"] if i["name"] == "operating_expenses")["value"] = opex
    calc(memo, "noi")["inputs"]["operating_expenses"] = opex
    restate_noi(memo, noi, cap_rate)


def subtract(memo: dict[str, Any], item: str, value: str, evidence: str) -> None:
    """The memo states `item` (with evidence) and subtracts it in its NOI calculation."""
    memo["inputs_used"].append({"name": item, "value": value, "units": "USD/year", "evidence_reference": evidence})
    noi = calc(memo, "noi")
    noi["formula"] += f" - {item}"
    noi["inputs"][item] = value


# -- the passing memo ----------------------------------------------------------


def test_the_library_holds_the_noi_sheet_with_its_rules_and_gates(noi_sheet: LoadedSheet) -> None:
    sheet = noi_sheet.sheet
    assert (noi_sheet.lane, sheet.id, sheet.version) == ("agent_work", "cre_memo_noi_cap_rate_v1", "1.0.0")
    assert [r.kind for r in sheet.rules] == ["structure", "schema", "math", "evidence", "policy"]
    assert [(d.name, d.formula, d.tolerance) for d in sheet.derivations] == [
        ("egi", "gross_potential_rent - vacancy_and_credit_loss + other_income", "currency"),
        ("noi", "egi - operating_expenses", "currency"),
        ("cap_rate", "noi / property_value", "ratio"),
    ]
    assert sheet.derivations[1].excludes == ["annual_debt_service", "depreciation", "capex"]
    assert [(g.quantity, g.op, g.threshold) for g in sheet.gates] == [("noi", ">", "0"), ("cap_rate", ">=", "0.05")]


def test_passing_memo_is_honey_and_approved(noi_sheet: LoadedSheet, memo: dict[str, Any]) -> None:
    findings, verdict = run(noi_sheet, memo)
    assert [f for f in findings if f.status != "pass"] == []
    assert len(findings) == 16
    math = [f.message for f in findings if f.kind == "math"]
    assert f"noi: memo reports 900000.00 (calculations[1]); {RE_NOI}" in math
    assert f"cap_rate: memo reports 0.0900 (calculations[2]); {RE_CAP}" in math
    assert f"noi reads none of the items it excludes ({EXCLUDED})" in math
    reconciled = "noi is the same figure (±0.01) wherever it is stated: 900000.00 (calculations[1] result)"
    assert f"{reconciled}, 900000.00 (calculations[2].inputs)" in math
    assert [f.message for f in findings if f.kind == "policy"] == [
        "gate noi_positive: re-derived noi 900000 meets noi > 0",
        "gate cap_rate_min: re-derived cap_rate 0.09 meets cap_rate >= 0.05",
    ]
    assert (verdict.severity, verdict.recommended_action, verdict.score) == ("honey", "approve", "100.00")
    assert verdict.client_ready and verdict.flags == []


# -- wrong NOI, wrong cap rate ---------------------------------------------------


def test_a_wrong_noi_carried_into_cap_rate_is_flagged_high_where_it_is_made_and_where_it_lands(
    noi_sheet: LoadedSheet, memo: dict[str, Any]
) -> None:
    # An arithmetic slip: 1,250,000 − 350,000 reported as 920,000.00, and cap rate
    # 920,000 ÷ 10,000,000 = 0.0920 computed from it (that step is right, its input is not).
    restate_noi(memo, "920000.00", "0.0920")
    _, verdict = run(noi_sheet, memo)
    assert flags(verdict) == [
        (
            MATH,
            "high",
            "calculations[1] noi: declared 920000.00 does not match egi - operating_expenses = 900000.00"
            " (±0.01, 2 places)",
        ),
        (MATH, "high", f"noi: memo reports 920000.00 (calculations[1]); {RE_NOI}"),
        (MATH, "high", f"cap_rate: memo reports 0.0920 (calculations[2]); {RE_CAP}"),
    ]
    assert (verdict.severity, verdict.recommended_action, verdict.score) == ("propolis", "resubmit", "81.25")


def test_a_wrong_cap_rate_is_a_high_flag_and_the_gate_still_reads_the_sheets_figure(
    noi_sheet: LoadedSheet, memo: dict[str, Any]
) -> None:
    calc(memo, "cap_rate")["result"] = "0.0950"  # 900,000 ÷ 10,000,000 is 0.0900
    findings, verdict = run(noi_sheet, memo)
    assert flags(verdict) == [
        (
            MATH,
            "high",
            "calculations[2] cap_rate: declared 0.0950 does not match noi / property_value = 0.0900"
            " (±0.0001, 4 places)",
        ),
        (MATH, "high", f"cap_rate: memo reports 0.0950 (calculations[2]); {RE_CAP}"),
    ]
    assert next(f for f in findings if "cap_rate_min" in f.message).status == "pass"
    assert (verdict.severity, verdict.recommended_action) == ("propolis", "resubmit")


# -- debt service, depreciation and capex are not operating expenses -------------


@pytest.mark.parametrize(
    ("item", "value", "evidence", "noi", "cap_rate"),
    [
        # 900,000 − ADS 568,861.22 (7,500,000 @ 6.5%, 30y: REFERENCES.md) = 331,138.78; ÷ 10,000,000 = 0.0331
        ("annual_debt_service", "568861.22", "ev_term_sheet", "331138.78", "0.0331"),
        ("depreciation", "200000", "ev_t12", "700000.00", "0.0700"),  # 900,000 − 200,000; ÷ 10,000,000
        ("capex", "50000", "ev_t12", "850000.00", "0.0850"),  # 900,000 − 50,000; ÷ 10,000,000
    ],
)
def test_noi_that_subtracts_an_excluded_item_is_a_high_flag_naming_the_item(
    noi_sheet: LoadedSheet, memo: dict[str, Any], item: str, value: str, evidence: str, noi: str, cap_rate: str
) -> None:
    subtract(memo, item, value, evidence)
    restate_noi(memo, noi, cap_rate)  # internally consistent: every calculation recomputes
    findings, verdict = run(noi_sheet, memo)
    assert flags(verdict) == [
        (
            MATH,
            "high",
            f"noi: memo reports {noi} (calculations[1]); {RE_NOI}; the memo's figure is short by exactly"
            f" {item} ({value}), which noi excludes",
        ),
        (MATH, "high", f"cap_rate: memo reports {cap_rate} (calculations[2]); {RE_CAP}"),
        (MATH, "high", f"noi must exclude {EXCLUDED}, but calculations[1] reads {item}"),
    ]
    exclusion = next(f for f in findings if f.message.startswith("noi must exclude"))
    assert (exclusion.observed, exclusion.expected) == (item, f"none of {EXCLUDED}")
    assert [f.status for f in findings if f.kind == "policy"] == ["pass", "pass"]  # the sheet's NOI is 900,000
    assert (verdict.severity, verdict.recommended_action, verdict.score) == ("propolis", "resubmit", "81.25")


def test_noi_short_by_exactly_the_stated_debt_service_is_named_even_when_hidden_in_a_literal(
    noi_sheet: LoadedSheet, memo: dict[str, Any]
) -> None:
    # The memo states debt service, then subtracts it as a bare number: no input names it.
    memo["inputs_used"].append(
        {
            "name": "annual_debt_service",
            "value": "568861.22",
            "units": "USD/year",
            "evidence_reference": "ev_term_sheet",
        }
    )
    calc(memo, "noi")["formula"] = "egi - operating_expenses - 568861.22"
    restate_noi(memo, "331138.78", "0.0331")
    _, verdict = run(noi_sheet, memo)
    assert flags(verdict) == [
        (
            MATH,
            "high",
            f"noi: memo reports 331138.78 (calculations[1]); {RE_NOI}; the memo's figure is short by"
            " exactly annual_debt_service (568861.22), which noi excludes",
        ),
        (MATH, "high", f"cap_rate: memo reports 0.0331 (calculations[2]); {RE_CAP}"),
    ]
    assert verdict.score == "87.50"  # 14 of 16


def test_depreciation_folded_into_operating_expenses_is_caught_through_the_memos_own_calculation(
    noi_sheet: LoadedSheet, memo: dict[str, Any]
) -> None:
    # operating_expenses = cash opex 350,000 + depreciation 200,000 = 550,000; NOI = 1,250,000 − 550,000
    # = 700,000; cap rate 0.0700. The sheet re-derives NOI from the memo's operating_expenses, so the
    # figures agree: only the exclusion, followed through the memo's calculation, sees the error.
    memo["inputs_used"][3:4] = [
        {"name": "cash_operating_expenses", "value": "350000.00", "units": "USD/year", "evidence_reference": "ev_t12"},
        {"name": "depreciation", "value": "200000.00", "units": "USD/year", "evidence_reference": "ev_t12"},
    ]
    opex = {
        "name": "operating_expenses",
        "formula": "cash_operating_expenses + depreciation",
        "inputs": {"cash_operating_expenses": "350000.00", "depreciation": "200000.00"},
        "result": "550000.00",
        "units": "USD/year",
    }
    memo["calculations"].insert(1, opex)
    calc(memo, "noi")["inputs"]["operating_expenses"] = "550000.00"
    restate_noi(memo, "700000.00", "0.0700")
    _, verdict = run(noi_sheet, memo)
    assert flags(verdict) == [
        (
            MATH,
            "high",
            f"noi must exclude {EXCLUDED}, but calculations[2] reads depreciation"
            " via calculations[1] operating_expenses",
        ),
    ]
    assert (verdict.severity, verdict.recommended_action, verdict.score) == ("propolis", "resubmit", "94.12")


# -- one NOI wherever the memo states it -----------------------------------------


def test_noi_stated_as_880000_in_inputs_used_and_900000_in_the_calculations_is_flagged(
    noi_sheet: LoadedSheet, memo: dict[str, Any]
) -> None:
    memo["inputs_used"].append({"name": "noi", "value": 880000, "units": "USD/year", "evidence_reference": "ev_t12"})
    findings, verdict = run(noi_sheet, memo)
    assert flags(verdict) == [
        (
            MATH,
            "high",
            "noi is stated with different values (±0.01): 880000 (inputs_used[5]),"
            " 900000.00 (calculations[1] result), 900000.00 (calculations[2].inputs)",
        ),
    ]
    assert next(f for f in findings if f.status == "flag").observed == "900000.00 vs 880000"
    assert (verdict.severity, verdict.recommended_action, verdict.score) == ("propolis", "resubmit", "93.75")


def test_cap_rate_computed_from_a_noi_other_than_the_noi_calculations_result_is_flagged(
    noi_sheet: LoadedSheet, memo: dict[str, Any]
) -> None:
    # The noi calculation says 900,000.00; cap rate reads 880,000: 880,000 ÷ 10,000,000 = 0.0880.
    calc(memo, "cap_rate")["inputs"]["noi"] = 880000
    calc(memo, "cap_rate")["result"] = "0.0880"
    _, verdict = run(noi_sheet, memo)
    assert flags(verdict) == [
        (MATH, "high", f"cap_rate: memo reports 0.0880 (calculations[2]); {RE_CAP}"),
        (
            MATH,
            "high",
            "noi is stated with different values (±0.01): 900000.00 (calculations[1] result),"
            " 880000 (calculations[2].inputs)",
        ),
    ]


def test_noi_stated_only_as_an_input_is_reconciled_with_the_sheets_figure(
    noi_sheet: LoadedSheet, memo: dict[str, Any]
) -> None:
    # No noi calculation: the memo takes NOI 880,000 as given (citing the T-12), and the
    # re-derived 1,250,000 − 350,000 = 900,000.00 stands in for the missing result.
    memo["calculations"] = [c for c in memo["calculations"] if c["name"] != "noi"]
    memo["inputs_used"].append({"name": "noi", "value": 880000, "units": "USD/year", "evidence_reference": "ev_t12"})
    calc(memo, "cap_rate")["inputs"]["noi"] = 880000
    calc(memo, "cap_rate")["result"] = "0.0880"
    _, verdict = run(noi_sheet, memo)
    assert flags(verdict) == [
        (MATH, "high", "the memo reports no calculation named noi"),
        (MATH, "high", f"cap_rate: memo reports 0.0880 (calculations[1]); {RE_CAP}"),
        (
            MATH,
            "high",
            "noi is stated with different values (±0.01): 880000 (inputs_used[5]),"
            " 880000 (calculations[1].inputs), 900000.00 (re-derived egi - operating_expenses)",
        ),
    ]
    assert (verdict.recommended_action, verdict.client_ready) == ("resubmit", False)


# -- tolerance boundaries: exactly at tolerance passes, one unit beyond flags ----


@pytest.mark.parametrize(
    ("reported", "flagged"),
    [
        ("0.0901", False),  # |0.0901 − 0.0900| = 0.0001: exactly the ratio tolerance
        ("0.0899", False),
        ("0.0902", True),  # one unit of the fourth place beyond
        ("0.09010001", True),  # the declared figure is not rounded before comparing
    ],
)
def test_cap_rate_within_one_basis_point_passes_and_beyond_it_flags(
    noi_sheet: LoadedSheet, memo: dict[str, Any], reported: str, flagged: bool
) -> None:
    calc(memo, "cap_rate")["result"] = reported
    _, verdict = run(noi_sheet, memo)
    expected = [
        (
            MATH,
            "high",
            f"calculations[2] cap_rate: declared {reported} does not match noi / property_value = 0.0900"
            " (±0.0001, 4 places)",
        ),
        (MATH, "high", f"cap_rate: memo reports {reported} (calculations[2]); {RE_CAP}"),
    ]
    assert flags(verdict) == (expected if flagged else [])


@pytest.mark.parametrize(
    ("downstream", "flagged"),
    [("900000.01", False), ("899999.99", False), ("900000.02", True)],  # one cent is the currency tolerance
)
def test_noi_used_downstream_within_one_cent_of_the_result_passes_and_two_cents_flags(
    noi_sheet: LoadedSheet, memo: dict[str, Any], downstream: str, flagged: bool
) -> None:
    calc(memo, "cap_rate")["inputs"]["noi"] = downstream  # ÷ 10,000,000 still rounds to 0.0900
    _, verdict = run(noi_sheet, memo)
    expected = [
        (
            MATH,
            "high",
            "noi is stated with different values (±0.01): 900000.00 (calculations[1] result),"
            f" {downstream} (calculations[2].inputs)",
        ),
    ]
    assert flags(verdict) == (expected if flagged else [])


# -- gates: inclusive and exclusive, exactly at the threshold ----------------------


def test_noi_of_exactly_0_fails_the_exclusive_gate_and_the_memo_is_rejected(
    noi_sheet: LoadedSheet, memo: dict[str, Any]
) -> None:
    restate_opex(memo, "1250000.00", "0.00", "0.0000")  # 1,250,000 − 1,250,000 = 0; 0 ÷ 10,000,000 = 0
    _, verdict = run(noi_sheet, memo)
    assert flags(verdict) == [
        ("policy.gates", "high", "gate noi_positive: re-derived noi 0 fails noi > 0"),
        ("policy.gates", "high", "gate cap_rate_min: re-derived cap_rate 0 fails cap_rate >= 0.05"),
    ]
    assert (verdict.severity, verdict.recommended_action) == ("propolis", "reject")


def test_noi_of_one_cent_passes_the_exclusive_gate(noi_sheet: LoadedSheet, memo: dict[str, Any]) -> None:
    restate_opex(memo, "1249999.99", "0.01", "0.0000")  # 0.01 ÷ 10,000,000 = 0.000000001
    _, verdict = run(noi_sheet, memo)
    assert flags(verdict) == [
        ("policy.gates", "high", "gate cap_rate_min: re-derived cap_rate 0.000000001 fails cap_rate >= 0.05"),
    ]


def test_cap_rate_of_exactly_0_05_passes_the_inclusive_gate(noi_sheet: LoadedSheet, memo: dict[str, Any]) -> None:
    restate_opex(memo, "750000.00", "500000.00", "0.0500")  # 1,250,000 − 750,000 = 500,000; ÷ 10,000,000 = 0.05
    findings, verdict = run(noi_sheet, memo)
    gate = next(f for f in findings if "cap_rate_min" in f.message)
    assert (gate.status, gate.message) == ("pass", "gate cap_rate_min: re-derived cap_rate 0.05 meets cap_rate >= 0.05")
    assert (verdict.severity, verdict.recommended_action) == ("honey", "approve")


def test_cap_rate_one_cent_of_noi_below_0_05_fails_the_inclusive_gate(
    noi_sheet: LoadedSheet, memo: dict[str, Any]
) -> None:
    # Opex 750,000.01 → NOI 499,999.99 → cap rate 0.049999999, which the memo may round to 0.0500;
    # the gate reads the unrounded re-derived figure.
    restate_opex(memo, "750000.01", "499999.99", "0.0500")
    _, verdict = run(noi_sheet, memo)
    assert flags(verdict) == [
        ("policy.gates", "high", "gate cap_rate_min: re-derived cap_rate 0.049999999 fails cap_rate >= 0.05"),
    ]
    assert verdict.recommended_action == "reject"


# -- the sheet refuses names it does not define -------------------------------------


def sheet_json() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SHEET_FILE.read_text())
    return data


def _declared(data: dict[str, Any]) -> str:
    return ", ".join(sorted(data["conventions"]))


def _drop_convention(data: dict[str, Any], name: str) -> None:
    del data["conventions"][name]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["rules"][0]["params"]["required"].append("valuation"),
            lambda d: (
                "rule 'structure.sections' required names field 'valuation', which required_output_schema"
                " does not define (its properties: "
                + ", ".join(sorted(d["required_output_schema"]["properties"]))
                + ")"
            ),
        ),
        (
            lambda d: d["rules"][0]["params"]["non_empty"].append("noi"),
            lambda d: (
                "rule 'structure.sections' non_empty names field 'noi', which required_output_schema"
                " does not define (its properties: "
                + ", ".join(sorted(d["required_output_schema"]["properties"]))
                + ")"
            ),
        ),
        (
            lambda d: _drop_convention(d, "property_value"),
            lambda d: (
                "derivation 'cap_rate' reads 'property_value', which is neither an earlier derivation"
                f" (egi, noi) nor declared in conventions ({_declared(d)})"
            ),
        ),
        (
            lambda d: d["derivations"][1].update(formula="egi - opex"),
            lambda d: (
                "derivation 'noi' reads 'opex', which is neither an earlier derivation (egi)"
                f" nor declared in conventions ({_declared(d)})"
            ),
        ),
        (
            lambda d: d["derivations"][0].update(formula="noi + operating_expenses"),
            lambda d: "derivation 'egi' reads 'noi', which is not derived before it (derivations run in sheet order)",
        ),
        (
            lambda d: d["derivations"][1]["excludes"].append("debt_service"),
            lambda d: (
                "derivation 'noi' excludes 'debt_service', which is neither a derivation nor declared in"
                f" conventions ({_declared(d)})"
            ),
        ),
        (
            lambda d: d["derivations"][1]["excludes"].append("operating_expenses"),
            lambda d: "derivation 'noi' excludes 'operating_expenses', which its formula reads",
        ),
        (
            lambda d: d["derivations"][1]["excludes"].append("noi"),
            lambda d: "derivation 'noi' excludes itself",
        ),
    ],
    ids=[
        "required-field",
        "non-empty-field",
        "base-input",
        "formula-name",
        "later-derivation",
        "excluded-name",
        "excludes-own-input",
        "excludes-itself",
    ],
)
def test_a_sheet_that_names_a_field_it_does_not_define_is_refused_at_load(edit: Any, message: Any) -> None:
    data = sheet_json()
    edit(data)
    with pytest.raises(FlightSheetInvalid) as caught:
        load_sheet(json.dumps(data).encode(), source="broken.json")
    assert str(caught.value) == f"broken.json: {message(data)}"


def test_the_unedited_sheet_loads() -> None:
    assert load_sheet(json.dumps(sheet_json()).encode(), source="ok.json").sheet.key == NOI_SHEET

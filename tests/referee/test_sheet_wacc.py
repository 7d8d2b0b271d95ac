"""WACC memos against `fin_wacc_calculation_v1`: the sheet's promises, figures checked by hand.

The passing memo (fixtures/memo_wacc_pass.json), by hand (REFERENCES.md, Agent Work lane):
    V = E 600 + D 400 = 1,000
    after-tax cost of debt = Rd 0.06 × (1 − Tc 0.25) = 0.0450
    WACC = 600/1,000 × 0.10 + 400/1,000 × 0.045 = 0.060 + 0.018 = 0.0780 (7.80%)
Applying the tax shield twice: 0.060 + 0.4 × 0.06 × 0.75 × 0.75 = 0.060 + 0.0135 = 0.0735 (7.35%).
The passing memo yields 13 findings: structure 1, schema 1, math 9 (3 recomputed calculations,
input consistency, 3 re-derived quantities, V and the after-tax cost of debt reconciled where the
WACC calculation reads them), evidence 2. The sheet has no gates: WACC is an input to a valuation,
not a credit decision, and any band on it would be invented policy.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from defendable_canonical.model import EvidenceRef, Finding, Verdict
from defendable_referee.check import check_submission
from defendable_referee.errors import FlightSheetInvalid
from defendable_referee.sheet import LoadedSheet, load_library, load_sheet

from .conftest import FIXTURES

WACC_SHEET = "fin_wacc_calculation_v1@1.0.0"
SHEET_FILE = (
    Path(__file__).parents[2] / "services/referee/defendable_referee/flight_sheets" / "fin_wacc_calculation_v1.json"
)
MATH = "math.calculations"
SHEET_WACC = "equity_value / total_value * cost_of_equity + debt_value / total_value * after_tax_cost_of_debt"
RE_WACC = f"re-derived from base inputs {SHEET_WACC} = 0.0780 (±0.0001)"


def _evidence(id_: str, name: str, digit: str) -> EvidenceRef:
    return EvidenceRef(id=id_, name=name, media_type="application/pdf", size=1024, sha256="sha256:" + digit * 64)


EVIDENCE = [
    _evidence("ev_market_data", "market_data.pdf", "4"),
    _evidence("ev_balance_sheet", "balance_sheet.pdf", "5"),
    _evidence("ev_cost_of_capital", "cost_of_capital.pdf", "6"),
]


@pytest.fixture(scope="module")
def wacc_sheet() -> LoadedSheet:
    return load_library().get(WACC_SHEET)


@pytest.fixture
def memo() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "memo_wacc_pass.json").read_text())
    return copy.deepcopy(data)


def run(sheet: LoadedSheet, memo: dict[str, Any]) -> tuple[list[Finding], Verdict]:
    return check_submission(sheet, msgspec.json.encode(memo), EVIDENCE)


def flags(verdict: Verdict) -> list[tuple[str, str, str]]:
    return [(f.rule_id, f.tier, f.message) for f in verdict.flags]


def wacc(memo: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = memo["calculations"][2]
    assert found["name"] == "wacc"
    return found


def test_the_library_holds_the_wacc_sheet_with_its_derivations(wacc_sheet: LoadedSheet) -> None:
    sheet = wacc_sheet.sheet
    assert (wacc_sheet.lane, sheet.id, sheet.version) == ("agent_work", "fin_wacc_calculation_v1", "1.0.0")
    assert [r.kind for r in sheet.rules] == ["structure", "schema", "math", "evidence"]
    assert [(d.name, d.formula, d.tolerance) for d in sheet.derivations] == [
        ("total_value", "equity_value + debt_value", "currency"),
        ("after_tax_cost_of_debt", "cost_of_debt * (1 - tax_rate)", "fraction"),
        ("wacc", SHEET_WACC, "fraction"),
    ]
    assert sheet.gates == []


def test_passing_memo_is_honey_and_approved(wacc_sheet: LoadedSheet, memo: dict[str, Any]) -> None:
    findings, verdict = run(wacc_sheet, memo)
    assert [f for f in findings if f.status != "pass"] == []
    assert len(findings) == 13
    assert f"wacc: memo reports 0.0780 (calculations[2]); {RE_WACC}" in [f.message for f in findings]
    assert (verdict.severity, verdict.recommended_action, verdict.score) == ("honey", "approve", "100.00")
    assert verdict.client_ready and verdict.flags == []


def test_rates_given_as_json_numbers_are_decimals_and_give_exactly_0_0780(
    wacc_sheet: LoadedSheet, memo: dict[str, Any]
) -> None:
    # 0.1, 0.06 and 0.25 are not exact binary floats; the referee decodes them as Decimal.
    for entry in memo["inputs_used"][2:]:
        entry["value"] = float(entry["value"])
    for c in memo["calculations"]:
        c["inputs"] = {k: float(v) if isinstance(v, str) and "." in v else v for k, v in c["inputs"].items()}
    _, verdict = run(wacc_sheet, memo)
    assert (verdict.severity, verdict.flags) == ("honey", [])


# -- the double tax shield ----------------------------------------------------


@pytest.mark.parametrize(
    ("formula", "inputs"),
    [
        # (1 − Tc) applied again to the after-tax cost of debt
        (
            SHEET_WACC + " * (1 - tax_rate)",
            {
                "equity_value": 600,
                "debt_value": 400,
                "total_value": "1000.00",
                "cost_of_equity": "0.10",
                "after_tax_cost_of_debt": "0.0450",
                "tax_rate": "0.25",
            },
        ),
        # one formula from base inputs, (1 − Tc) written twice
        (
            "equity_value / (equity_value + debt_value) * cost_of_equity"
            " + debt_value / (equity_value + debt_value) * cost_of_debt * (1 - tax_rate) * (1 - tax_rate)",
            {
                "equity_value": 600,
                "debt_value": 400,
                "cost_of_equity": "0.10",
                "cost_of_debt": "0.06",
                "tax_rate": "0.25",
            },
        ),
    ],
    ids=["after-tax-rate-taxed-again", "one-formula"],
)
def test_wacc_of_7_35_percent_from_a_double_tax_shield_is_a_high_flag_against_7_80(
    wacc_sheet: LoadedSheet, memo: dict[str, Any], formula: str, inputs: dict[str, Any]
) -> None:
    wacc(memo).update(formula=formula, inputs=inputs, result="0.0735")
    findings, verdict = run(wacc_sheet, memo)
    # The agent's own arithmetic is consistent, so its calculation recomputes...
    recomputed = next(f for f in findings if f.message.startswith("calculations[2] wacc"))
    assert (recomputed.status, recomputed.expected) == ("pass", "0.0735")
    # ...but the sheet's re-derivation from the base inputs does not agree.
    assert flags(verdict) == [(MATH, "high", f"wacc: memo reports 0.0735 (calculations[2]); {RE_WACC}")]
    flag = next(f for f in findings if f.status == "flag")
    assert (flag.observed, flag.expected) == ("0.0735", "0.0780")
    assert (verdict.severity, verdict.recommended_action, verdict.client_ready) == ("propolis", "resubmit", False)


def test_a_double_shield_hidden_in_the_after_tax_rate_wacc_reads_is_flagged_twice(
    wacc_sheet: LoadedSheet, memo: dict[str, Any]
) -> None:
    # The memo reports the after-tax cost of debt correctly (0.0450) but the WACC calculation reads
    # 0.045 × 0.75 = 0.03375: 0.060 + 0.4 × 0.03375 = 0.0735.
    wacc(memo)["inputs"]["after_tax_cost_of_debt"] = "0.03375"
    wacc(memo)["result"] = "0.0735"
    _, verdict = run(wacc_sheet, memo)
    assert flags(verdict) == [
        (MATH, "high", f"wacc: memo reports 0.0735 (calculations[2]); {RE_WACC}"),
        (
            MATH,
            "high",
            "after_tax_cost_of_debt is stated with different values (±0.0001): 0.0450 (calculations[1]"
            " result), 0.03375 (calculations[2].inputs)",
        ),
    ]


def test_wacc_reported_as_a_percentage_is_flagged_the_sheet_asks_for_a_fraction(
    wacc_sheet: LoadedSheet, memo: dict[str, Any]
) -> None:
    wacc(memo).update(formula=f"100 * ({SHEET_WACC})", result="7.80", units="percent", rounding=2)
    _, verdict = run(wacc_sheet, memo)
    assert flags(verdict) == [(MATH, "high", f"wacc: memo reports 7.80 (calculations[2]); {RE_WACC}")]


# -- tolerance boundary: one basis point ------------------------------------------


@pytest.mark.parametrize(
    ("reported", "flagged"),
    [
        ("0.0781", False),  # |0.0781 − 0.0780| = 0.0001: exactly the tolerance
        ("0.0779", False),
        ("0.0782", True),  # one unit of the fourth place beyond
        ("0.0778", True),
        ("0.07810001", True),  # the declared figure is not rounded before comparing
    ],
)
def test_wacc_within_one_basis_point_passes_and_beyond_it_flags(
    wacc_sheet: LoadedSheet, memo: dict[str, Any], reported: str, flagged: bool
) -> None:
    wacc(memo)["result"] = reported
    _, verdict = run(wacc_sheet, memo)
    expected = [
        (
            MATH,
            "high",
            f"calculations[2] wacc: declared {reported} does not match {SHEET_WACC} = 0.0780 (±0.0001, 4 places)",
        ),
        (MATH, "high", f"wacc: memo reports {reported} (calculations[2]); {RE_WACC}"),
    ]
    assert flags(verdict) == (expected if flagged else [])


# -- the sheet refuses names it does not define -------------------------------------


def test_a_wacc_formula_reading_an_undeclared_input_is_refused_at_load() -> None:
    data: dict[str, Any] = json.loads(SHEET_FILE.read_text())
    data["derivations"][2]["formula"] = "equity_value / total_value * cost_of_equity + debt_value / total_value * rd"
    declared = ", ".join(sorted(data["conventions"]))
    with pytest.raises(FlightSheetInvalid) as caught:
        load_sheet(json.dumps(data).encode(), source="broken.json")
    assert str(caught.value) == (
        "broken.json: derivation 'wacc' reads 'rd', which is neither an earlier derivation"
        f" (total_value, after_tax_cost_of_debt) nor declared in conventions ({declared})"
    )

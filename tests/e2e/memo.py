"""Build CRE loan memos for cre_memo_dscr_ltv_v1 with chosen figures (hand-checked in tests/referee)."""

from __future__ import annotations

from typing import Any

EVIDENCE = {
    "term_sheet.pdf": b"Loan Amount: $7,500,000; Interest Rate: 6.50% fixed; Amortization: 30 years\n",
    "t12.csv": b"month,noi\n2025-12,75000\n...\ntotal,900000\n",
    "appraisal.pdf": b"As-is market value: $10,000,000 (appraisal dated 2026-09-30)\n",
}


def memo(
    *,
    dscr: str = "1.5821",
    monthly: str = "47405.10",
    ads: str = "568861.22",
    noi: int = 900_000,
    formula: str | None = None,
) -> dict[str, Any]:
    calc_formula = formula or "noi / annual_debt_service"
    return {
        "assignment_id": "asg_cre_0001",
        "agent_summary": "Senior loan of $7,500,000 on a multifamily asset valued at $10,000,000.",
        "inputs_used": [
            {"name": "loan_amount", "value": 7500000, "units": "USD", "evidence_reference": "term_sheet.pdf"},
            {"name": "annual_rate", "value": "0.065", "units": "fraction", "evidence_reference": "term_sheet.pdf"},
            {"name": "amortization_years", "value": 30, "units": "years", "evidence_reference": "term_sheet.pdf"},
            {"name": "noi", "value": str(noi), "units": "USD/year", "evidence_reference": "t12.csv"},
            {"name": "property_value", "value": 10000000, "units": "USD", "evidence_reference": "appraisal.pdf"},
        ],
        "missing_inputs": [],
        "claims": [
            {"text": "Loan of $7,500,000 at 6.50% over 30 years.", "evidence_reference": "term_sheet.pdf"},
            {"text": f"Trailing-twelve-month NOI is ${noi:,}.", "evidence_reference": "t12.csv"},
            {"text": "Appraised value is $10,000,000.", "evidence_reference": "appraisal.pdf"},
        ],
        "calculations": [
            {
                "name": "monthly_payment",
                "formula": "pmt(annual_rate / 12, amortization_years * 12, loan_amount)",
                "inputs": {"loan_amount": 7500000, "annual_rate": "0.065", "amortization_years": 30},
                "result": monthly,
                "units": "USD/month",
                "rounding": 2,
            },
            {
                "name": "annual_debt_service",
                "formula": "12 * pmt(annual_rate / 12, amortization_years * 12, loan_amount)",
                "inputs": {"loan_amount": 7500000, "annual_rate": "0.065", "amortization_years": 30},
                "result": ads,
                "units": "USD/year",
                "rounding": 2,
            },
            {
                "name": "dscr",
                "formula": calc_formula,
                "inputs": {"noi": noi, "annual_debt_service": ads},
                "result": dscr,
                "units": "x",
                "rounding": 4,
            },
            {
                "name": "ltv",
                "formula": "loan_amount / property_value",
                "inputs": {"loan_amount": 7500000, "property_value": 10000000},
                "result": "0.75",
                "units": "ratio",
            },
        ],
        "risks": ["Single-asset concentration."],
        "assumptions": ["NOI before debt service, depreciation and capex."],
        "open_questions": [],
        "final_output": f"Recommend approval: DSCR {dscr}, LTV 0.75.",
        "self_check": "Recomputed every calculation from its inputs.",
    }

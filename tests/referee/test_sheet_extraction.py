"""evx_numerical_fact_extraction_v1: every extracted number is one its quoted source states.

Hand-checked against fixtures/evidence/annual_report.txt: total revenue "$7.5 million"
= 7,500,000; 2022 revenue "$6.9 million" = 6,900,000; gross margin "12.5%"; total
assets "$1,234,567.89"; shares "1 234 567" (thin spaces) = 1,234,567; "2.3 thousand"
employees = 2,300; net loss "(1,234)" thousand = revenue 7,500 − operating expenses
8,734 (and 2022: 6,900 − 7,410 = −510).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from defendable_canonical.model import EvidenceRef
from defendable_referee.check import check_submission
from defendable_referee.errors import FlightSheetInvalid
from defendable_referee.numeral import numerals
from defendable_referee.sheet import LoadedSheet, load_library, load_sheet

from .evidence_texts import EVIDENCE, EXTRACTION_SHEET, Check, checker, of_kind, submission, unsatisfied

SHEET_FILE = (
    Path(__file__).parents[2]
    / "services/referee/defendable_referee/flight_sheets/evx_numerical_fact_extraction_v1.json"
)


@pytest.fixture(scope="module")
def sheet() -> LoadedSheet:
    return load_library().get(EXTRACTION_SHEET)


@pytest.fixture
def check(sheet: LoadedSheet) -> Check:
    return checker(sheet)


@pytest.fixture
def extraction() -> dict[str, Any]:
    return submission("extraction_pass.json")


def fact(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(f for f in document["facts"] if f["name"] == name)
    return found


def fact_finding(check: Check, document: dict[str, Any], name: str) -> Any:
    index = next(i for i, f in enumerate(document["facts"]) if f["name"] == name)
    findings, _ = check(document)
    return of_kind(findings, "extraction")[index]


def edited_sheet(edit: Any) -> LoadedSheet:
    data = json.loads(SHEET_FILE.read_text("utf-8"))
    edit(data)
    return load_sheet(json.dumps(data).encode(), source="edited.json")


def test_the_library_holds_the_extraction_sheet_in_the_agent_work_lane(sheet: LoadedSheet) -> None:
    keys = load_library().keys()
    assert EXTRACTION_SHEET in keys
    assert (sheet.lane, [r.kind for r in sheet.sheet.rules]) == ("agent_work", ["structure", "schema", "extraction"])


# -- number parsing ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("Total assets: $1,234,567.89", [("$1,234,567.89", "1234567.89")]),
        ("1\u2009234\u2009567 shares", [("1 234 567", "1234567")]),  # thin spaces; NFKC makes them spaces
        ("1\u202f234 and 1\u00a0234", [("1 234", "1234"), ("1 234", "1234")]),  # narrow and no-break spaces
        ("Total revenue was $7.5 million", [("$7.5 million", "7500000")]),
        (
            "revenue of 7.5M, costs of 300k, a 1.2bn market",
            [("7.5M", "7500000"), ("300k", "300000"), ("1.2bn", "1200000000")],
        ),
        ("2.3 Thousand people; 4 TRILLION yen", [("2.3 Thousand", "2300"), ("4 TRILLION", "4000000000000")]),
        ("Net loss (1,234)", [("(1,234)", "-1234")]),
        (
            "($1,234) and $(5) and $-5 and −5 and -0.5",
            [("($1,234)", "-1234"), ("$(5)", "-5"), ("$-5", "-5"), ("-5", "-5"), ("-0.5", "-0.5")],
        ),
        (
            "margin 12.5%, 12.5 %, 12.5 percent, 12.5 per cent, .5%",
            [
                ("12.5%", "12.5"),
                ("12.5 %", "12.5"),
                ("12.5 percent", "12.5"),
                ("12.5 per cent", "12.5"),
                (".5%", "0.5"),
            ],
        ),
        ("€8.1M and £2,000", [("€8.1M", "8100000"), ("£2,000", "2000")]),
        ("from 2019-2020", [("2019", "2019"), ("2020", "2020")]),  # a range, not minus 2020
        ("FY2023 Q3 v1.2.3 item 3b", [("3b", "3000000000")]),  # glued to letters: not numbers; "3b" is, sadly
        ("5kg, 7.5 M, 12 months", [("5", "5"), ("7.5", "7.5"), ("12", "12")]),  # a suffix must be glued and alone
        ("(see 12 units)", [("12", "12")]),  # unpaired parentheses are prose
        ("１２３", [("123", "123")]),  # fullwidth digits
        ("1,2345", [("1", "1"), ("2345", "2345")]),  # not a thousands group
        ("0.5 bps", [("0.5", "0.5")]),  # basis points are not understood
        ("9" * 31, []),  # longer than any declared value
    ],
)
def test_numbers_read_out_of_text_edge_values(text: str, read: list[tuple[str, str]]) -> None:
    assert [(n.text, format(n.value.normalize(), "f")) for n in numerals(text)] == read


def test_a_space_grouped_number_also_reads_as_its_groups_like_table_columns() -> None:
    [columns] = numerals("Units 120 340 560")
    assert (columns.value, columns.groups) == (Decimal(120340560), (Decimal(120), Decimal(340), Decimal(560)))
    [thousands] = numerals("12 000 staff")
    assert (thousands.value, thousands.groups) == (Decimal(12000), (Decimal(12),))  # "000" is never a value


# -- the passing extraction ------------------------------------------------------


def test_passing_extraction_is_honey_with_one_finding_per_fact(check: Check, extraction: dict[str, Any]) -> None:
    findings, verdict = check(extraction)
    extracted = of_kind(findings, "extraction")
    assert [f.kind for f in findings] == ["structure", "schema"] + ["extraction"] * 7
    assert unsatisfied(findings) == []
    assert [(f.observed, f.expected) for f in extracted] == [
        ("7500000", "7500000"),
        ("6900000", "6900000"),
        ("12.5", "12.5"),
        ("1234567.89", "1234567.89"),
        ("1234567", "1234567"),
        ("2300", "2300"),
        ("-1234", "-1234"),
    ]
    assert (verdict.severity, verdict.recommended_action, verdict.score) == ("honey", "approve", "100.00")


def test_the_message_names_the_number_matched_and_how_the_quote_was_found(
    check: Check, extraction: dict[str, Any]
) -> None:
    findings, _ = check(extraction)
    extracted = of_kind(findings, "extraction")
    assert extracted[0].message == (
        "facts[0] total_revenue = 7500000 usd: equals “$7.5 million” read as 7500000 in the quote;"
        " quote found exactly in ev_report (annual_report.txt): “Total revenue was $7.5 million”"
    )
    # The statement pads its columns with spaces; the quote does not: a normalised match.
    assert extracted[6].message == (
        "facts[6] net_loss = -1234 usd_thousands: equals “(1,234)” read as -1234 in the quote; quote found after"
        " normalising (Unicode NFKC, case, quotes and dashes, whitespace), not exactly, in ev_report"
        " (annual_report.txt): “Net loss (1,234)”"
    )


# -- what is flagged -------------------------------------------------------------


def test_a_value_that_differs_from_the_quotes_number_is_a_high_flag(check: Check, extraction: dict[str, Any]) -> None:
    fact(extraction, "total_revenue")["value"] = "7400000"
    findings, verdict = check(extraction)
    [flag] = unsatisfied(findings)
    assert (flag.kind, flag.status, flag.tier, flag.observed, flag.expected) == (
        "extraction",
        "flag",
        "high",
        "7400000",
        "7500000",
    )
    assert flag.message == (
        "facts[0] total_revenue = 7400000 usd: no number in the quote equals it; the quote reads"
        " “$7.5 million” read as 7500000: “Total revenue was $7.5 million”"
    )
    assert (verdict.severity, verdict.recommended_action) == ("propolis", "resubmit")


def test_a_quote_that_does_not_occur_in_the_evidence_is_flagged(check: Check, extraction: dict[str, Any]) -> None:
    fact(extraction, "total_revenue").update(
        value="7600000", source={"evidence_reference": "ev_report", "quote": "Total revenue was $7.6 million"}
    )
    finding = fact_finding(check, extraction, "total_revenue")
    assert (finding.status, finding.observed) == ("flag", "absent")
    assert finding.message == (
        "facts[0] total_revenue = 7600000 usd: equals “$7.6 million” read as 7600000 in the quote;"
        " quote “Total revenue was $7.6 million” does not occur in ev_report (annual_report.txt),"
        " exactly or after normalising"
    )


def test_a_quote_with_several_numbers_is_satisfied_by_any_and_names_the_one(
    check: Check, extraction: dict[str, Any]
) -> None:
    # "Revenue rose from $6.9 million in 2022 to $7.5 million in 2023." states four numbers.
    prior = fact(extraction, "revenue_prior_year")
    prior["value"] = "7500000"
    assert "equals “$7.5 million” read as 7500000" in fact_finding(check, extraction, "revenue_prior_year").message
    prior["value"] = "7000000"
    finding = fact_finding(check, extraction, "revenue_prior_year")
    assert finding.status == "flag"
    assert "the quote reads “$6.9 million” read as 6900000, “2022”, “$7.5 million” read as 7500000, “2023”:" in (
        finding.message
    )
    assert finding.expected == "6900000, 2022, 7500000, 2023"


def test_a_percentage_is_12_5_in_percent_and_0_125_in_ratio(check: Check, extraction: dict[str, Any]) -> None:
    margin = fact(extraction, "gross_margin")
    for value, unit, status in [
        ("12.5", "percent", "pass"),
        ("0.125", "ratio", "pass"),
        ("0.125", "Fraction", "pass"),  # units compare lower-cased
        ("0.125", "percent", "flag"),
        ("12.5", "ratio", "flag"),
        ("12.5", "usd", "flag"),
    ]:
        margin.update(value=value, unit=unit)
        assert fact_finding(check, extraction, "gross_margin").status == status, (value, unit)
    assert "“12.5%” (a percentage, not usd)" in fact_finding(check, extraction, "gross_margin").message


def test_a_currency_unit_must_agree_with_the_quotes_symbol(check: Check, extraction: dict[str, Any]) -> None:
    outlook = {"evidence_reference": "ev_report", "quote": "expects European revenue of €8.1M in fiscal 2024"}
    extraction["facts"] = [
        {"name": "revenue_outlook", "value": "8100000", "unit": unit, "source": outlook}
        for unit in ("eur", "usd", "count")
    ]
    findings, _ = check(extraction)
    extracted = of_kind(findings, "extraction")
    assert [f.status for f in extracted] == ["pass", "flag", "pass"]  # "count" names no currency: no conflict
    assert "the quote reads “€8.1M” (in €, not usd), “2024”:" in extracted[1].message


def test_a_sign_dropped_from_an_accounting_negative_is_flagged(check: Check, extraction: dict[str, Any]) -> None:
    fact(extraction, "net_loss")["value"] = "1234"
    finding = fact_finding(check, extraction, "net_loss")
    assert (finding.status, finding.expected) == ("flag", "-1234")


def test_a_quote_that_cuts_its_number_is_flagged_even_though_the_value_matches_it(
    check: Check, extraction: dict[str, Any]
) -> None:
    fact(extraction, "total_revenue").update(
        value="7.5", source={"evidence_reference": "ev_report", "quote": "Total revenue was $7.5"}
    )
    fact(extraction, "gross_margin").update(
        value="12.5", unit="ratio", source={"evidence_reference": "ev_report", "quote": "Gross margin was 12.5"}
    )
    findings, _ = check(extraction)
    cut = [f for f in of_kind(findings, "extraction") if f.status != "pass"]
    assert [(f.status, f.observed) for f in cut] == [("flag", "inside"), ("flag", "inside")]
    assert cut[0].message.endswith(
        "quote “Total revenue was $7.5” occurs in ev_report (annual_report.txt) only inside a longer word or number"
        " (a quote may not cut one: “$7.5” of “$7.5 million”)"
    )


def test_a_fact_citing_binary_evidence_is_open_unless_its_number_is_already_wrong(
    check: Check, extraction: dict[str, Any]
) -> None:
    source = fact(extraction, "total_revenue")["source"]
    source["evidence_reference"] = "ev_photo"
    finding = fact_finding(check, extraction, "total_revenue")
    assert (finding.status, finding.tier) == ("open", "high")
    assert finding.message == (
        "facts[0] total_revenue = 7500000 usd: equals “$7.5 million” read as 7500000 in the quote;"
        " ev_photo (site_photo.png, image/png) has no text the referee can search (binary, not UTF-8, or too large):"
        " quote “Total revenue was $7.5 million” not checked"
    )
    fact(extraction, "total_revenue")["value"] = "7"
    assert fact_finding(check, extraction, "total_revenue").status == "flag"


def test_without_evidence_text_every_fact_is_open(sheet: LoadedSheet, extraction: dict[str, Any]) -> None:
    findings, verdict = check_submission(sheet, msgspec.json.encode(extraction), EVIDENCE)
    assert [f.status for f in of_kind(findings, "extraction")] == ["open"] * 7
    assert (verdict.client_ready, verdict.recommended_action) == (False, "resubmit")


def test_unsupported_and_malformed_facts_are_flags_not_crashes(check: Check, extraction: dict[str, Any]) -> None:
    base = fact(extraction, "total_revenue")
    extraction["facts"] = [
        None,
        dict(base, value=True),
        dict(base, value="7,500,000"),  # a declared value is a plain decimal, not document text
        dict(base, source=None),
        dict(base, source={"quote": "Total revenue was $7.5 million"}),
        dict(base, source={"evidence_reference": "ev_10q", "quote": "Total revenue was $7.5 million"}),
        dict(base, source={"evidence_reference": "ev_report", "quote": "Results of operations"}),
        dict(base, source={"evidence_reference": "ev_report"}),
    ]
    findings, _ = check(extraction)
    messages = [f.message for f in of_kind(findings, "extraction")]
    assert [f.status for f in of_kind(findings, "extraction")] == ["flag"] * 8
    label = "facts[{}] total_revenue"
    assert messages == [
        "facts[0] is not an object",
        label.format(1) + ": value True is not a number",
        label.format(2) + ": value 7,500,000 is not a number",
        label.format(3) + " = 7500000 usd: no source (evidence_reference and quote): unsupported",
        label.format(4) + " = 7500000 usd cites no evidence (no evidence_reference): unsupported",
        label.format(5) + " = 7500000 usd cites 'ev_10q', which names no attached evidence (by id, name or sha256)",
        label.format(6) + " = 7500000 usd: the quote states no number: “Results of operations”",
        label.format(7) + " = 7500000 usd cites ev_report (annual_report.txt), but no quote"
        " (a passage copied from the cited evidence is required)",
    ]


def test_facts_missing_empty_or_over_the_limit_give_one_flag(check: Check, extraction: dict[str, Any]) -> None:
    cases: list[tuple[object, str]] = [
        ({"total_revenue": 7500000}, "facts is missing or not a list: no fact can be checked against evidence"),
        ([], "facts is empty: there is no fact to check"),
        (extraction["facts"] * 29, "203 facts; the limit is 200: not checked"),
    ]
    for facts, message in cases:
        findings, _ = check(dict(extraction, facts=facts))
        assert [(f.status, f.message) for f in of_kind(findings, "extraction")] == [("flag", message)]


# -- the sheet's tolerances and params -----------------------------------------


def test_a_sheet_tolerance_for_a_unit_widens_the_comparison(extraction: dict[str, Any]) -> None:
    def approximate_usd(data: dict[str, Any]) -> None:
        data["tolerances"]["classes"]["half_dollar"] = {"absolute": "0.5", "places": 0}
        data["tolerances"]["units"] = {"usd": "half_dollar"}

    fact(extraction, "total_revenue")["value"] = "7500000.4"
    findings, _ = checker(edited_sheet(approximate_usd))(extraction)
    first = of_kind(findings, "extraction")[0]
    assert first.status == "pass"
    assert "equals “$7.5 million” read as 7500000 (±0.5) in the quote" in first.message
    fact(extraction, "total_revenue")["value"] = "7500000.6"
    assert of_kind(checker(edited_sheet(approximate_usd))(extraction)[0], "extraction")[0].status == "flag"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"fraction_units": ["Ratio"]}, "unit 'Ratio' must be lower-case and trimmed"),
        ({"currency_units": {"usd": "US$"}}, "currency_units"),
        ({"min_quote_chars": 2000}, "min_quote_chars 2000 exceeds max_quote_chars 1000"),
        ({"max_facts": 10_001}, "max_facts"),
    ],
)
def test_extraction_params_are_validated_when_the_sheet_loads(params: dict[str, object], message: str) -> None:
    with pytest.raises(FlightSheetInvalid, match=r"extraction\.facts") as caught:
        edited_sheet(lambda data: data["rules"][2]["params"].update(params))
    assert message in str(caught.value)


# -- bounded work on hostile input -----------------------------------------------


def test_two_megabytes_of_evidence_and_200_facts_are_all_checked_correctly(sheet: LoadedSheet) -> None:
    rows = [f"Segment {i:03d} revenue was ${i + 1},{i % 1000:03d}.25 thousand in the year." for i in range(200)]
    filler = "Narrative: the segment performed in line with plan; see note 4 (page 12) and 7.5% growth.\n" * 115
    text = "".join(filler + row + "\n" for row in rows)
    assert len(text) > 2_000_000
    big = EvidenceRef(id="ev_10k", name="10k.txt", media_type="text/plain", size=len(text), sha256="sha256:" + "6" * 64)

    def value(i: int) -> str:
        stated = (Decimal(i + 1) * 1000 + Decimal(i % 1000) + Decimal("0.25")) * 1000
        return str(stated if i % 2 == 0 else stated + 1)  # every other fact is off by one dollar

    facts = [
        {
            "name": f"segment_{i}",
            "value": value(i),
            "unit": "usd",
            "source": {"evidence_reference": "ev_10k", "quote": rows[i]},
        }
        for i in range(200)
    ]
    document = submission("extraction_pass.json") | {"facts": facts}
    findings, _ = check_submission(sheet, msgspec.json.encode(document), [big], evidence_text={"ev_10k": text})
    assert [f.status for f in of_kind(findings, "extraction")] == ["pass", "flag"] * 100
    assert of_kind(findings, "extraction")[3].expected == "3, 4003250"  # "Segment 003", "$4,003.25 thousand"

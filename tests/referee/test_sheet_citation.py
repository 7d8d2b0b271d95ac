"""genai_evidence_citation_v1: every claim cites attached evidence and quotes it verbatim."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from defendable_canonical.model import EvidenceRef
from defendable_referee.check import check_submission
from defendable_referee.context import CheckContext
from defendable_referee.errors import FlightSheetInvalid
from defendable_referee.quote import MAX_OCCURRENCES, locate, normalise
from defendable_referee.sheet import LoadedSheet, load_library, load_sheet

from .evidence_texts import (
    BRIEF,
    CITATION_SHEET,
    EVIDENCE,
    TEXTS,
    Check,
    checker,
    of_kind,
    submission,
    unsatisfied,
)

SHEET_FILE = (
    Path(__file__).parents[2] / "services/referee/defendable_referee/flight_sheets/genai_evidence_citation_v1.json"
)


@pytest.fixture(scope="module")
def sheet() -> LoadedSheet:
    return load_library().get(CITATION_SHEET)


@pytest.fixture
def check(sheet: LoadedSheet) -> Check:
    return checker(sheet)


@pytest.fixture
def answer() -> dict[str, Any]:
    return submission("citation_pass.json")


def claim_finding(check: Check, answer: dict[str, Any], index: int = 0) -> Any:
    findings, _ = check(answer)
    return of_kind(findings, "citation")[index]


def edited_sheet(**params: object) -> LoadedSheet:
    data = json.loads(SHEET_FILE.read_text("utf-8"))
    data["rules"][2]["params"].update(params)
    return load_sheet(json.dumps(data).encode(), source="edited.json")


def test_the_library_holds_the_citation_sheet_in_the_agent_work_lane(sheet: LoadedSheet) -> None:
    keys = load_library().keys()
    assert CITATION_SHEET in keys
    assert (sheet.lane, [r.kind for r in sheet.sheet.rules]) == ("agent_work", ["structure", "schema", "citation"])


def test_a_reference_matches_an_id_before_a_name_before_a_digest() -> None:
    # One item's file name is another's id: the id wins, whatever the attachment order.
    named = EvidenceRef(id="ev_a", name="ev_b", media_type="text/plain", size=1, sha256="sha256:" + "7" * 64)
    other = EvidenceRef(id="ev_b", name="b.txt", media_type="text/plain", size=1, sha256="sha256:" + "8" * 64)
    context = CheckContext(sheet=load_library().get(CITATION_SHEET).sheet, document={}, evidence=[named, other])
    assert context.cited("ev_b") == (other, None)
    assert context.cited("sha256:" + "7" * 64) == (named, None)
    assert context.cited("nope") is None and context.cited(7) is None


# -- the passing answer ---------------------------------------------------------


def test_passing_answer_is_honey_with_one_finding_per_claim(check: Check, answer: dict[str, Any]) -> None:
    findings, verdict = check(answer)
    assert [f.kind for f in findings] == ["structure", "schema"] + ["citation"] * 4
    assert [f.observed for f in of_kind(findings, "citation")] == ["exact", "normalised", "exact", "normalised"]
    assert unsatisfied(findings) == []
    assert (verdict.severity, verdict.recommended_action, verdict.score, verdict.client_ready) == (
        "honey",
        "approve",
        "100.00",
        True,
    )


def test_an_exact_quote_passes_and_the_message_says_exactly(check: Check, answer: dict[str, Any]) -> None:
    finding = claim_finding(check, answer, 0)
    assert (finding.status, finding.tier) == ("pass", None)
    assert finding.message == (
        "claims[0]: quote found exactly in ev_brief (policy_brief.txt):"
        " “Sixty-two percent of staff worked remotely at least two days”"
    )


def test_a_quote_differing_in_whitespace_case_and_quote_marks_passes_as_normalised(
    check: Check, answer: dict[str, Any]
) -> None:
    # The brief breaks this sentence across lines and uses curly quotes; the claim does neither.
    answer["claims"][0]["quote"] = "SIXTY-TWO percent of staff worked remotely   at least two days a week in 2023"
    finding = claim_finding(check, answer, 0)
    assert (finding.status, finding.observed) == ("pass", "normalised")
    assert finding.message.startswith(
        "claims[0]: quote found after normalising (Unicode NFKC, case, quotes and dashes, whitespace), not exactly,"
        " in ev_brief (policy_brief.txt): “SIXTY-TWO percent"
    )


def test_references_resolve_by_id_file_name_or_sha256(check: Check, answer: dict[str, Any]) -> None:
    for reference in ("ev_brief", "policy_brief.txt", BRIEF.sha256, f"  {BRIEF.id} "):
        answer["claims"][0]["evidence_reference"] = reference
        assert claim_finding(check, answer, 0).status == "pass", reference


# -- what is flagged -------------------------------------------------------------


def test_a_paraphrased_quote_is_a_high_flag_and_the_answer_goes_back(check: Check, answer: dict[str, Any]) -> None:
    answer["claims"][0]["quote"] = "62% of staff worked remotely two or more days a week"
    findings, verdict = check(answer)
    [flag] = unsatisfied(findings)
    assert (flag.kind, flag.status, flag.tier, flag.observed) == ("citation", "flag", "high", "absent")
    assert flag.message == (
        "claims[0]: quote “62% of staff worked remotely two or more days a week”"
        " does not occur in ev_brief (policy_brief.txt), exactly or after normalising"
    )
    assert (verdict.severity, verdict.recommended_action, verdict.score) == ("propolis", "resubmit", "83.33")


def test_a_claim_without_an_evidence_reference_is_unsupported(check: Check, answer: dict[str, Any]) -> None:
    del answer["claims"][1]["evidence_reference"]
    findings, verdict = check(answer)
    citation = of_kind(findings, "citation")[1]
    assert (citation.status, citation.tier) == ("flag", "high")
    assert citation.message == "claims[1] cites no evidence (no evidence_reference): unsupported"
    assert of_kind(findings, "schema")[0].status == "flag"  # the schema requires the field too
    assert verdict.recommended_action == "reject"


def test_a_reference_to_evidence_that_is_not_attached_is_flagged(check: Check, answer: dict[str, Any]) -> None:
    answer["claims"][2]["evidence_reference"] = "ev_minutes"
    finding = claim_finding(check, answer, 2)
    assert (finding.status, finding.observed) == ("flag", "ev_minutes")
    assert finding.message == "claims[2] cites 'ev_minutes', which names no attached evidence (by id, name or sha256)"


def test_a_quote_from_binary_evidence_is_open_never_a_pass(check: Check, answer: dict[str, Any]) -> None:
    answer["claims"][3]["evidence_reference"] = "site_photo.png"
    findings, verdict = check(answer)
    [opened] = unsatisfied(findings)
    assert (opened.status, opened.tier) == ("open", "high")
    assert opened.message == (
        "claims[3]: ev_photo (site_photo.png, image/png) has no text the referee can search"
        " (binary, not UTF-8, or too large): quote “the median time to first independent task rose from 9 to 14 days”"
        " not checked"
    )
    assert (verdict.client_ready, verdict.recommended_action) == (False, "resubmit")


def test_without_evidence_text_every_quote_is_open(sheet: LoadedSheet, answer: dict[str, Any]) -> None:
    findings, verdict = check_submission(sheet, msgspec.json.encode(answer), EVIDENCE)
    assert [f.status for f in of_kind(findings, "citation")] == ["open"] * 4
    assert verdict.client_ready is False


def test_a_quote_that_cuts_a_word_or_a_number_is_flagged(check: Check, answer: dict[str, Any]) -> None:
    answer["claims"][2]["quote"] = "Office leases were reduced by 18% — saving $1.2"  # of "$1.2 million"
    answer["claims"][3]["quote"] = "inancial results are reported separately"  # of "ﬁnancial"
    findings, _ = check(answer)
    cut = of_kind(findings, "citation")[2:]
    assert [(f.status, f.observed) for f in cut] == [("flag", "inside")] * 2
    assert "occurs in ev_brief (policy_brief.txt) only inside a longer word or number" in cut[0].message


def test_empty_blank_short_and_overlong_quotes_are_flagged_with_the_bounds(
    check: Check, answer: dict[str, Any]
) -> None:
    claim = answer["claims"][0]
    answer["claims"] = [dict(claim, quote=q) for q in ("", " \n\t ", "in 2023", "x" * 2001)]
    findings, _ = check(answer)
    messages = [f.message for f in of_kind(findings, "citation")]
    cited = "claims[{}] cites ev_brief (policy_brief.txt), but "
    assert messages == [
        cited.format(0) + "no quote (a passage copied from the cited evidence is required)",
        cited.format(1) + "no quote (a passage copied from the cited evidence is required)",
        cited.format(2) + "quote “in 2023” is 7 characters after normalising; the minimum is 8",
        cited.format(3) + "quote is 2001 characters; the limit is 2000: not searched",
    ]


def test_regex_metacharacters_in_a_quote_are_plain_text(check: Check, answer: dict[str, Any]) -> None:
    answer["claims"][0]["quote"] = r"a+b (c*d)? [e] $f ^g | h\i"
    answer["claims"][1]["quote"] = r"a+b (c*d)? [e] $f ^g | h\j"
    answer["claims"][2]["quote"] = ".* .* .* .* .*"
    findings, _ = check(answer)
    assert [f.observed for f in of_kind(findings, "citation")[:3]] == ["exact", "absent", "absent"]


def test_unicode_ligatures_and_decomposed_accents_match_as_normalised(check: Check, answer: dict[str, Any]) -> None:
    # The brief writes a composed "é" and the "ﬁ" ligature; the quote, a decomposed é and plain "fi".
    answer["claims"][0]["quote"] = "The cafe\u0301 on the ground floor stays open; its financial results"
    answer["claims"][1]["quote"] = "The cafe on the ground floor stays open"  # accents are kept, not stripped
    findings, _ = check(answer)
    assert [f.observed for f in of_kind(findings, "citation")[:2]] == ["normalised", "absent"]


def test_claims_missing_empty_or_over_the_limit_give_one_flag(check: Check, answer: dict[str, Any]) -> None:
    cases: list[tuple[object, str]] = [
        (None, "claims is missing or not a list: no claim can be checked against evidence"),
        ([], "claims is empty: there is no claim to check"),
        (answer["claims"] * 51, "204 claims; the limit is 200: not checked"),
    ]
    for claims, message in cases:
        findings, _ = check(dict(answer, claims=claims))
        assert [(f.status, f.message) for f in of_kind(findings, "citation")] == [("flag", message)]


def test_malformed_claims_are_flags_not_crashes(check: Check, answer: dict[str, Any]) -> None:
    answer["claims"] = [None, {"evidence_reference": ["ev_brief"], "quote": "x"}, {"evidence_reference": "ev_brief"}]
    answer["claims"].append({"evidence_reference": "ev_brief", "quote": {"text": "Sixty-two percent"}})
    findings, _ = check(answer)
    messages = [f.message for f in of_kind(findings, "citation")]
    assert [f.status for f in of_kind(findings, "citation")] == ["flag"] * 4
    assert messages[0] == "claims[0] is not an object: unsupported"
    assert messages[1] == "claims[1]: evidence_reference ['ev_brief'] is not text: unsupported"
    assert messages[2].endswith("but no quote (a passage copied from the cited evidence is required)")
    assert messages[3].endswith("but quote {'text': 'Sixty-two percent'} is not text")


# -- the sheet's params ----------------------------------------------------------


def test_an_exact_only_sheet_flags_a_quote_that_matches_only_normalised(answer: dict[str, Any]) -> None:
    findings, _ = checker(edited_sheet(match="exact"))(answer)
    citation = of_kind(findings, "citation")
    assert [f.status for f in citation] == ["pass", "flag", "pass", "flag"]
    assert citation[1].message.endswith(
        "occurs in ev_brief (policy_brief.txt) only after normalising case, Unicode or whitespace;"
        " this sheet requires an exact quote"
    )


def test_a_sheet_that_does_not_require_quotes_passes_a_reference_alone(answer: dict[str, Any]) -> None:
    del answer["claims"][0]["quote"]
    answer["claims"][1]["quote"] = "not in the brief at all"
    findings, _ = checker(edited_sheet(require_quote=False))(answer)
    citation = of_kind(findings, "citation")
    assert citation[0].message == "claims[0] cites ev_brief (policy_brief.txt) (this sheet does not require a quote)"
    assert [f.status for f in citation] == ["pass", "flag", "pass", "pass"]  # a quote given is still checked


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"min_quote_chars": 50, "max_quote_chars": 10}, "min_quote_chars 50 exceeds max_quote_chars 10"),
        ({"match": "fuzzy"}, "match"),
        ({"max_claims": 0}, "max_claims"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_citation_params_are_validated_when_the_sheet_loads(params: dict[str, object], message: str) -> None:
    with pytest.raises(FlightSheetInvalid, match=r"citation\.quotes") as caught:
        edited_sheet(**params)
    assert message in str(caught.value)


# -- bounded work on hostile input -----------------------------------------------


def test_two_megabytes_of_evidence_and_200_claims_are_all_checked_correctly(sheet: LoadedSheet) -> None:
    sentences = [f"Site {i:03d} reported a reading of {i * 7}.5 units on its “{i}th” visit." for i in range(200)]
    filler = "Routine inspection notes: nothing further to report, readings nominal 1,234 and 5.6%.\n" * 120
    text = "".join(filler + sentence + "\n" for sentence in sentences)
    assert len(text) > 2_000_000
    big = EvidenceRef(
        id="ev_log", name="site_log.txt", media_type="text/plain", size=len(text), sha256="sha256:" + "5" * 64
    )

    def quote(i: int) -> str:
        match i % 4:
            case 0:
                return sentences[i]  # exact
            case 1:
                return sentences[i].upper().replace("“", '"').replace("”", '"')  # normalised
            case 2:
                return f"Site {i:03d} reported a reading of {i * 7 + 1}.5 units"  # a figure the log never states
            case _:
                return f"Site {i:03d} reported a reading of {i * 7}"  # cuts "{7i}.5"

    claims = [{"text": f"claim {i}", "evidence_reference": "ev_log", "quote": quote(i)} for i in range(200)]
    document = submission("citation_pass.json") | {"claims": claims}
    findings, verdict = check_submission(sheet, msgspec.json.encode(document), [big], evidence_text={"ev_log": text})
    observed = [f.observed for f in of_kind(findings, "citation")]
    assert observed == ["exact", "normalised", "absent", "inside"] * 50
    assert verdict.score == "50.50"  # structure, schema and 100 claims pass: 102 of 202 findings = 50.495…%


def test_a_quote_found_only_inside_words_gives_up_after_a_bounded_number_of_places() -> None:
    text = "a" * 2_000_000 + " aaaaaaaa"
    assert locate("aaaaaaaa", text) == "inside"  # the whole-word occurrence at the end is past MAX_OCCURRENCES
    assert locate("aaaaaaaa", "b" * MAX_OCCURRENCES + " aaaaaaaa") == "exact"


@pytest.mark.parametrize(
    ("quote", "text", "location"),
    [
        ("net income", "Net income rose.", "normalised"),
        ("Net income", "Net income rose.", "exact"),
        ("profitable", "The unit was unprofitable.", "inside"),
        ("was 7", "Revenue was 75 million.", "inside"),
        ("Revenue was 7.5", "Revenue was 7.5 million.", "inside"),
        ("Revenue was 7.5 million", "Revenue was 7.5 million.", "exact"),
        ("loss 1,234", "Net loss (1,234) for the year", "absent"),
        ("Net loss (1,234", "Net loss (1,234) for the year", "inside"),
        ("margin 12.5", "margin 12.5% in 2023", "inside"),
        ("it’s “fine” – really", 'it\'s "fine" - really', "normalised"),
        ("ﬁnal", "final answer", "normalised"),
        ("１２ units", "12 units", "normalised"),
        ("café", "cafe\u0301 ouvert", "normalised"),
        ("cafe", "cafe\u0301 ouvert", "inside"),
        ("co\u00adoperate", "cooperate", "normalised"),
        ("STRASSE", "Straße", "normalised"),
    ],
)
def test_quote_locations_edge_values(quote: str, text: str, location: str) -> None:
    assert locate(quote, text) == location


def test_normalise_is_nfkc_casefolded_and_collapses_whitespace() -> None:
    assert normalise("  The\u00a0 ﬁrst\n\tLINE\u2009— “quoted”  ") == 'the first line - "quoted"'
    assert normalise(normalise("Ǆ ǰ ẞ")) == normalise("Ǆ ǰ ẞ")  # idempotent, even where folding un-normalises


def test_findings_are_deterministic(sheet: LoadedSheet, answer: dict[str, Any]) -> None:
    answer["claims"][0]["quote"] = "paraphrase of the brief"
    raw = msgspec.json.encode(answer)
    first = check_submission(sheet, raw, EVIDENCE, evidence_text=TEXTS)
    assert all(check_submission(sheet, raw, EVIDENCE, evidence_text=dict(TEXTS)) == first for _ in range(3))

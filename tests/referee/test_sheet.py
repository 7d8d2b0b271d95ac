"""The Flight Sheet library: validated at load, hashed as the canonical JSON of each file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from defendable_canonical.digest import sha256_digest
from defendable_canonical.model import Finding
from defendable_referee.context import CheckContext
from defendable_referee.errors import FlightSheetInvalid, UnknownFlightSheet
from defendable_referee.rules import run_rule
from defendable_referee.sheet import LoadedSheet, Rule, load_library, load_sheet

from .conftest import CRE_SHEET, EVIDENCE

SHEETS = Path(__file__).parents[2] / "services/referee/defendable_referee/flight_sheets"


def sheet_json() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SHEETS / "cre_memo_dscr_ltv_v1.json").read_text())
    return data


def test_packaged_library_holds_the_cre_sheet_by_key_and_by_id_and_version() -> None:
    library = load_library()
    loaded = library.get(CRE_SHEET)
    assert library.get("cre_memo_dscr_ltv_v1", "1.0.0") == loaded
    assert (loaded.lane, loaded.sheet.version) == ("agent_work", "1.0.0")
    assert [r.kind for r in loaded.sheet.rules] == ["structure", "schema", "math", "evidence", "policy"]
    assert loaded.ref().id == "cre_memo_dscr_ltv_v1"


def test_packaged_library_holds_the_agent_work_sheets() -> None:
    keys = load_library().keys()
    for key in (CRE_SHEET, "cre_memo_noi_cap_rate_v1@1.0.0", "fin_wacc_calculation_v1@1.0.0"):
        assert key in keys


_BOUND = {">=": "inclusive", "<=": "inclusive", ">": "exclusive", "<": "exclusive"}


def test_every_gate_states_in_its_description_whether_its_bound_is_inclusive_or_exclusive() -> None:
    for loaded in load_library().sheets():
        for gate in loaded.sheet.gates:
            where = f"{loaded.sheet.key} gate {gate.id} ({gate.op})"
            assert _BOUND[gate.op] in gate.description, f"{where}: {gate.description!r}"


def test_sheet_hash_is_sha256_of_the_rfc8785_form_of_the_file() -> None:
    import rfc8785  # an independent JCS implementation (a dev dependency: never skipped)

    expected = sha256_digest(rfc8785.dumps(sheet_json()))
    assert load_library().get(CRE_SHEET).sha256 == expected


def test_hash_ignores_formatting_but_not_content() -> None:
    data = sheet_json()
    compact = load_sheet(json.dumps(data, separators=(",", ":")).encode(), source="compact.json")
    assert compact.sha256 == load_library().get(CRE_SHEET).sha256
    data["gates"][0]["threshold"] = "1.25"
    assert load_sheet(json.dumps(data).encode(), source="edited.json").sha256 != compact.sha256


def test_unknown_sheet_is_refused_with_the_known_keys() -> None:
    with pytest.raises(UnknownFlightSheet, match=r"cre_memo_dscr_ltv_v1@1\.0\.0"):
        load_library().get("cre_memo_dscr_ltv_v1@9.9.9")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["rules"].append({"id": "x", "kind": "vibes", "tier": "high"}), "unknown kind 'vibes'"),
        (lambda d: d["rules"].clear(), "at least one rule"),
        (lambda d: d["rules"][0]["params"].update(surprise=1), "structure.sections"),
        (lambda d: d["derivations"][0].update(formula="__import__('os')"), "formula refused"),
        (lambda d: d["gates"][0].update(quantity="irr"), "no derivation defines"),
        (lambda d: d["gates"][0].update(threshold="lots"), "not a decimal"),
        (lambda d: d["tolerances"].update(default_class="nope"), "unknown tolerance class"),
        (lambda d: d["required_output_schema"].update(type=7), "not a valid JSON Schema"),
        (lambda d: d.update(lane="vibes"), "lane"),
        (lambda d: d["rules"][4]["params"].update(gates=["nope"]), "unknown gate"),
        (
            lambda d: d["rules"][0]["params"]["required"].append("valuation"),
            "rule 'structure.sections' required names field 'valuation', which required_output_schema does not define",
        ),
        (
            lambda d: d["conventions"].pop("noi"),
            "derivation 'dscr' reads 'noi', which is neither an earlier derivation (monthly_payment,"
            " annual_debt_service) nor declared in conventions",
        ),
    ],
)
def test_an_invalid_sheet_fails_at_load_naming_the_file(edit: Any, message: str, tmp_path: Path) -> None:
    data = sheet_json()
    edit(data)
    (tmp_path / "broken.json").write_text(json.dumps(data))
    with pytest.raises(FlightSheetInvalid, match=r"broken\.json") as caught:
        load_library(tmp_path)
    assert message in str(caught.value)


def test_malformed_sheet_json_and_duplicate_keys_fail_at_load(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(FlightSheetInvalid, match=r"bad\.json"):
        load_library(tmp_path)
    (tmp_path / "bad.json").unlink()
    (tmp_path / "a.json").write_text(json.dumps(sheet_json()))
    (tmp_path / "b.json").write_text(json.dumps(sheet_json()))
    with pytest.raises(FlightSheetInvalid, match="defined twice"):
        load_library(tmp_path)


def _context(loaded: LoadedSheet) -> CheckContext:
    return CheckContext(sheet=loaded.sheet, document={}, evidence=EVIDENCE)


def test_a_rule_that_raises_or_has_an_unknown_kind_is_a_high_flag(cre_sheet: LoadedSheet) -> None:
    def boom(rule: Rule, context: CheckContext) -> list[Finding]:
        raise RuntimeError("disk on fire")

    rule = Rule(id="r", kind="math", tier="low")
    [crashed] = run_rule(rule, _context(cre_sheet), {"math": boom})
    [unknown] = run_rule(Rule(id="u", kind="vibes", tier="low"), _context(cre_sheet))
    [silent] = run_rule(rule, _context(cre_sheet), {"math": lambda r, c: []})
    for finding in (crashed, unknown, silent):
        assert (finding.status, finding.tier) == ("flag", "high")
        assert finding.message.startswith("check could not run")
    assert "disk on fire" in crashed.message and "vibes" in unknown.message

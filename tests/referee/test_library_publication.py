"""The library as files: the format's JSON Schema, `flight-sheet lint`, and publication locks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from defendable_cli.main import main
from defendable_referee.errors import FlightSheetInvalid
from defendable_referee.format_schema import format_schema
from defendable_referee.lint import lint_sheet
from defendable_referee.publication import LOCK_NAME, LockError, appended_lock, read_lock
from defendable_referee.sheet import load_library

ROOT = Path(__file__).parents[2]
SHEETS = ROOT / "services/referee/defendable_referee/flight_sheets"
CRE = SHEETS / "cre_memo_dscr_ltv_v1.json"


def cre_json() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CRE.read_text())
    return data


def library_copy(tmp_path: Path) -> Path:
    root = tmp_path / "library"
    shutil.copytree(SHEETS, root)
    return root


# -- the format ---------------------------------------------------------------


def test_committed_format_schema_is_the_one_derived_from_the_loader() -> None:
    committed = json.loads((ROOT / "docs/flight-sheet.schema.json").read_text())
    assert committed == format_schema(), "regenerate: python -m defendable_referee.format_schema"
    jsonschema.Draft202012Validator.check_schema(committed)


def test_every_packaged_sheet_lints_clean_and_is_published() -> None:
    lock = (SHEETS / LOCK_NAME).read_text()
    for path in sorted(SHEETS.glob("*.json")):
        report = lint_sheet(path.read_bytes(), source=path.name, lock_text=lock)
        assert report.ok, report.problems
        assert report.published == "published"


# -- lint ---------------------------------------------------------------------


def test_lint_reports_every_format_error_with_its_path() -> None:
    data = cre_json()
    data["version"] = "1.0"
    data["rules"][0]["params"]["surprise"] = 1
    data["rules"][1]["kind"] = "vibes"
    report = lint_sheet(json.dumps(data).encode(), source="bad.json")
    paths = [p.path for p in report.problems]
    assert paths == ["$.rules[0].params", "$.rules[1].kind", "$.version"]
    assert "'surprise' was unexpected" in report.problems[0].message
    assert "'vibes' is not one of" in report.problems[1].message


def test_lint_locates_malformed_json_by_line_and_column() -> None:
    [problem] = lint_sheet(b'{\n  "id": "x",\n  oops\n}', source="x.json").problems
    assert problem.message.startswith("not valid JSON") and "(line 3, column 3)" in problem.message


def test_lint_refuses_duplicate_keys_which_would_make_the_file_ambiguous() -> None:
    text = CRE.read_text().replace('"tier": "high"', '"tier": "low", "tier": "high"', 1)
    [problem] = lint_sheet(text.encode(), source="dup.json").problems
    assert problem.message == "duplicate keys in one object: 'tier'"


def test_lint_passes_meaning_problems_through_from_the_loader() -> None:
    data = cre_json()
    data["gates"][0]["quantity"] = "irr"  # a gate on a quantity nothing derives
    [problem] = lint_sheet(json.dumps(data).encode(), source="gate.json").problems
    assert "gate 'dscr_min' bounds 'irr', which no derivation defines" in problem.message


def test_lint_says_an_edited_published_sheet_needs_a_new_version() -> None:
    data = cre_json()
    data["gates"][0]["threshold"] = "1.25"
    report = lint_sheet(json.dumps(data).encode(), source=CRE.name, lock_text=(SHEETS / LOCK_NAME).read_text())
    [problem] = report.problems
    assert problem.path == "$.version" and "an edit needs a new version" in problem.message
    data["version"] = "1.1.0"
    bumped = lint_sheet(json.dumps(data).encode(), source="v11.json", lock_text=(SHEETS / LOCK_NAME).read_text())
    assert bumped.ok and bumped.published == "unpublished" and bumped.key == "cre_memo_dscr_ltv_v1@1.1.0"


def test_cli_lint_prints_problems_and_exits_1_or_prints_ok_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    data = cre_json()
    del data["tolerances"]
    bad.write_text(json.dumps(data))
    assert main(["flight-sheet", "lint", str(CRE), str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{CRE}: ok — cre_memo_dscr_ltv_v1@1.0.0 sha256:") and out[0].endswith(", published")
    assert out[1:] == [f"{bad}: 1 problem", "  $: 'tolerances' is a required property"]
    assert main(["flight-sheet", "lint", "--json", str(bad)]) == 1
    [report] = msgspec.json.decode(capsys.readouterr().out)
    assert report["problems"] == [{"path": "$", "message": "'tolerances' is a required property"}]
    assert main(["flight-sheet", "lint", str(tmp_path / "missing.json")]) == 1
    assert "cannot read" in capsys.readouterr().out


def test_cli_lint_runs_as_the_installed_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "defendable_cli.main", "flight-sheet", "lint", str(CRE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and ": ok — cre_memo_dscr_ltv_v1@1.0.0" in done.stdout


# -- publication ----------------------------------------------------------------


def test_the_library_refuses_a_published_sheet_edited_in_place(tmp_path: Path) -> None:
    root = library_copy(tmp_path)
    data = cre_json()
    data["gates"][1]["threshold"] = "0.85"
    (root / CRE.name).write_text(json.dumps(data))
    with pytest.raises(FlightSheetInvalid, match=r"cre_memo_dscr_ltv_v1@1\.0\.0 changed after it was published"):
        load_library(root)


def test_the_library_refuses_an_unpublished_sheet_and_a_removed_one(tmp_path: Path) -> None:
    root = library_copy(tmp_path)
    data = cre_json()
    data["version"] = "1.1.0"
    (root / "cre_memo_dscr_ltv_v1@1.1.0.json").write_text(json.dumps(data))
    with pytest.raises(FlightSheetInvalid, match=r"1\.1\.0 is not published"):
        load_library(root)
    (root / CRE.name).unlink()
    with pytest.raises(FlightSheetInvalid, match=r"1\.0\.0 is published but its file is gone"):
        load_library(root)
    (root / LOCK_NAME).unlink()
    with pytest.raises(FlightSheetInvalid, match=f"has no {LOCK_NAME}"):
        load_library(root)


def test_publish_appends_the_new_version_and_both_versions_then_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = library_copy(tmp_path)
    before = (root / LOCK_NAME).read_text()
    data = cre_json()
    data["version"] = "1.1.0"
    data["gates"][0]["threshold"] = "1.25"
    (root / "cre_memo_dscr_ltv_v1@1.1.0.json").write_text(json.dumps(data, indent=2))
    assert main(["flight-sheet", "publish", str(root)]) == 0
    assert "published cre_memo_dscr_ltv_v1@1.1.0" in capsys.readouterr().out
    after = (root / LOCK_NAME).read_text()
    assert after.startswith(before) and after.count("\n") == before.count("\n") + 1
    library = load_library(root)
    old, new = library.get("cre_memo_dscr_ltv_v1@1.0.0"), library.get("cre_memo_dscr_ltv_v1@1.1.0")
    assert old.sha256 != new.sha256 and old.sheet.gates[0].threshold == "1.20"
    assert main(["flight-sheet", "publish", str(root)]) == 0  # idempotent
    assert (root / LOCK_NAME).read_text() == after


def test_publish_refuses_to_repin_an_edited_sheet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = library_copy(tmp_path)
    data = cre_json()
    data["title"] = "edited"
    (root / CRE.name).write_text(json.dumps(data))
    before = (root / LOCK_NAME).read_text()
    assert main(["flight-sheet", "publish", str(root)]) == 2
    assert "an edit needs a new version" in capsys.readouterr().out
    assert (root / LOCK_NAME).read_text() == before


def test_lock_lines_are_strict() -> None:
    digest = "sha256:" + "a" * 64
    assert read_lock(f"# c\n\nx_v1@1.0.0 {digest}\n") == {"x_v1@1.0.0": digest}
    with pytest.raises(LockError, match="line 1"):
        read_lock("x_v1@1.0.0 sha256:abc\n")
    with pytest.raises(LockError, match="pinned twice"):
        read_lock(f"x_v1@1.0.0 {digest}\nx_v1@1.0.0 {digest}\n")
    with pytest.raises(LockError, match="changed after it was published"):
        appended_lock(f"x_v1@1.0.0 {digest}\n", [("x_v1@1.0.0", "sha256:" + "b" * 64)])

"""The seven Dataset sheets, each on a dataset that passes it and one that fails it."""

from __future__ import annotations

from pathlib import Path

import pytest

from .kit import (
    BALANCE,
    DUPLICATES,
    MISSING,
    PROVENANCE,
    SAFETY,
    SCHEMA,
    SHEETS,
    SPLITS,
    Bundle,
    clean_rows,
    messages,
    of,
    sentence,
    unsatisfied,
)


def clean(tmp_path: Path) -> Bundle:
    bundle = Bundle(tmp_path)
    bundle.add_csv("train.csv", clean_rows(40))
    bundle.add_csv("test.csv", clean_rows(20, start=100, users="t"), split="test")
    return bundle


@pytest.mark.parametrize("sheet", SHEETS)
def test_a_clean_dataset_passes_every_sheet(tmp_path: Path, sheet: str) -> None:
    findings, verdict = clean(tmp_path).check(sheet)
    assert not unsatisfied(findings), messages(findings)
    assert verdict.severity == "honey"
    assert verdict.recommended_action == "approve"


@pytest.mark.parametrize("sheet", SHEETS)
def test_every_sheet_checks_the_files_and_their_claimed_rows(tmp_path: Path, sheet: str) -> None:
    bundle = clean(tmp_path)
    bundle.entries[0]["rows"] = 41
    findings, verdict = bundle.check(sheet)
    [flag] = unsatisfied(of(findings, "dataset.files"))
    assert flag.tier == "high"
    assert "claims 41 rows, the file holds 40 records" in flag.message
    assert verdict.severity == "propolis"


# -- schema validation ------------------------------------------------------------------


def test_schema_violations_are_counted_with_their_first_rows(tmp_path: Path) -> None:
    rows = clean_rows(30)
    rows[3]["age"] = "forty"
    rows[8]["age"] = 130
    rows[5]["label"] = "maybe"
    rows[9]["id"] = rows[2]["id"]
    rows[12]["id"] = rows[2]["id"]
    rows[20]["user"] = ""
    bundle = Bundle(tmp_path)
    bundle.add_csv("train.csv", rows)
    findings, verdict = bundle.check(SCHEMA)
    by_column = {f.message.split(" (")[0]: f for f in of(findings, "dataset.schema_validation")}
    assert by_column["column age"].status == "flag"
    assert "1 value not integer (train.csv row 4)" in by_column["column age"].message
    assert "1 value outside [0, 120] (train.csv row 9)" in by_column["column age"].message
    assert "1 value not an allowed value (train.csv row 6)" in by_column["column label"].message
    assert "2 values repeat an earlier value in a unique column (1 distinct value) (train.csv rows 10, 13)" in (
        by_column["column id"].message
    )
    assert "1 value missing but not nullable (train.csv row 21)" in by_column["column user"].message
    assert by_column["column text"].status == "pass"
    assert verdict.severity == "propolis"


def test_declared_sentinels_are_missing_values_not_out_of_range_ones(tmp_path: Path) -> None:
    rows = clean_rows(10)
    rows[2]["age"] = -999
    rows[5]["age"] = "-999.0"
    bundle = Bundle(tmp_path)
    bundle.columns[4]["missing_values"] = [-999]
    bundle.add_csv("train.csv", rows)
    findings, _ = bundle.check(SCHEMA)
    assert not unsatisfied(findings), messages(findings)
    bundle.columns[4]["nullable"] = False
    findings, _ = bundle.check(SCHEMA)
    [age] = unsatisfied(findings)
    assert "2 values missing but not nullable (train.csv rows 3, 6)" in age.message


def test_undeclared_and_missing_columns_are_structural_flags(tmp_path: Path) -> None:
    bundle = Bundle(tmp_path)
    bundle.add_csv("train.csv", [{**{k: v for k, v in r.items() if k != "age"}, "notes": "x"} for r in clean_rows(5)])
    findings, _ = bundle.check(SCHEMA)
    [structure] = [f for f in of(findings, "dataset.schema_validation") if f.message.startswith("train.csv")]
    assert structure.status == "flag"
    assert "missing declared column age" in structure.message
    assert "undeclared column notes" in structure.message
    assert any("column age (integer" in f.message and "in no readable file" in f.message for f in findings)


def test_additional_columns_may_be_allowed_by_the_manifest(tmp_path: Path) -> None:
    bundle = Bundle(tmp_path)
    bundle.add_csv("train.csv", [{**r, "notes": "x"} for r in clean_rows(5)])
    manifest = bundle.manifest()
    manifest["schema"]["additional_columns"] = True
    findings, _ = bundle.check(SCHEMA, manifest)
    assert not unsatisfied(findings), messages(findings)


def test_json_lines_values_are_typed_by_their_json_type(tmp_path: Path) -> None:
    rows = clean_rows(6)
    rows[1]["age"] = "31"  # a string where the schema says integer
    rows[2]["age"] = 31.5
    rows[4]["extra"] = True
    bundle = Bundle(tmp_path)
    bundle.add_jsonl("train.jsonl", rows)
    findings, _ = bundle.check(SCHEMA)
    text = messages(findings)
    assert "2 values not integer (train.jsonl rows 2, 3)" in text
    assert "undeclared keys extra in 1 record (row 5)" in text


# -- class balance -----------------------------------------------------------------------


def test_a_skewed_split_is_flagged_with_its_shares(tmp_path: Path) -> None:
    bundle = clean(tmp_path)
    skewed = clean_rows(20, start=100, users="t")
    for r in skewed[:12]:
        r["label"] = "pos"
    bundle.files.pop("test.csv")
    bundle.entries.pop()
    bundle.add_csv("test.csv", skewed, split="test")
    findings, verdict = bundle.check(BALANCE)
    [flag] = unsatisfied(findings)
    assert flag.tier == "mid"
    assert flag.message.startswith("split test: 2 classes over 20 labelled records (neg 0.2000, pos 0.8000)")
    assert "class pos share 0.8000 is 0.3000 above its target 0.5000 (tolerance 0.05)" in flag.message
    assert verdict.severity == "jelly"
    assert any(f.status == "pass" and f.message.startswith("split train") for f in findings)


def test_declared_targets_and_tolerance_are_used_within_the_sheets_ceiling(tmp_path: Path) -> None:
    bundle = clean(tmp_path)
    bundle.extra["class_balance"] = {"shares": {"pos": 0.7, "neg": 0.3}, "tolerance": 0.25}
    findings, _ = bundle.check(BALANCE)
    flags = unsatisfied(findings)
    assert any("declared tolerance 0.25 exceeds the sheet's ceiling 0.1" in f.message for f in flags)
    assert any("class pos share 0.5000 is 0.2000 below its target 0.7000 (tolerance 0.1)" in f.message for f in flags)


def test_claimed_class_figures_are_re_derived(tmp_path: Path) -> None:
    bundle = clean(tmp_path)
    bundle.extra["statistics"] = {
        "class_counts": {"train": {"pos": 20, "neg": 20}, "test": {"pos": 11}},
        "class_shares": {"all": {"pos": 0.5}, "test": {"neg": 0.33}},
    }
    findings, _ = bundle.check(BALANCE)
    [flag] = unsatisfied(findings)
    assert flag.tier == "high"
    assert "test/pos claimed 11, counted 10" in flag.message
    assert "test/neg share claimed 0.33, re-derived 0.50 (10/20)" in flag.message
    assert flag.observed == "3 of 5 re-derived"


# -- duplicates ----------------------------------------------------------------------------


def long_rows(n: int, *, start: int = 0, users: str = "u") -> list[dict[str, object]]:
    rows = clean_rows(n, start=start, users=users)
    for r in rows:
        r["text"] = sentence(int(str(r["id"])), 40)
    return rows


def test_exact_and_near_duplicates_are_counted_against_the_sheets_rates(tmp_path: Path) -> None:
    rows = long_rows(60)
    rows[10] = {**rows[3], "id": rows[10]["id"]}  # an exact copy under another id
    words = str(rows[20]["text"]).split()
    words[20] = "changed"
    rows[30]["text"] = " ".join(words)  # one word of 40 changed: Jaccard of 3-grams 35/41
    bundle = Bundle(tmp_path)
    bundle.add_csv("train.csv", rows)
    findings, verdict = bundle.check(DUPLICATES)
    exact, near = of(findings, "dataset.duplicate_detection")
    assert exact.status == "flag"
    assert "1 record repeat an earlier one, 1.67% of 60, in 1 group (first repeats: train.csv row 11)" in exact.message
    assert "(ignoring id)" in exact.message
    assert near.status == "flag"
    assert "2 near-duplicate records" in near.message  # the exact copy and the one-word edit
    assert "train.csv row 31 ~ train.csv row 21" in near.message
    assert "all 60 records" in near.message
    assert verdict.severity == "jelly"


def test_claimed_duplicate_counts_are_re_derived(tmp_path: Path) -> None:
    bundle = Bundle(tmp_path)
    bundle.add_csv("train.csv", long_rows(30))
    bundle.extra["statistics"] = {"exact_duplicate_rows": 0, "near_duplicate_rows": 2}
    findings, _ = bundle.check(DUPLICATES)
    [flag] = unsatisfied(findings)
    assert flag.tier == "high"
    assert "near_duplicate_rows claimed 2, counted 0" in flag.message


# -- provenance ----------------------------------------------------------------------------


def test_a_file_without_a_license_or_with_a_non_uri_source_is_flagged(tmp_path: Path) -> None:
    bundle = clean(tmp_path)
    bundle.entries[0]["provenance"] = {"source_url": "my laptop"}
    del bundle.entries[1]["provenance"]
    findings, verdict = bundle.check(PROVENANCE)
    first, second = of(findings, "dataset.provenance_completeness")
    assert first.message == "train.csv: source_url is not an absolute URI; no license"
    assert second.message == "test.csv: no provenance"
    assert verdict.severity == "propolis"


def test_record_level_provenance_needs_a_source_and_a_license_in_every_record(tmp_path: Path) -> None:
    rows = clean_rows(10)
    for i, r in enumerate(rows):
        r["source"] = "" if i == 4 else f"https://example.org/{i}"
        r["license"] = "CC0-1.0"
    bundle = Bundle(tmp_path)
    bundle.columns += [
        {"name": "source", "type": "string", "role": "source"},
        {"name": "license", "type": "string", "role": "license"},
    ]
    bundle.add_csv("train.csv", rows)
    bundle.extra["provenance_level"] = "record"
    findings, _ = bundle.check(PROVENANCE)
    source, license_ = of(findings, "dataset.provenance_completeness")
    assert source.message == "1 record of 10 lack a source (absolute URI) in column source (train.csv row 5)"
    assert license_.status == "pass"


# -- train/test integrity --------------------------------------------------------------------


def test_leaks_across_splits_are_flagged(tmp_path: Path) -> None:
    train = long_rows(30)
    test = long_rows(10, start=100, users="t")
    test[2] = {**train[5], "id": 102}  # the same record in both splits
    test[4]["user"] = train[7]["user"]  # a user in both splits
    words = str(train[12]["text"]).split()
    words[0] = "edited"
    test[6]["text"] = " ".join(words)  # a near-duplicate of a train text
    bundle = Bundle(tmp_path)
    bundle.add_csv("train.csv", train)
    bundle.add_csv("test.csv", test, split="test")
    findings, verdict = bundle.check(SPLITS)
    exact, near, group = of(findings, "dataset.train_test_integrity")
    assert exact.status == "flag" and "1 record found in more than one split (first: train.csv row 6)" in exact.message
    assert near.status == "flag" and "test.csv row 7 ~ train.csv row 13" in near.message
    assert group.status == "flag" and group.message.startswith("group key user: 2 values found in more than one")
    assert "u3" not in group.message  # key values may be personal data: rows only
    assert verdict.severity == "propolis"


def test_one_split_leaves_integrity_open(tmp_path: Path) -> None:
    bundle = Bundle(tmp_path)
    bundle.add_csv("train.csv", clean_rows(10))
    findings, verdict = bundle.check(SPLITS)
    [finding] = of(findings, "dataset.train_test_integrity")
    assert finding.status == "open"
    assert not verdict.client_ready


def test_splits_may_come_from_a_column(tmp_path: Path) -> None:
    rows = clean_rows(20)
    for r in rows:
        r["part"] = "train" if int(str(r["id"])) < 14 else "test"
    rows[15]["user"] = rows[0]["user"]
    bundle = Bundle(tmp_path)
    bundle.columns.append({"name": "part", "type": "string", "role": "split"})
    bundle.add_csv("all.csv", rows, split=None)
    findings, _ = bundle.check(SPLITS)
    [group] = [f for f in findings if f.message.startswith("group key")]
    assert (
        "1 value found in more than one of splits test, train (first rows carrying one: all.csv row 1)" in group.message
    )


# -- missing values ----------------------------------------------------------------------------


def test_missing_rates_count_absent_blank_and_sentinel_values(tmp_path: Path) -> None:
    rows = clean_rows(40)
    rows[1]["age"] = -999
    rows[2]["age"] = "-999.0"
    rows[3]["age"] = "N/A"
    rows[4]["age"] = ""
    bundle = Bundle(tmp_path)
    bundle.columns[4]["missing_values"] = [-999]
    bundle.add_csv("train.csv", rows)
    bundle.extra["statistics"] = {"missing_counts": {"age": 4}, "missing_rates": {"age": 0.1, "text": 0.5}}
    findings, verdict = bundle.check(MISSING)
    [age] = [f for f in findings if f.message.startswith("column age")]
    assert age.status == "flag"
    assert age.message == "column age: 10.00% missing (4 of 40: 1 absent, 3 sentinel) above the bound 0.05"
    [claims] = [f for f in findings if f.message.startswith("claimed")]
    assert "text rate claimed 0.5, re-derived 0.0 (0/40)" in claims.message
    assert claims.observed == "2 of 3 re-derived"
    assert verdict.severity == "propolis"


def test_a_declared_bound_above_the_sheets_ceiling_is_refused(tmp_path: Path) -> None:
    bundle = Bundle(tmp_path)
    bundle.columns[4]["max_missing_rate"] = 0.9
    bundle.add_csv("train.csv", clean_rows(10))
    findings, _ = bundle.check(MISSING)
    [age] = unsatisfied(findings)
    assert "declared bound 0.9 exceeds the sheet's ceiling 0.5" in age.message


# -- claims no rule re-derives ---------------------------------------------------------------------


def test_a_claimed_statistic_the_sheet_does_not_re_derive_is_flagged(tmp_path: Path) -> None:
    bundle = clean(tmp_path)
    bundle.extra["statistics"] = {"pii_counts": {"email": 0}}
    findings, _ = bundle.check(BALANCE)
    [flag] = unsatisfied(findings)
    assert flag.rule_id == "dataset.files" and flag.tier == "high"
    assert "pii_counts (re-derived by dataset_content_safety_scan)" in flag.message
    findings, _ = bundle.check(SAFETY)
    assert not unsatisfied(findings), messages(findings)


def test_the_provenance_sheet_reads_the_files_too(tmp_path: Path) -> None:
    findings, _ = clean(tmp_path).check(PROVENANCE)
    assert [f.status for f in of(findings, "dataset.files")] == ["pass", "pass"]

"""Hostile data and manifests: every one gives a clear flag — never a crash, never a silent pass."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from .kit import (
    DUPLICATES,
    MISSING,
    SAFETY,
    SCHEMA,
    SHEETS,
    SPLITS,
    Bundle,
    clean_rows,
    csv_bytes,
    messages,
    of,
    unsatisfied,
)

HEADER = ["id", "user", "text", "label", "age"]


def _never_passes_quietly(bundle: Bundle) -> None:
    """On every sheet: no crash ("could not run"), and the verdict is not honey."""
    for sheet in SHEETS:
        findings, verdict = bundle.check(sheet)
        assert not any("check could not run" in f.message for f in findings), (sheet, messages(findings))
        assert verdict.severity != "honey", (sheet, messages(findings))


def test_a_ragged_row_is_a_flag_with_its_line_on_every_sheet(tmp_path: Path) -> None:
    data = csv_bytes(HEADER, clean_rows(10)).replace(b"\n5,", b"\n5,extra,", 1)
    bundle = Bundle(tmp_path)
    bundle.add_bytes("train.csv", data, rows=10)
    findings, _ = bundle.check(SCHEMA)
    [files] = of(findings, "dataset.files")
    assert files.status == "flag"
    assert "1 record of 10 could not be read — 1 ragged (too many fields) — at line 7" in files.message
    assert any("1 record do not read (1 ragged (too many fields); line 7)" in f.message for f in findings)
    missing, _ = bundle.check(MISSING)
    assert {f.status for f in of(missing, "dataset.missing_value_audit")} == {"open"}  # computed, not over all the data
    _never_passes_quietly(bundle)


def test_latin_1_bytes_in_a_utf_8_file_are_flagged_and_never_shown(tmp_path: Path) -> None:
    rows = clean_rows(10)
    data = csv_bytes(HEADER, rows).replace(b"river", "café".encode("latin-1"), 1)  # a lone 0xE9 byte
    data = data.replace(b"stone", "naïve".encode(), 1)  # and a valid UTF-8 multi-byte character
    bundle = Bundle(tmp_path)
    bundle.add_bytes("train.csv", data, rows=10)
    findings, _ = bundle.check(SCHEMA)
    [files] = of(findings, "dataset.files")
    assert "1 not UTF-8" in files.message
    assert "caf" not in messages(findings)
    # Every query drops the same record, whichever columns it reads: the counts agree.
    missing, _ = bundle.check(MISSING)
    assert all("of 9" in f.message for f in of(missing, "dataset.missing_value_audit"))
    _never_passes_quietly(bundle)


@pytest.mark.parametrize("bom", [codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE])
def test_a_utf_16_or_32_file_is_refused_by_name(tmp_path: Path, bom: bytes) -> None:
    text = csv_bytes(HEADER, clean_rows(3)).decode()
    encoding = {codecs.BOM_UTF16_LE: "utf-16-le", codecs.BOM_UTF16_BE: "utf-16-be", codecs.BOM_UTF32_LE: "utf-32-le"}
    bundle = Bundle(tmp_path)
    bundle.add_bytes("train.csv", bom + text.encode(encoding[bom]), rows=3)
    findings, verdict = bundle.check(SCHEMA)
    [files] = of(findings, "dataset.files")
    assert files.tier == "high"
    assert "byte-order mark" in files.message
    assert verdict.severity == "propolis"
    _never_passes_quietly(bundle)


def test_a_utf_8_byte_order_mark_is_fine(tmp_path: Path) -> None:
    bundle = Bundle(tmp_path)
    bundle.add_bytes("train.csv", codecs.BOM_UTF8 + csv_bytes(HEADER, clean_rows(4)), rows=4)
    findings, _ = bundle.check(SCHEMA)
    assert not unsatisfied(findings), messages(findings)


def test_a_parquet_file_whose_schema_lies_is_flagged(tmp_path: Path) -> None:
    bundle = Bundle(tmp_path)
    # age is stored as text, and one value is not a number at all
    bundle.add_parquet(
        "train.parquet",
        "SELECT i::BIGINT AS id, 'u' || i AS user, 'text number ' || i AS text,"
        " CASE WHEN i % 2 = 0 THEN 'neg' ELSE 'pos' END AS label,"
        " CASE WHEN i = 3 THEN 'unknown' ELSE (20 + i)::VARCHAR END AS age FROM range(10) t(i)",
        rows=10,
    )
    findings, verdict = bundle.check(SCHEMA)
    text = messages(findings)
    assert "the file's schema contradicts the declared one: age declared integer, stored as VARCHAR" in text
    assert "1 value not integer (train.parquet row 4)" in text
    assert verdict.severity == "propolis"


def test_a_parquet_file_that_keeps_its_word_passes(tmp_path: Path) -> None:
    bundle = Bundle(tmp_path)
    bundle.add_parquet(
        "train.parquet",
        "SELECT i::BIGINT AS id, 'u' || i AS user, 'text number ' || i AS text,"
        " CASE WHEN i % 2 = 0 THEN 'neg' ELSE 'pos' END AS label, (20 + i)::INTEGER AS age FROM range(10) t(i)",
        rows=10,
    )
    findings, _ = bundle.check(SCHEMA)
    assert not unsatisfied(findings), messages(findings)


def test_a_file_named_parquet_that_is_not_is_unreadable(tmp_path: Path) -> None:
    bundle = Bundle(tmp_path)
    bundle.add_bytes("train.parquet", b"PAR1 this is not a parquet file", rows=1)
    findings, verdict = bundle.check(SCHEMA)
    assert any("not a Parquet file" in f.message and f.tier == "high" for f in findings), messages(findings)
    assert verdict.severity == "propolis"


def test_json_lines_that_are_not_objects_are_counted_with_their_lines(tmp_path: Path) -> None:
    rows = clean_rows(4)
    import json

    lines = [json.dumps(rows[0]), "not json", json.dumps(rows[1]), "[1, 2]", json.dumps(rows[2]), json.dumps(rows[3])]
    bundle = Bundle(tmp_path)
    bundle.add_bytes("train.jsonl", ("\n".join(lines) + "\n").encode(), rows=6)
    findings, _ = bundle.check(SCHEMA)
    [files] = of(findings, "dataset.files")
    assert "2 records of 6 could not be read — 2 not a JSON object — at lines 2, 4" in files.message


def test_a_manifest_digest_that_differs_from_the_evidence_is_refused(tmp_path: Path) -> None:
    bundle = Bundle(tmp_path)
    bundle.add_csv("train.csv", clean_rows(5))
    bundle.entries[0]["sha256"] = "0" * 64
    findings, verdict = bundle.check(SCHEMA)
    [files] = of(findings, "dataset.files")
    assert "manifest sha256 sha256:000" in files.message and "differs from the evidence's" in files.message
    assert any(f.message.startswith("no manifest file can be read") for f in findings)
    assert verdict.severity == "propolis"


def test_a_file_that_is_not_attached_is_flagged(tmp_path: Path) -> None:
    bundle = Bundle(tmp_path)
    bundle.add_csv("train.csv", clean_rows(5))
    bundle.entries.append({**bundle.entries[0], "path": "extra.csv", "sha256": "ab" * 32})
    findings, _ = bundle.check(SCHEMA)
    files = of(findings, "dataset.files")
    assert [f.status for f in files] == ["pass", "flag"]
    assert files[1].message.startswith("extra.csv: no attached evidence is named 'extra.csv'")
    assert any(f.status == "open" for f in of(findings, "dataset.schema_validation"))


def test_two_manifest_files_cannot_be_one_evidence_item(tmp_path: Path) -> None:
    bundle = Bundle(tmp_path)
    bundle.add_csv("train.csv", clean_rows(5))
    bundle.entries.append({**bundle.entries[0], "path": "copy.csv", "split": "test"})  # found by its digest
    findings, _ = bundle.check(SPLITS)
    [_, copy] = of(findings, "dataset.files")
    assert copy.message == "copy.csv: names evidence ev_0, which file 'train.csv' already is"


def test_evidence_whose_bytes_were_not_fetched_is_never_passed(tmp_path: Path) -> None:
    bundle = Bundle(tmp_path)
    bundle.add_csv("train.csv", clean_rows(5))
    refs, _ = bundle.evidence()
    import msgspec

    from defendable_referee.check import check_submission

    from .kit import library

    findings, verdict = check_submission(library().get(SCHEMA), msgspec.json.encode(bundle.manifest()), refs, files={})
    assert any("were not fetched" in f.message for f in findings)
    assert verdict.severity == "propolis"


def test_a_manifest_that_does_not_decode_is_one_high_flag_per_rule(tmp_path: Path) -> None:
    bundle = Bundle(tmp_path)
    bundle.add_csv("train.csv", clean_rows(5))
    manifest = bundle.manifest()
    manifest["schema"]["columns"][0]["type"] = "uuid"
    findings, verdict = bundle.check(SCHEMA, manifest)
    assert [f.status for f in of(findings, "schema.manifest")] == ["flag"]
    [dataset] = of(findings, "dataset.schema_validation")
    assert dataset.tier == "high" and dataset.message.startswith("manifest does not decode")
    assert verdict.recommended_action == "reject"


def test_names_and_values_cannot_inject_sql(tmp_path: Path) -> None:
    name = "te\"xt'); DROP TABLE x; --"
    rows = [{"id": r["id"], name: 'it\'s "quoted"', "label": r["label"]} for r in clean_rows(6)]
    bundle = Bundle(tmp_path)
    bundle.columns = [
        {"name": "id", "type": "integer", "unique": True, "role": "id"},
        {"name": name, "type": "string", "role": "text", "allowed": ['it\'s "quoted"', "'; --"]},
        {"name": "label", "type": "string", "role": "label"},
    ]
    bundle.add_csv("train.csv", rows)
    bundle.extra["missing_values"] = ["'); --"]
    for sheet in (SCHEMA, MISSING, SAFETY, DUPLICATES):
        findings, _ = bundle.check(sheet)
        assert not any("could not" in f.message for f in findings), messages(findings)
    findings, _ = bundle.check(SCHEMA)
    assert not unsatisfied(findings), messages(findings)


def test_splits_declared_twice_are_refused(tmp_path: Path) -> None:
    bundle = Bundle(tmp_path)
    bundle.columns.append({"name": "part", "type": "string", "role": "split"})
    bundle.add_csv("train.csv", [{**r, "part": "train"} for r in clean_rows(4)])
    findings, _ = bundle.check(SPLITS)
    assert any("splits are declared both per file and by column 'part'" in f.message for f in findings)


def test_an_empty_file_and_a_header_only_file(tmp_path: Path) -> None:
    bundle = Bundle(tmp_path)
    bundle.add_bytes("empty.csv", b"", rows=0)
    bundle.add_bytes("header.csv", csv_bytes(HEADER, []), rows=0, split="test")
    findings, _ = bundle.check(SCHEMA)
    files = of(findings, "dataset.files")
    assert files[0].status == "flag" and "empty" in files[0].message
    assert files[1].status == "pass"

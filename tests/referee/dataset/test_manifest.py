"""The manifest format and the sheets' params: what decodes, what is refused, what the sheets publish."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from defendable_referee.dataset.manifest import ManifestInvalid, manifest_schema, read_manifest
from defendable_referee.dataset.params import PARAMS
from defendable_referee.errors import FlightSheetInvalid
from defendable_referee.sheet import load_sheet

from .kit import SHEETS, library


def manifest(**extra: Any) -> dict[str, Any]:
    return {
        "dataset": {"name": "d", "version": "1", "license": "MIT"},
        "files": [{"path": "a.csv", "media_type": "text/csv", "sha256": "a" * 64, "rows": 3}],
        "schema": {"columns": [{"name": "x", "type": "integer"}, {"name": "y", "type": "string", "role": "label"}]},
        **extra,
    }


@pytest.mark.parametrize("sheet", SHEETS)
def test_every_dataset_sheet_publishes_the_manifest_schema(sheet: str) -> None:
    loaded = library().get(sheet)
    schema = loaded.sheet.required_output_schema
    assert schema == manifest_schema(schema["$id"])
    assert loaded.sheet.lane == "dataset"
    kinds = [rule.kind for rule in loaded.sheet.rules]
    assert kinds[:3] == ["structure", "schema", "dataset_files"] and kinds[3] in PARAMS


def test_a_manifest_decodes_with_its_claims_as_decimals() -> None:
    m = read_manifest(manifest(statistics={"missing_rates": {"x": Decimal("0.25")}}))
    assert m.statistics.missing_rates == {"x": Decimal("0.25")}
    assert m.statistics.claimed() == ["missing_rates"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"files": []}, "manifest does not decode"),
        (
            {"schema": {"columns": [{"name": "x", "type": "integer"}, {"name": "x", "type": "string"}]}},
            "declared twice",
        ),
        ({"class_balance": {"tolerance": Decimal("1.5")}}, "a rate or share lies in [0, 1]"),
        ({"missing_values": [True]}, "only strings and numbers may be listed"),
        (
            {
                "schema": {
                    "columns": [
                        {"name": "a", "type": "string", "role": "label"},
                        {"name": "b", "type": "string", "role": "label"},
                    ]
                }
            },
            "role 'label' is given to 2 columns",
        ),
        ({"schema": {"columns": [{"name": "a", "type": "string", "min": 1}]}}, "has min/max but type string"),
    ],
)
def test_inconsistent_manifests_are_refused_with_the_reason(change: dict[str, Any], problem: str) -> None:
    with pytest.raises(ManifestInvalid, match=problem.replace("[", r"\[").replace("]", r"\]")):
        read_manifest(manifest(**change))


def test_unknown_media_types_are_refused() -> None:
    m = manifest()
    m["files"][0]["media_type"] = "application/zip"
    with pytest.raises(ManifestInvalid, match="known: application/csv"):
        read_manifest(m)


@pytest.mark.parametrize(
    ("kind", "params", "problem"),
    [
        ("dataset_duplicate_detection", {"num_perm": 4096}, "<= 256"),
        ("dataset_duplicate_detection", {"jaccard_threshold": 0.2}, ">= 0.5"),
        ("dataset_duplicate_detection", {"max_rows_scanned": 10**9}, "<= 20000000"),
        ("dataset_content_safety_scan", {"detectors": ["email", "email"]}, "twice"),
        ("dataset_content_safety_scan", {"detectors": ["email"], "max_matches": {"phone": 1}}, "does not run"),
        ("dataset_class_balance", {"tolerance": 2}, "<= 1.0"),
        ("dataset_schema_validation", {"rows_reported": 0}, ">= 1"),
        ("dataset_files", {"surprise": 1}, "unknown field"),
    ],
)
def test_sheet_params_are_bounded_at_load(kind: str, params: dict[str, Any], problem: str) -> None:
    sheet = json.loads(json.dumps(library().get(SHEETS[0]).raw.decode()))
    data = json.loads(sheet)
    data["rules"].append({"id": "extra", "kind": kind, "tier": "low", "params": params})
    with pytest.raises(FlightSheetInvalid, match=problem):
        load_sheet(json.dumps(data).encode(), source="test.json")

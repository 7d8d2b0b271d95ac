"""The seven Compute sheets: published, and in step with the code's catalogs.

A sheet's schema enumerates the GPU models the referee can identify and the metrics it
can re-derive; a name there that the code does not know would be a claim nobody can
check, so the enums must equal the catalogs exactly.
"""

from __future__ import annotations

from typing import Any

import pytest

from defendable_referee.compute.evidence import ROLES
from defendable_referee.compute.gpu_specs import MODELS
from defendable_referee.compute.metric_names import METRICS
from defendable_referee.compute.params import PARAMS
from defendable_referee.sheet import load_library, params_for

from .kit import sheet

SHEETS = {
    "compute_gpu_spec_verification_v1": "gpu_spec",
    "compute_benchmark_score_validation_v1": "benchmark_score",
    "compute_inference_latency_v1": "inference_latency",
    "compute_thermal_power_check_v1": "thermal_power",
    "compute_memory_bandwidth_v1": "memory_bandwidth",
    "compute_efficiency_metrics_v1": "efficiency",
    "compute_system_readiness_v1": "system_readiness",
    "compute_cpu_benchmark_v1": "benchmark_score",  # `defendable probe` on a machine without a GPU
}


def test_the_compute_sheets_are_in_the_published_library() -> None:
    library = load_library()
    for sheet_id in SHEETS:
        loaded = library.get(sheet_id, "1.0.0")
        assert loaded.lane == "compute"


@pytest.mark.parametrize(("sheet_id", "kind"), sorted(SHEETS.items()))
def test_each_sheet_runs_the_shared_kinds_then_its_own(sheet_id: str, kind: str) -> None:
    rules = sheet(sheet_id).sheet.rules
    assert [r.kind for r in rules] == ["structure", "schema", "run_window", "measured_claims", kind]
    assert all(r.tier == "high" for r in rules)
    assert set(r.kind for r in rules[2:]) <= set(PARAMS)


@pytest.mark.parametrize("sheet_id", sorted(SHEETS))
def test_each_schema_enumerates_exactly_what_the_code_can_check(sheet_id: str) -> None:
    loaded = sheet(sheet_id).sheet
    properties: dict[str, Any] = loaded.required_output_schema["properties"]
    hardware = properties["declared_hardware"]["properties"]
    if sheet_id == "compute_cpu_benchmark_v1":
        assert hardware["gpu_count"] == {"const": 0}, hardware
    else:
        assert hardware["gpu_model"]["enum"] == list(MODELS)
    claimed = properties["claims"]["items"]["properties"]["metric"]["enum"]
    [claims_rule] = [r for r in loaded.rules if r.kind == "measured_claims"]
    params = params_for(claims_rule)
    assert claimed == params.metrics  # type: ignore[attr-defined]  # MeasuredClaimsParams
    assert set(claimed) <= set(METRICS)
    roles = properties["evidence_files"]["properties"]
    assert set(roles) <= set(ROLES)
    assert set(properties["evidence_files"]["required"]) <= set(roles)
    assert properties["notes"]["pattern"] == "^[^0-9]*$"  # no figure may hide in prose

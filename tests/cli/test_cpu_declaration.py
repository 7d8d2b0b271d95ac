"""The Compute format's CPU-only declaration (compute/submission.py), added for the probe's CPU runs.

A run on no GPU declares `gpu_count` 0 and its CPU; a GPU declaration that leaves out a GPU
field is as malformed as before, and a CPU declaration does not pass a GPU sheet.
(Referee-side promises: they belong beside tests/referee/compute.)
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from defendable_referee.check import check_submission
from defendable_referee.compute.submission import DeclaredHardware, basis
from defendable_referee.sheet import load_library

CPU: dict[str, Any] = {"gpu_count": 0, "cpu_model": "AMD EPYC 7R13", "logical_cpus": 2, "memory_gb": 25}
GPU: dict[str, Any] = {
    "gpu_model": "H100-SXM5-80GB",
    "gpu_count": 8,
    "memory_gb_per_gpu": 80,
    "driver_floor": "535",
    "cuda_floor": "12.2",
}


def test_a_cpu_only_declaration_decodes() -> None:
    declared = msgspec.convert(CPU, DeclaredHardware)
    assert (declared.gpu_count, declared.logical_cpus, declared.memory_gb) == (0, 2, 25)
    assert declared.cpu_model == "AMD EPYC 7R13"
    assert declared.gpu_model == ""


def test_a_gpu_declaration_decodes_as_before() -> None:
    declared = msgspec.convert(GPU, DeclaredHardware)
    assert (declared.gpu_model, declared.gpu_count, declared.cpu_model) == ("H100-SXM5-80GB", 8, None)


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ({k: v for k, v in GPU.items() if k != "gpu_model"}, "a GPU run (gpu_count 8) declares gpu_model"),
        ({"gpu_count": 1}, "declares gpu_model, memory_gb_per_gpu, driver_floor, cuda_floor"),
        ({"gpu_count": 0, "cpu_model": "x"}, "a run on no GPU (gpu_count 0) declares logical_cpus, memory_gb"),
        ({**CPU, "gpu_count": 2}, "a GPU run (gpu_count 2) declares gpu_model"),
    ],
)
def test_an_incomplete_declaration_is_malformed_and_says_what_is_missing(
    declared: dict[str, Any], message: str
) -> None:
    grounds = basis({"declared_hardware": declared})
    assert grounds.hardware is None
    assert message in grounds.hardware_problem


def test_a_cpu_declaration_does_not_pass_a_gpu_sheet() -> None:
    document = {
        "assignment_id": "a",
        "run_window": {"start": "2024-01-20T05:20:00Z", "end": "2024-01-20T05:35:00Z", "host_utc_offset": "+00:00"},
        "declared_hardware": CPU,
        "evidence_files": {},
        "claims": [],
        "targets": {"min_samples_per_second": 1},
    }
    sheet = load_library().get("compute_benchmark_score_validation_v1@1.0.0")
    findings, verdict = check_submission(sheet, msgspec.json.encode(document), [])
    schema = [f for f in findings if f.kind == "schema" and f.status == "flag"]
    assert schema and schema[0].tier == "high"
    assert verdict.recommended_action == "reject"

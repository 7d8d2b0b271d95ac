"""The probe's GPU submission, built from a real nvidia-smi inventory, passes the GPU benchmark sheet.

There is no GPU here, so the GPU branch of `compute_submission` is tested on captured
evidence: a real A100 `nvidia-smi -q -x` (its timestamp moved into the run window), the
real MLPerf LoadGen pair from tests/referee/compute/fixtures, and a telemetry series of that
A100 built by the referee tests' kit over the benchmark's window. The declaration comes from
the inventory alone, every claim from the referee's own derivations.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from defendable_cli import compute_submission
from defendable_cli.collect import Evidence, Host
from defendable_referee.check import check_submission
from defendable_referee.compute.nvidia_smi import parse_smi_xml
from defendable_referee.sheet import load_library

from ..referee.compute.kit import A100, MLPERF_H100, XML, series

BENCHMARK = "compute_benchmark_score_validation_v1@1.0.0"
HOST = Host(cpu_model="AMD EPYC 7742 64-Core Processor", logical_cpus=256, memory_gb=1082, name="dgx-a100")
START, END = datetime(2024, 1, 20, 5, 20, tzinfo=UTC), datetime(2024, 1, 20, 5, 35, tzinfo=UTC)


def inventory(tmp_path: Path, *, device_id: str = "20B210DE") -> Evidence:
    xml = (XML / "a100-sxm4-80gb-driver-535.xml").read_text()
    xml = re.sub(r"<timestamp>[^<]*</timestamp>", "<timestamp>Sat Jan 20 05:20:30 2024</timestamp>", xml)
    xml = xml.replace("<pci_device_id>20B210DE</pci_device_id>", f"<pci_device_id>{device_id}</pci_device_id>")
    path = tmp_path / "nvidia-smi.xml"
    path.write_text(xml)
    return Evidence(path.name, path, "application/xml", "gpu_inventory")


def test_the_declaration_comes_from_the_inventory_by_pci_device_id(tmp_path: Path) -> None:
    log = parse_smi_xml(inventory(tmp_path).path.read_bytes())
    declared, why = compute_submission.declare_gpus(log)
    assert why == ""
    assert declared == {
        "gpu_model": "A100-SXM4-80GB",
        "gpu_count": 1,
        "memory_gb_per_gpu": 80,
        "driver_floor": "535.54.03",
        "cuda_floor": "12.2",
        "power_limit_w": 500.0,
    }


def test_a_gpu_the_referee_cannot_identify_is_not_declared(tmp_path: Path) -> None:
    log = parse_smi_xml(inventory(tmp_path, device_id="FFFF10DE").path.read_bytes())
    declared, why = compute_submission.declare_gpus(log)
    assert declared is None
    assert "PCI device 0xFFFF" in why and "not a GPU the referee identifies" in why


def test_a_gpu_run_submission_passes_the_benchmark_sheet_with_every_claim_re_derived(tmp_path: Path) -> None:
    smi = inventory(tmp_path)
    log = parse_smi_xml(smi.path.read_bytes())
    declared, _ = compute_submission.declare_gpus(log)
    assert declared is not None
    telemetry = tmp_path / "telemetry.csv"
    telemetry.write_bytes(series(datetime(2024, 1, 20, 5, 21, 0), 140, board=A100, every_s=5.0))
    system = tmp_path / "system.json"
    system.write_bytes(msgspec.json.encode(compute_submission.system_description(log, HOST, declared["gpu_model"])))
    evidence = [
        smi,
        Evidence("telemetry.csv", telemetry, "text/csv", "telemetry"),
        Evidence("mlperf_log_summary.txt", MLPERF_H100 / "mlperf_log_summary.txt", "text/plain", "benchmark_summary"),
        Evidence("mlperf_log_detail.txt", MLPERF_H100 / "mlperf_log_detail.txt", "text/plain", "benchmark_detail"),
        Evidence("system.json", system, "application/json", "system_description"),
        Evidence("cpuinfo.txt", system, "text/plain", None),  # for the record: no role, read by no rule
    ]
    sheet = load_library().get(BENCHMARK).sheet
    document = compute_submission.build(
        sheet,
        evidence,
        assignment_id="run_1",
        start=START,
        end=END,
        hardware=declared,
        min_samples_per_second=1500,
        notes="Collected by defendable probe on an NVIDIA GPU run.",
    )
    assert set(document["evidence_files"]) == {
        "gpu_inventory",
        "telemetry",
        "benchmark_summary",
        "benchmark_detail",
        "system_description",
    }
    claimed = {c["metric"]: c["value"] for c in document["claims"]}
    assert claimed["samples_per_second"] == 1728.33
    assert {"mean_power_w", "max_temperature_c", "samples_per_second_per_watt", "latency_p99_ms"} <= set(claimed)
    refs, files = compute_submission.references(evidence)
    findings, verdict = check_submission(sheet, msgspec.json.encode(document), refs, files=files)
    assert [f.message for f in findings if f.status != "pass"] == []
    assert verdict.recommended_action == "approve"


def test_a_sheet_that_needs_a_role_the_run_lacks_is_refused_before_submitting() -> None:
    sheet = load_library().get(BENCHMARK).sheet
    path = MLPERF_H100 / "mlperf_log_summary.txt"
    summary = Evidence(path.name, path, "text/plain", "benchmark_summary")
    with pytest.raises(ValueError, match="needs benchmark_detail, telemetry"):
        compute_submission.build(
            sheet,
            [summary],
            assignment_id="run_1",
            start=START,
            end=END,
            hardware={},
            min_samples_per_second=None,
            notes="",
        )


def test_the_cpu_sheet_admits_only_a_declaration_of_no_gpu() -> None:
    shape = compute_submission.Shape.of(load_library().get("compute_cpu_benchmark_v1@1.0.0").sheet)
    assert shape.cpu_only
    assert shape.required_roles == {"benchmark_summary", "benchmark_detail"}
    assert shape.hardware_fields == set(compute_submission.declare_cpu(HOST))
    assert not compute_submission.Shape.of(load_library().get(BENCHMARK).sheet).cpu_only

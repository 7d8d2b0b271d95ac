"""compute_gpu_spec_verification_v1: the declared GPU is what the hardware reports, by PCI id and memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .kit import XML, Bundle, claim, flagged, of_kind, run, submission, unsatisfied

SHEET = "compute_gpu_spec_verification_v1"
T4_WINDOW: dict[str, Any] = {"start": "2023-04-24T16:00:00Z", "end": "2023-04-24T17:00:00Z"}


def t4(tmp_path: Path, xml: bytes | None = None, **declared: Any) -> tuple[dict[str, Any], Bundle]:
    bundle = Bundle(tmp_path)
    name = bundle.add(
        "gpu_inventory", "nvidia-smi.xml", xml or (XML / "tesla-t4-driver-515.xml").read_bytes(), "application/xml"
    )
    hardware: dict[str, Any] = {
        "model": "T4-16GB",
        "count": 1,
        "memory_gb": 16,
        "driver": "510",
        "cuda": "11.4",
    } | declared
    claims = [claim("gpu_count", 1, "GPUs", name), claim("gpu_memory_total_mib", 15360, "MiB", name)]
    return submission(bundle, **T4_WINDOW, claims=claims, **hardware), bundle


def test_a_t4_declared_as_a_t4_passes_on_a_pre_535_driver(tmp_path: Path) -> None:
    document, bundle = t4(tmp_path)
    findings, verdict = run(SHEET, document, bundle)
    assert unsatisfied(findings) == [], [f.message for f in unsatisfied(findings)]
    assert verdict.recommended_action == "approve"
    assert len(of_kind(findings, "gpu_spec")) == 6
    assert len(of_kind(findings, "measured_claims")) == 2


def test_a_driver_595_board_is_identified_from_its_newer_xml(tmp_path: Path) -> None:
    bundle = Bundle(tmp_path)
    bundle.fixture("gpu_inventory", XML / "rtx-4000-sff-ada-driver-595.xml", "application/xml")
    document = submission(
        bundle,
        start="2026-08-06T01:00:00Z",
        end="2026-08-06T01:10:00Z",
        model="RTX-4000-SFF-ADA-20GB",
        count=1,
        memory_gb=20,
        driver="590",
        cuda="13.0",
    )
    findings, _ = run(SHEET, document, bundle)
    assert unsatisfied(findings) == [], [f.message for f in unsatisfied(findings)]


def test_a_t4_declared_as_an_h100_is_flagged_by_device_id_and_memory(tmp_path: Path) -> None:
    document, bundle = t4(tmp_path, model="H100-SXM5-80GB", memory_gb=80)
    findings, verdict = run(SHEET, document, bundle)
    assert flagged(findings, "is T4-16GB by device 0x1EB8", tier="high")
    assert flagged(findings, "memory does not match a H100-SXM5-80GB")
    assert verdict.severity == "propolis" and not verdict.client_ready


def test_a_product_name_edited_to_h100_does_not_make_it_one(tmp_path: Path) -> None:
    xml = (XML / "tesla-t4-driver-515.xml").read_bytes().replace(b"Tesla T4", b"NVIDIA H100 80GB HBM3")
    document, bundle = t4(tmp_path, xml, model="H100-SXM5-80GB", memory_gb=80)
    findings, _ = run(SHEET, document, bundle)
    identity = flagged(findings, "not the declared H100-SXM5-80GB")
    assert "(NVIDIA H100 80GB HBM3) is T4-16GB by device 0x1EB8" in identity.message


def test_nvidia_smi_output_from_non_nvidia_hardware_is_flagged(tmp_path: Path) -> None:
    xml = (XML / "tesla-t4-driver-515.xml").read_bytes().replace(b"<pci_device_id>1EB810DE", b"<pci_device_id>1EB81002")
    document, bundle = t4(tmp_path, xml)
    findings, _ = run(SHEET, document, bundle)
    assert flagged(findings, "not NVIDIA hardware (PCI vendor 0x10DE)", tier="high")


def test_a_partial_inventory_that_lists_fewer_gpus_than_it_attached_is_flagged(tmp_path: Path) -> None:
    # The real A100 capture says attached_gpus 4 but lists one <gpu>.
    bundle = Bundle(tmp_path)
    bundle.fixture("gpu_inventory", XML / "a100-sxm4-80gb-driver-535.xml", "application/xml")
    document = submission(
        bundle,
        start="2023-08-04T11:40:00Z",
        end="2023-08-04T11:50:00Z",
        model="A100-SXM4-80GB",
        count=4,
        memory_gb=80,
        driver="535",
        cuda="12.2",
    )
    findings, _ = run(SHEET, document, bundle)
    count = flagged(findings, "lists 1 GPUs; declared 4")
    assert "attached_gpus 4 but lists 1" in count.message


def test_driver_and_cuda_below_the_declared_floor_are_flagged(tmp_path: Path) -> None:
    document, bundle = t4(tmp_path, driver="535.104.05", cuda="12.2")
    findings, _ = run(SHEET, document, bundle)
    assert flagged(findings, "driver 515.105.01 is below the floor 535.104.05")
    assert flagged(findings, "CUDA 11.7 is below the floor 12.2")


def test_a_claimed_gpu_count_the_inventory_does_not_show_is_flagged(tmp_path: Path) -> None:
    document, bundle = t4(tmp_path)
    document["claims"][0]["value"] = 8
    findings, _ = run(SHEET, document, bundle)
    mismatch = flagged(findings, "claims[0] gpu_count = 8 GPUs does not match the 1 GPUs")
    assert (mismatch.observed, mismatch.expected) == ("8", "1")

"""compute_memory_bandwidth_v1 on a real BabelStream A100 log; compute_system_readiness_v1 on host evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .kit import FIXTURES, XML, Bundle, claim, flagged, of_kind, run, submission, unsatisfied

BANDWIDTH = "compute_memory_bandwidth_v1"
READINESS = "compute_system_readiness_v1"
BABELSTREAM = FIXTURES / "stream/babelstream-5.0-cuda-a100-sxm4-80gb.txt"
A100_WINDOW: dict[str, Any] = {"start": "2023-08-04T11:40:00Z", "end": "2023-08-04T11:50:00Z"}


def bandwidth(tmp_path: Path, log: bytes | None = None, **declared: Any) -> tuple[dict[str, Any], Bundle]:
    bundle = Bundle(tmp_path)
    bundle.add("bandwidth_log", BABELSTREAM.name, log or BABELSTREAM.read_bytes())
    bundle.fixture("gpu_inventory", XML / "a100-sxm4-80gb-driver-535.xml", "application/xml")
    claims = [
        claim("triad_gb_s", 1724.83, "GB/s", BABELSTREAM.name),
        claim("triad_fraction_of_spec", 0.8459, "fraction", BABELSTREAM.name),
    ]
    hardware: dict[str, Any] = {
        "model": "A100-SXM4-80GB",
        "count": 1,
        "memory_gb": 80,
        "driver": "535",
        "cuda": "12.2",
    } | declared
    return submission(bundle, **A100_WINDOW, claims=claims, **hardware), bundle


def test_a_real_a100_triad_at_85_percent_of_its_datasheet_passes(tmp_path: Path) -> None:
    document, bundle = bandwidth(tmp_path)
    findings, verdict = run(BANDWIDTH, document, bundle)
    assert unsatisfied(findings) == [], [f.message for f in unsatisfied(findings)]
    assert verdict.recommended_action == "approve"
    [_, fraction] = of_kind(findings, "memory_bandwidth")
    assert fraction.message == "triad 1724.8 GB/s is 84.6% of the A100-SXM4-80GB's 2039 GB/s"


def test_an_a100_log_submitted_for_an_h100_is_flagged_twice(tmp_path: Path) -> None:
    document, bundle = bandwidth(tmp_path, model="H100-SXM5-80GB")
    findings, _ = run(BANDWIDTH, document, bundle)
    wrong = flagged(findings, "the bandwidth log is not from the declared H100-SXM5-80GB", tier="high")
    assert (
        "ran on 'NVIDIA A100-SXM4-80GB'" in wrong.message and "shows GPUs that are not H100-SXM5-80GB" in wrong.message
    )
    assert flagged(findings, "triad 1724.8 GB/s is 51.5% of the H100-SXM5-80GB's 3350 GB/s")


def test_a_rate_above_the_datasheet_peak_is_not_a_measurement(tmp_path: Path) -> None:
    log = BABELSTREAM.read_bytes().replace(b"Triad       1724827.354", b"Triad       2724827.354")
    document, bundle = bandwidth(tmp_path, log)
    findings, _ = run(BANDWIDTH, document, bundle)
    assert flagged(findings, "above the datasheet peak: not a measurement of this GPU", tier="high")


def test_a_bandwidth_claim_without_a_bandwidth_log_is_not_measured(tmp_path: Path) -> None:
    document, bundle = bandwidth(tmp_path)
    document["claims"] = [claim("triad_gb_s", 1724.83, "GB/s", "nvidia-smi.xml")]
    findings, _ = run(BANDWIDTH, document, bundle)
    assert flagged(findings, "cites 'nvidia-smi.xml', which is no attached evidence", tier="high")
    document["claims"] = [claim("triad_gb_s", 1724.83, "GB/s", "a100-sxm4-80gb-driver-535.xml")]
    findings, _ = run(BANDWIDTH, document, bundle)
    assert flagged(findings, "triad_gb_s is derived from bandwidth_log; the claim cites gpu_inventory", tier="high")


# -- readiness ------------------------------------------------------------------

DF = (
    b"Filesystem     1024-blocks      Used Available Capacity Mounted on\n"
    b"/dev/nvme0n1p1 1952526336 1024 976263168 1% /models\n"
)
SERVER_LOG = b"INFO 04-24 16:20:02 [gpu_model_runner.py:1595] Model loading took 6.0160 GiB and 38.402145 seconds\n"


def readiness(
    tmp_path: Path, xml: bytes | None = None, uptime: bytes = b"90000.00 170000.00\n"
) -> tuple[dict[str, Any], Bundle]:
    # The real T4 capture with persistence mode switched on, as `nvidia-smi -pm 1` would leave it.
    t4 = (
        (XML / "tesla-t4-driver-515.xml")
        .read_bytes()
        .replace(b"<persistence_mode>Disabled", b"<persistence_mode>Enabled")
    )
    bundle = Bundle(tmp_path)
    bundle.add("gpu_inventory", "nvidia-smi.xml", xml or t4, "application/xml")
    bundle.add("uptime", "uptime.txt", uptime)
    bundle.add("disk_usage", "df.txt", DF)
    bundle.add("server_log", "vllm-server.log", SERVER_LOG)
    bundle.fixture("diagnostics", FIXTURES / "dcgm/dcgmi-diag-r1-dcgm-3.1.0.json", "application/json")
    claims = [claim("free_disk_gb", 999.69, "GB", "df.txt"), claim("model_load_s", 38.4, "s", "vllm-server.log")]
    document = submission(
        bundle,
        start="2023-04-24T16:00:00Z",
        end="2023-04-24T17:00:00Z",
        model="T4-16GB",
        count=1,
        memory_gb=16,
        claims=claims,
    )
    return document, bundle


def test_a_ready_host_passes(tmp_path: Path) -> None:
    document, bundle = readiness(tmp_path)
    findings, verdict = run(READINESS, document, bundle)
    assert unsatisfied(findings) == [], [f.message for f in unsatisfied(findings)]
    assert verdict.recommended_action == "approve"
    messages = [f.message for f in of_kind(findings, "system_readiness")]
    assert any("not that the GPU is proven healthy" in m for m in messages)
    assert "999.7 GB free on /models; 50 GB required" in messages


def test_persistence_mode_off_is_flagged(tmp_path: Path) -> None:
    document, bundle = readiness(tmp_path, xml=(XML / "tesla-t4-driver-515.xml").read_bytes())
    findings, _ = run(READINESS, document, bundle)
    assert flagged(findings, "persistence mode is not enabled")


def test_a_host_that_booted_during_the_run_is_flagged(tmp_path: Path) -> None:
    document, bundle = readiness(tmp_path, uptime=b"1200.50 2000.10\n")
    findings, _ = run(READINESS, document, bundle)
    assert flagged(findings, "host up 1200 s is shorter than the 3600 s run: it booted during the run")


def test_uncorrectable_ecc_errors_and_retired_pages_are_flagged(tmp_path: Path) -> None:
    xml = (
        (XML / "tesla-t4-driver-515.xml")
        .read_bytes()
        .replace(b"<persistence_mode>Disabled", b"<persistence_mode>Enabled")
    )
    xml = xml.replace(b"<dram_uncorrectable>0</dram_uncorrectable>", b"<dram_uncorrectable>2</dram_uncorrectable>", 1)
    xml = xml.replace(b"<retired_count>0</retired_count>", b"<retired_count>3</retired_count>", 1)
    document, bundle = readiness(tmp_path, xml=xml)
    findings, _ = run(READINESS, document, bundle)
    assert flagged(findings, "2 uncorrectable DRAM ECC errors")
    assert flagged(findings, "GPU memory is degraded: 00000000:00:1E.0 (Tesla T4) 3 retired pages")


def test_a_failing_dcgm_diagnostic_is_a_high_flag(tmp_path: Path) -> None:
    document, bundle = readiness(tmp_path)
    path = bundle.files["ev_5"]
    path.write_bytes(path.read_bytes().replace(b'"PASS"', b'"FAIL"', 1))
    findings, _ = run(READINESS, document, bundle)
    assert flagged(
        findings, "DCGM diagnostic dcgmi-diag-r1-dcgm-3.1.0.json failed: Denylist on GPU 0,1,2,3,4,5,6,7", tier="high"
    )

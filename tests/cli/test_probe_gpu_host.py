"""The probe on a host that looks like it has an A100: the GPU branch, without the GPU.

A stand-in `nvidia-smi` (a shell script first on PATH) answers `-q -x` with a real A100
capture and `--query-gpu … -lms` with a sample line every 0.2 s, and a stand-in PCI tree
holds one NVIDIA display controller. That exercises detection, the inventory, the
background telemetry (started, stopped, read by the referee's parser) and the fallback: with
no torch to run the workload on the GPU, the probe says why and makes a CPU compute run.
"""

from __future__ import annotations

import os
import stat
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from defendable_cli import collect, probe
from defendable_cli.collect import GpuPresence
from defendable_cli.main import parser
from defendable_cli.progress import Progress
from defendable_referee.compute.smi_csv import parse_smi_csv

from ..referee.compute.kit import HEADER, XML

ROW = (
    "$(date -u '+%Y/%m/%d %H:%M:%S.000'), 0, GPU-00000000-0000-4000-8000-00000000abcd, NVIDIA A100-SXM4-80GB,"
    " 00000000:07:00.0, 0x20B210DE, 1410 MHz, 1410 MHz, 250.00 W, 500.00 W, 500.00 W, 41, 97 %, 0x0000000000000000"
)


@pytest.fixture
def a100_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH and the PCI tree of a host with one A100; the stand-in nvidia-smi's directory."""
    tools = tmp_path / "bin"
    tools.mkdir()
    smi = tools / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        f'  *"-q -x"*) cat "{XML / "a100-sxm4-80gb-driver-535.xml"}" ;;\n'
        f'  *-lms*) echo "{HEADER}"; while :; do echo "{ROW}"; sleep 0.2; done ;;\n'
        f'  *--query-gpu*) echo "{HEADER}"; echo "{ROW}" ;;\n'
        "  *) exit 2 ;;\n"
        "esac\n"
    )
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    device = tmp_path / "pci" / "0000:07:00.0"
    device.mkdir(parents=True)
    (device / "vendor").write_text("0x10de\n")
    (device / "class").write_text("0x030200\n")
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(collect, "PCI_DEVICES", tmp_path / "pci")
    return tools


def test_an_nvidia_display_controller_and_nvidia_smi_together_are_a_gpu(a100_host: Path, tmp_path: Path) -> None:
    presence = collect.gpu_presence(tmp_path)
    assert presence.pci_functions == ["0000:07:00.0"] and presence.hardware
    audio = tmp_path / "pci" / "0000:07:00.1"  # an NVIDIA HDMI audio function is not a GPU
    audio.mkdir()
    (audio / "vendor").write_text("0x10de\n")
    (audio / "class").write_text("0x040300\n")
    assert collect.nvidia_pci_functions() == ["0000:07:00.0"]


def test_with_a_usable_gpu_the_run_declares_it_from_the_inventory(a100_host: Path, tmp_path: Path) -> None:
    host = collect.host_facts()
    run = probe.Run(out=tmp_path, progress=Progress(), host=host, start=datetime.now(UTC))
    probe._find_gpus(run, GpuPresence(["0000:07:00.0"], str(a100_host / "nvidia-smi"), torch_cuda=""))
    assert run.on_gpu
    assert run.hardware["gpu_model"] == "A100-SXM4-80GB" and run.hardware["gpu_count"] == 1
    assert [(e.name, e.role) for e in run.evidence] == [("nvidia-smi.xml", "gpu_inventory")]


def test_telemetry_samples_in_the_background_until_stopped_and_reads_as_telemetry(
    a100_host: Path, tmp_path: Path
) -> None:
    sampler = collect.start_telemetry(tmp_path, str(a100_host / "nvidia-smi"), timeout_s=60)
    time.sleep(1.5)
    evidence = collect.stop_telemetry(sampler)
    assert (evidence.role, evidence.media_type) == ("telemetry", "text/csv")
    series = parse_smi_csv(evidence.path.read_bytes())
    assert len(series.samples) >= 3
    assert {s.device_id for s in series.samples} == {0x20B2}


def test_without_torch_a_gpu_host_makes_a_cpu_run_and_says_why(
    a100_host: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collect, "_torch_cuda", lambda scratch: "torch is not installed")
    out = tmp_path / "evidence"
    args = parser().parse_args(["probe", "--no-submit", "--duration", "1", "--out", str(out)])
    assert probe.probe(args) == 0
    err = capsys.readouterr().err
    assert "1 NVIDIA GPUs found, but torch is not installed: this is a CPU compute run" in err
    document = msgspec.json.decode((out / "submission.json").read_bytes())
    assert document["declared_hardware"]["gpu_count"] == 0
    assert "gpu_inventory" not in document["evidence_files"]
    assert (out / "nvidia-smi.xml").is_file()  # kept for the record, with no role in a CPU run
    assert document["notes"] == (
        "Collected by defendable probe. CPU compute run: NVIDIA GPUs found, but torch is not installed."
    )

"""What the probe reads off the machine: the host, its NVIDIA GPUs, and their instruments.

Every file here is raw tool output, unedited, written where the referee's parser for its
role will read it (defendable_referee.compute.evidence); each tool runs bounded by time
and by the size that parser accepts (process.py).

A GPU is believed only when the PCI bus shows an NVIDIA display controller (vendor 0x10de,
class 0x03xxxx) *and* nvidia-smi is installed: nvidia-smi can be present without the
hardware, and an NVIDIA PCI function can be audio or a switch.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from defendable_cli import process
from defendable_referee.compute.dcgm import MAX_DIAG_BYTES, parse_diag
from defendable_referee.compute.errors import EvidenceRefused
from defendable_referee.compute.gpu_specs import NVIDIA_PCI_VENDOR
from defendable_referee.compute.host import MAX_BYTES as MAX_HOST_BYTES
from defendable_referee.compute.nvidia_smi import MAX_XML_BYTES
from defendable_referee.compute.smi_csv import MAX_CSV_BYTES

PCI_DEVICES = Path("/sys/bus/pci/devices")
DISPLAY_CLASS = 0x03  # PCI base class "display controller": VGA 0x0300, 3D 0x0302
TELEMETRY_FIELDS = (
    "timestamp,index,uuid,name,pci.bus_id,pci.device_id,clocks.sm,clocks.max.sm,power.draw,power.limit,"
    "enforced.power.limit,temperature.gpu,utilization.gpu,clocks_throttle_reasons.active"
)
# Drivers that dropped the old name for the throttle bitmask accept only the new one.
TELEMETRY_FIELDS_NEW = TELEMETRY_FIELDS.replace("clocks_throttle_reasons", "clocks_event_reasons")
TELEMETRY_PERIOD_MS = 1000
MAX_PROC_BYTES = 4 * 1024 * 1024  # /proc/cpuinfo of a large host is a few hundred KiB
UTC_ENV = {**os.environ, "TZ": "UTC"}  # nvidia-smi and LoadGen print host-local time: make it UTC


class CollectionFailed(Exception):
    """Evidence the run needs could not be taken; the message says what and why."""


@dataclass(frozen=True)
class Evidence:
    """One file to attach: `name` is also its reference in the submission's evidence_files."""

    name: str
    path: Path
    media_type: str
    role: str | None  # the referee's role for it; None: attached for the record, read by no rule


@dataclass(frozen=True)
class Host:
    cpu_model: str
    logical_cpus: int
    memory_gb: int  # MemTotal in GB (10^9 bytes), rounded
    name: str


@dataclass(frozen=True)
class GpuPresence:
    pci_functions: list[str]  # NVIDIA display controllers on the PCI bus
    nvidia_smi: str | None  # its path, if installed
    torch_cuda: str  # "" when torch sees a CUDA device, else why the GPU workload cannot run

    @property
    def hardware(self) -> bool:
        return bool(self.pci_functions) and self.nvidia_smi is not None


# -- host ---------------------------------------------------------------------


def host_facts() -> Host:
    cpu = _cpu_model()
    total_kib = _meminfo("MemTotal")
    if total_kib is None:
        pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        total_bytes = pages * page
    else:
        total_bytes = total_kib * 1024
    return Host(
        cpu_model=cpu,
        logical_cpus=os.cpu_count() or 1,
        memory_gb=max(1, round(total_bytes / 1e9)),
        name=platform.node(),
    )


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text("utf-8", "replace")
    except OSError:
        text = ""
    for key in ("model name", "Model Name", "Hardware", "Processor", "cpu model"):
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return " ".join(value.split())[:200]
    return (platform.processor() or platform.machine() or "unknown CPU")[:200]


def _meminfo(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def copy_file(source: Path, target: Path, media_type: str, role: str | None, limit: int) -> Evidence:
    """A kernel file (/proc/uptime, /proc/cpuinfo), byte for byte."""
    try:
        with source.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise CollectionFailed(f"cannot read {source}: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise CollectionFailed(f"{source} is larger than {limit} bytes")
    target.write_bytes(data)
    return Evidence(target.name, target, media_type, role)


def uptime(out: Path) -> Evidence:
    return copy_file(Path("/proc/uptime"), out / "uptime.txt", "text/plain", "uptime", 256)


def host_records(out: Path) -> list[Evidence]:
    """/proc/cpuinfo and /proc/meminfo, for the record: what the declared host facts were read from."""
    found = []
    for source, name in ((Path("/proc/cpuinfo"), "cpuinfo.txt"), (Path("/proc/meminfo"), "meminfo.txt")):
        try:
            found.append(copy_file(source, out / name, "text/plain", None, MAX_PROC_BYTES))
        except CollectionFailed:
            continue  # not Linux, or an unusual kernel: the facts were read another way
    return found


def disk_usage(out: Path, where: Path) -> Evidence:
    df = shutil.which("df")
    if df is None:
        raise CollectionFailed("df is not installed")
    target = out / "df.txt"
    posix = {**os.environ, "LC_ALL": "C"}  # the header the parser reads is the C locale's
    process.run([df, "-P", "-k", str(where)], target, limit_bytes=MAX_HOST_BYTES, timeout_s=30, env=posix)
    return Evidence(target.name, target, "text/plain", "disk_usage")


# -- GPUs ---------------------------------------------------------------------


def nvidia_pci_functions(root: Path | None = None) -> list[str]:
    found = []
    root = root or PCI_DEVICES
    for device in sorted(root.glob("*")):
        try:
            vendor = int((device / "vendor").read_text().strip(), 16)
            klass = int((device / "class").read_text().strip(), 16)
        except (OSError, ValueError):
            continue
        if vendor == NVIDIA_PCI_VENDOR and klass >> 16 == DISPLAY_CLASS:
            found.append(device.name)
    return found


def gpu_presence(scratch: Path) -> GpuPresence:
    functions = nvidia_pci_functions()
    smi = shutil.which("nvidia-smi")
    if not functions or smi is None:
        return GpuPresence(functions, smi, "no NVIDIA GPU")
    return GpuPresence(functions, smi, _torch_cuda(scratch))


def _torch_cuda(scratch: Path) -> str:
    """ "" if torch (in this interpreter) sees a CUDA device; else why not. A child, because
    importing torch takes seconds and CUDA initialisation can hang on a broken driver."""
    if find_spec("torch") is None:
        return "torch is not installed"
    code = "import json, torch; print(json.dumps([torch.cuda.is_available(), torch.cuda.device_count()]))"
    target = scratch / "torch-cuda.json"
    try:
        process.run([sys.executable, "-c", code], target, limit_bytes=4096, timeout_s=120)
        available, count = json.loads(target.read_text())
    except (process.ProcessFailed, ValueError) as exc:
        return f"torch could not be asked about CUDA: {exc}"
    finally:
        target.unlink(missing_ok=True)
    return "" if available and count else "torch sees no CUDA device"


def inventory(out: Path, smi: str) -> Evidence:
    target = out / "nvidia-smi.xml"
    try:
        process.run([smi, "-q", "-x"], target, limit_bytes=MAX_XML_BYTES, timeout_s=60, env=UTC_ENV)
    except process.ProcessFailed as exc:
        raise CollectionFailed(f"nvidia-smi -q -x: {exc}") from exc
    return Evidence(target.name, target, "application/xml", "gpu_inventory")


def start_telemetry(out: Path, smi: str, timeout_s: float) -> process.Child:
    """The `--query-gpu` series, sampled every second in the background until stopped."""
    probe = out / "telemetry-fields.csv"
    fields = TELEMETRY_FIELDS
    try:
        process.run([smi, f"--query-gpu={fields}", "--format=csv"], probe, limit_bytes=1024 * 1024, timeout_s=30)
    except process.ProcessFailed:
        fields = TELEMETRY_FIELDS_NEW
    finally:
        probe.unlink(missing_ok=True)
    argv = [smi, f"--query-gpu={fields}", "--format=csv", "-lms", str(TELEMETRY_PERIOD_MS)]
    return process.Child(argv, out / "telemetry.csv", limit_bytes=MAX_CSV_BYTES, timeout_s=timeout_s, env=UTC_ENV)


def stop_telemetry(sampler: process.Child) -> Evidence:
    try:
        finished = sampler.stop()
    except process.ProcessFailed as exc:
        raise CollectionFailed(f"telemetry: {exc}") from exc
    if not finished.stopped and finished.returncode != 0:
        raise CollectionFailed(f"nvidia-smi --query-gpu exited with {finished.returncode}: {finished.stderr[:300]}")
    return Evidence(finished.stdout.name, finished.stdout, "text/csv", "telemetry")


def dcgm_diagnostic(out: Path, level: int = 1) -> Evidence | None:
    """`dcgmi diag -r LEVEL -j` where DCGM is installed; None where it is not."""
    dcgmi = shutil.which("dcgmi")
    if dcgmi is None:
        return None
    target = out / "dcgm-diag.json"
    try:
        process.run([dcgmi, "diag", "-r", str(level), "-j"], target, limit_bytes=MAX_DIAG_BYTES, timeout_s=600)
    except process.ProcessFailed as exc:
        # dcgmi exits non-zero when a test fails, and a failed test is a finding, not a collection
        # failure: keep the document when it reads as a diagnostic.
        try:
            parse_diag(target.read_bytes())
        except (OSError, EvidenceRefused):
            raise CollectionFailed(f"dcgmi diag -r {level}: {exc}") from exc
    return Evidence(target.name, target, "application/json", "diagnostics")

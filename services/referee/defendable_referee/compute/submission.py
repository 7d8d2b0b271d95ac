"""The Compute submission, read: what the submitter declares, and what they claim.

A Compute submission (each sheet's `required_output_schema`) is JSON:

    {
      "assignment_id": "...",
      "run_window": {"start": "2024-01-20T05:21:00Z", "end": "2024-01-20T05:33:00Z",
                     "host_utc_offset": "+00:00"},
      "declared_hardware": {"gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "memory_gb_per_gpu": 80,
                            "driver_floor": "535", "cuda_floor": "12.2", "power_limit_w": 700},
      "evidence_files": {"gpu_inventory": "nvidia-smi.xml", "telemetry": "telemetry.csv", ...},
      "targets": {"min_samples_per_second": 1500},   (the benchmark sheet only)
      "claims": [{"metric": "samples_per_second", "value": 1728.33, "unit": "samples/s",
                  "evidence": ["mlperf_log_summary.txt"]}],
      "notes": "free text without digits"
    }

A run that used no GPU (compute_cpu_benchmark_v1) declares `"declared_hardware":
{"gpu_count": 0, "cpu_model": "AMD EPYC 7R13", "logical_cpus": 2, "memory_gb": 25}` instead of
the GPU fields, which a GPU run declares as before.

`declared_hardware` and `run_window` are declarations: the sheets check them against the
instrumentation. `evidence_files` gives each attached file its role (the parser it is
read with; evidence.py). Every figure the submitter reports is a claim that names the
evidence it comes from, and the referee re-derives it from that evidence (metrics.py);
there is nowhere else in the document for a number to live (`notes` may not hold digits).
The checks read the document defensively: the schema rule may already have failed.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar

import msgspec

AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]
_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")
T = TypeVar("T")


class RunWindow(msgspec.Struct, frozen=True, kw_only=True):
    start: AwareTime
    end: AwareTime
    host_utc_offset: str  # the zone the host's own clocks print in: nvidia-smi, vLLM

    @property
    def offset(self) -> timedelta:
        match = _OFFSET.match(self.host_utc_offset)
        if match is None:
            raise ValueError(f"host_utc_offset {self.host_utc_offset!r} is not ±HH:MM")
        sign = -1 if match.group(1) == "-" else 1
        return sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


class DeclaredHardware(msgspec.Struct, frozen=True, kw_only=True):
    """A GPU run declares every GPU field; a run on no GPU (`gpu_count` 0) declares the CPU fields.

    The GPU fields' defaults exist only so that a CPU-only declaration decodes; a GPU
    declaration that leaves one out is as malformed as it was when they were required."""

    gpu_count: int
    gpu_model: str = ""  # a key of gpu_specs.SPECS
    memory_gb_per_gpu: int = 0
    driver_floor: str = ""  # the oldest acceptable driver, "535" or "535.104.05"
    cuda_floor: str = ""  # the oldest acceptable CUDA, "12.2"
    power_limit_w: float | None = None  # the limit the operator says they set
    cpu_model: str | None = None  # a CPU-only run: /proc/cpuinfo's "model name"
    logical_cpus: int | None = None  # a CPU-only run: the host's logical CPUs
    memory_gb: int | None = None  # a CPU-only run: MemTotal in GB (10^9 bytes), rounded

    def __post_init__(self) -> None:
        gpu_missing = [name for name in _GPU_FIELDS if getattr(self, name) in ("", 0)]
        if not gpu_missing:
            return
        cpu_missing = [name for name in _CPU_FIELDS if getattr(self, name) is None]
        if self.gpu_count == 0 and not cpu_missing:
            return
        if self.gpu_count == 0:
            raise ValueError(f"a run on no GPU (gpu_count 0) declares {', '.join(cpu_missing)}")
        raise ValueError(f"a GPU run (gpu_count {self.gpu_count}) declares {', '.join(gpu_missing)}")


_GPU_FIELDS = ("gpu_model", "memory_gb_per_gpu", "driver_floor", "cuda_floor")
_CPU_FIELDS = ("cpu_model", "logical_cpus", "memory_gb")


class Targets(msgspec.Struct, frozen=True, kw_only=True):
    """Thresholds the run was commissioned to meet (from the assignment), declared by the submitter."""

    min_samples_per_second: float | None = None
    max_latency_p99_ms: float | None = None


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    metric: str
    value: float
    unit: str
    evidence: list[str]


def section(document: dict[str, Any], key: str, kind: type[T]) -> tuple[T | None, str]:
    """`document[key]` as `kind`, or None and why not."""
    if key not in document:
        return None, f"the submission has no {key}"
    try:
        return msgspec.convert(document[key], type=kind), ""
    except msgspec.ValidationError as exc:
        return None, f"{key} is malformed: {exc}"


def evidence_roles(document: dict[str, Any]) -> dict[str, str]:
    """role -> evidence reference, from `evidence_files` (non-string entries dropped)."""
    files = document.get("evidence_files")
    if not isinstance(files, dict):
        return {}
    return {role: ref.strip() for role, ref in files.items() if isinstance(role, str) and isinstance(ref, str)}


class Basis(msgspec.Struct, frozen=True, kw_only=True):
    """The declarations every Compute check reads, or why each is unusable."""

    window: RunWindow | None
    window_problem: str
    hardware: DeclaredHardware | None
    hardware_problem: str

    @property
    def offset(self) -> timedelta:
        assert self.window is not None
        return self.window.offset


def basis(document: dict[str, Any]) -> Basis:
    window, window_problem = section(document, "run_window", RunWindow)
    if window is not None:
        try:
            window.offset  # noqa: B018  # validates the offset's spelling
        except ValueError as exc:
            window, window_problem = None, f"run_window: {exc}"
    if window is not None and window.end <= window.start:
        window_problem = f"run_window ends ({window.end.isoformat()}) before it starts"
        window = None
    hardware, hardware_problem = section(document, "declared_hardware", DeclaredHardware)
    return Basis(window=window, window_problem=window_problem, hardware=hardware, hardware_problem=hardware_problem)

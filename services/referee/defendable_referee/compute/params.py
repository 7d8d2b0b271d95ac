"""Params of this lane's rule kinds, decoded and validated when a sheet loads (sheet.py merges PARAMS).

Every Compute sheet runs `run_window` (the evidence was taken inside the declared run,
on a clock that did not jump) and `measured_claims` (every figure re-derived from the
evidence), then its own kind. Thresholds are floats with bounds; a sheet that sets one
outside its bounds does not load.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec

from defendable_canonical.model import Tier
from defendable_referee.compute.metric_names import METRICS

Count = Annotated[int, msgspec.Meta(ge=1, le=100_000)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]
Positive = Annotated[float, msgspec.Meta(gt=0, le=1e12)]
GapSeconds = Annotated[float, msgspec.Meta(gt=0, le=3600)]
_STAT = re.compile(r"^(mean|median|p\d{1,2}(\.\d{1,2})?)$")


class RunWindowParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    slack_s: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 2.0  # timestamps print whole seconds
    max_window_s: Annotated[float, msgspec.Meta(gt=0, le=31 * 86_400)] = 7 * 86_400
    max_gap_s: GapSeconds = 30.0  # telemetry silent longer than this is a gap (mid flag)
    gap_tier: Tier = "mid"


class MeasuredClaimsParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_claims: Count = 200
    relative_tolerance: Annotated[float, msgspec.Meta(ge=0, le=0.5)] = 0.005  # counts compare exactly
    metrics: list[str] = []  # the metrics this sheet accepts claims of; empty: the whole catalog

    def __post_init__(self) -> None:
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; known: {', '.join(METRICS)}")


class GpuSpecParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    count_must_match: bool = True  # the number of GPUs reported must equal the declared count


class BenchmarkScoreParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Thresholds are the submission's declared `targets`; the sheet bounds what may be declared."""

    floor_samples_per_second: Positive | None = None  # the lowest throughput target a submission may declare
    ceiling_latency_p99_ms: Positive | None = None  # the highest p99 latency target it may declare
    scenario: Literal["Offline", "Server", "SingleStream", "MultiStream"] | None = None
    require_telemetry: bool = True  # the run must be covered by telemetry of the declared GPU
    max_summary_detail_gap: Annotated[float, msgspec.Meta(ge=0, le=0.1)] = 0.001  # relative


class InferenceLatencyParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    min_output_tokens_per_second: Positive
    max_ttft_ms: dict[str, Positive] = {}  # statistic ("median", "p99") -> ceiling
    max_tpot_ms: dict[str, Positive] = {}
    max_itl_ms: dict[str, Positive] = {}
    max_failed: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 0
    min_completed: Count = 1
    require_telemetry: bool = True

    def __post_init__(self) -> None:
        for name, bounds in (
            ("max_ttft_ms", self.max_ttft_ms),
            ("max_tpot_ms", self.max_tpot_ms),
            ("max_itl_ms", self.max_itl_ms),
        ):
            for stat in bounds:
                if not _STAT.match(stat):
                    raise ValueError(f"{name}: {stat!r} is not a statistic (mean, median, p50, p99, p99.9)")


class ThermalPowerParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_temperature_c: Annotated[float, msgspec.Meta(gt=0, le=150)] = 85.0
    power_tolerance_w: Annotated[float, msgspec.Meta(ge=0, le=100)] = 1.0
    require_power_limit: bool = True  # the submission must declare the limit it set, and it must read back
    min_samples: Count = 10


class MemoryBandwidthParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kernel: Literal["triad", "copy", "scale", "mul", "add", "dot"] = "triad"
    min_fraction: Fraction = 0.7
    max_fraction: Annotated[float, msgspec.Meta(gt=0, le=2)] = 1.02  # above the datasheet peak is not a measurement

    def __post_init__(self) -> None:
        if self.min_fraction >= self.max_fraction:
            raise ValueError(f"min_fraction {self.min_fraction} is not below max_fraction {self.max_fraction}")


class EfficiencyParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    throughput: Literal["samples_per_second", "output_tokens_per_second"] = "samples_per_second"
    min_per_watt: Positive | None = None
    max_throttled_fraction: Fraction = 0.05
    max_gap_s: GapSeconds = 5.0  # the benchmark window must be sampled at least this often


class SystemReadinessParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    require_persistence_mode: bool = True
    require_ecc: bool = True
    max_retired_pages: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 0
    min_free_disk_gb: Positive | None = None
    disk_mount: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)] | None = None
    require_uptime_covers_run: bool = True  # a host that booted during the run restarted it
    max_model_load_s: Positive | None = None
    require_diagnostics: bool = False
    diagnostics_warn_tier: Tier = "mid"


PARAMS: dict[str, type[msgspec.Struct]] = {
    "run_window": RunWindowParams,
    "measured_claims": MeasuredClaimsParams,
    "gpu_spec": GpuSpecParams,
    "benchmark_score": BenchmarkScoreParams,
    "inference_latency": InferenceLatencyParams,
    "thermal_power": ThermalPowerParams,
    "memory_bandwidth": MemoryBandwidthParams,
    "efficiency": EfficiencyParams,
    "system_readiness": SystemReadinessParams,
}

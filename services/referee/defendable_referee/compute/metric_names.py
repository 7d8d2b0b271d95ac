"""The figures a Compute claim may state: name -> (unit, evidence roles it is derived from).

A claim names one of these, its value, its unit (as written here) and the evidence it
comes from; the referee derives the figure from that evidence itself (claims.py) and
flags the claim when it cannot. The sheets' `required_output_schema` enumerate exactly
these names (a test keeps them equal), so a figure outside the catalog cannot be claimed
at all: there is nothing to re-derive it from.
"""

from __future__ import annotations

_INVENTORY = ("gpu_inventory",)
_TELEMETRY = ("telemetry",)
_SERVING = ("serving_benchmark",)
_BANDWIDTH = ("bandwidth_log",)

METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    # nvidia-smi -q -x
    "gpu_count": ("GPUs", _INVENTORY),
    "gpu_memory_total_mib": ("MiB", _INVENTORY),
    "power_limit_w": ("W", _INVENTORY),
    "max_sm_clock_mhz": ("MHz", _INVENTORY),
    # the telemetry series, over the declared run window
    "mean_power_w": ("W", _TELEMETRY),
    "max_power_w": ("W", _TELEMETRY),
    "mean_temperature_c": ("C", _TELEMETRY),
    "max_temperature_c": ("C", _TELEMETRY),
    "mean_sm_clock_mhz": ("MHz", _TELEMETRY),
    "mean_gpu_utilization_pct": ("%", _TELEMETRY),
    "telemetry_samples": ("samples", _TELEMETRY),
    "throttled_samples": ("samples", _TELEMETRY),
    # MLPerf LoadGen summary
    "samples_per_second": ("samples/s", ("benchmark_summary",)),
    "latency_mean_ms": ("ms", ("benchmark_summary",)),
    "latency_p50_ms": ("ms", ("benchmark_summary",)),
    "latency_p90_ms": ("ms", ("benchmark_summary",)),
    "latency_p99_ms": ("ms", ("benchmark_summary",)),
    # vLLM serving benchmark
    "request_throughput_rps": ("req/s", _SERVING),
    "output_tokens_per_second": ("tok/s", _SERVING),
    "total_tokens_per_second": ("tok/s", _SERVING),
    "completed_requests": ("requests", _SERVING),
    **{
        f"{latency}_{stat}_ms": ("ms", _SERVING)
        for latency in ("ttft", "tpot", "itl", "e2el")
        for stat in ("mean", "median", "p90", "p95", "p99")
    },
    # memory bandwidth log
    **{f"{kernel}_gb_s": ("GB/s", _BANDWIDTH) for kernel in ("copy", "scale", "mul", "add", "triad", "dot")},
    "triad_fraction_of_spec": ("fraction", _BANDWIDTH),
    # efficiency: a benchmark's throughput over the telemetry's power in the benchmark's window
    "samples_per_second_per_watt": ("samples/s/W", ("benchmark_detail", "telemetry")),
    "output_tokens_per_second_per_watt": ("tok/s/W", ("serving_benchmark", "telemetry")),
    # host state
    "free_disk_gb": ("GB", ("disk_usage",)),
    "uptime_s": ("s", ("uptime",)),
    "model_load_s": ("s", ("server_log",)),
    "model_load_gib": ("GiB", ("server_log",)),
}
COUNTS = frozenset({"gpu_count", "telemetry_samples", "throttled_samples", "completed_requests"})  # compared exactly

"""The `measured_claims` rule kind: every number the submitter reports, re-derived.

In this lane the submitter's numbers are claims, not facts. Each claim names a metric of
the catalog (metric_names.py), a value, a unit and the evidence it comes from; the
referee derives the metric from that evidence itself and compares. A claim it cannot
derive — unknown metric, evidence not attached or not given the needed role, the figure
absent from the file ("N/A"), the file refused — is a high flag, "not measured": a figure
with no instrumentation behind it is exactly what this lane exists to refuse.

Granularity: one finding per claim (a pass when there are none, saying so).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from defendable_canonical.model import Finding
from defendable_referee.compute.evidence import load, role_of
from defendable_referee.compute.host import DiskUsage, Uptime
from defendable_referee.compute.metric_names import COUNTS, METRICS
from defendable_referee.compute.mlperf import LoadgenSummary
from defendable_referee.compute.nvidia_smi import SmiLog
from defendable_referee.compute.params import MeasuredClaimsParams
from defendable_referee.compute.performance import declared_spec_bandwidth, per_watt
from defendable_referee.compute.smi_csv import Telemetry
from defendable_referee.compute.stream_log import BandwidthLog
from defendable_referee.compute.submission import Basis, Claim, basis
from defendable_referee.compute.telemetry import WindowStats, max_sm_clocks, stats, timed, within
from defendable_referee.compute.vllm_bench import ModelLoad, ServingResult
from defendable_referee.context import CheckContext
from defendable_referee.findings import finding, listing
from defendable_referee.sheet import Rule, params_for


class NotMeasured(Exception):
    """The metric cannot be derived from the evidence; the message says why."""


P = TypeVar("P")  # what one evidence role parses to


def check_measured_claims(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, MeasuredClaimsParams)
    raw = context.document.get("claims", [])
    if not isinstance(raw, list):
        return [finding(rule, "flag", "claims is not a list: no figure can be checked", tier="high")]
    if len(raw) > params.max_claims:
        return [
            finding(rule, "flag", f"{len(raw)} claims; the limit is {params.max_claims}: none checked", tier="high")
        ]
    if not raw:
        return [finding(rule, "pass", "the submission claims no figures")]
    grounds = basis(context.document)
    return [_check_one(rule, context, grounds, params, i, item) for i, item in enumerate(raw)]


def _check_one(
    rule: Rule, context: CheckContext, grounds: Basis, params: MeasuredClaimsParams, index: int, item: Any
) -> Finding:
    where = f"claims[{index}]"
    try:
        claim = msgspec.convert(item, type=Claim)
    except msgspec.ValidationError as exc:
        return finding(rule, "flag", f"{where} is malformed ({exc}): not measured", tier="high")
    label = f"{where} {claim.metric} = {_shown(claim.value)} {claim.unit}"
    allowed = params.metrics or list(METRICS)
    if claim.metric not in METRICS or claim.metric not in allowed:
        return _not_measured(
            rule, label, f"{claim.metric!r} is not a figure this sheet re-derives ({listing(allowed)})"
        )
    unit, roles = METRICS[claim.metric]
    if claim.unit != unit:
        return finding(
            rule,
            "flag",
            f"{label}: {claim.metric} is measured in {unit}, not {claim.unit}",
            tier="high",
            observed=claim.unit,
            expected=unit,
        )
    named: list[str] = []
    for reference in claim.evidence:
        role = role_of(context, reference)
        if role is None:
            return _not_measured(
                rule, label, f"it cites {reference[:80]!r}, which is no attached evidence with a role in evidence_files"
            )
        named.append(role)
    missing = [r for r in roles if r not in named]
    if missing:
        return _not_measured(
            rule,
            label,
            f"{claim.metric} is derived from {listing(list(roles))}; the claim cites {listing(named) or 'nothing'}",
        )
    try:
        measured = DERIVE[claim.metric](context, grounds)
    except NotMeasured as exc:
        return _not_measured(rule, label, str(exc))
    if claim.metric in COUNTS:
        ok = claim.value == measured
        bound = "exactly"
    else:
        ok = abs(claim.value - measured) <= params.relative_tolerance * abs(measured)
        bound = f"within {params.relative_tolerance:.2%}"
    verb = "matches" if ok else "does not match"
    return finding(
        rule,
        "pass" if ok else "flag",
        f"{label} {verb} the {_shown(measured)} {unit} the referee derives from {listing(named)} ({bound})",
        observed=_shown(claim.value),
        expected=_shown(measured),
    )


def _not_measured(rule: Rule, label: str, why: str) -> Finding:
    return finding(rule, "flag", f"{label}: not measured — {why}", tier="high")


def _shown(value: float) -> str:
    return f"{value:.6g}" if abs(value) < 1e15 else f"{value:.6e}"


# -- derivations ------------------------------------------------------------

Derive = Callable[[CheckContext, Basis], float]


def _inventory(context: CheckContext) -> SmiLog:
    loaded = load(context, "gpu_inventory", SmiLog)
    if loaded.value is None:
        raise NotMeasured(loaded.problem)
    if not loaded.value.gpus:
        raise NotMeasured(f"gpu_inventory {loaded.name} lists no GPU")
    return loaded.value


def _same(values: list[float | None], what: str) -> float:
    present = {v for v in values if v is not None}
    if len(present) != 1 or None in values:
        raise NotMeasured(f"the GPUs do not report one {what} ({sorted(present) or 'none'})")
    return present.pop()


def _window_stats(context: CheckContext, grounds: Basis) -> WindowStats:
    if grounds.window is None:
        raise NotMeasured(f"no run window: {grounds.window_problem}")
    loaded = load(context, "telemetry", Telemetry)
    if loaded.value is None:
        raise NotMeasured(loaded.problem)
    if loaded.value.backward_jumps:
        raise NotMeasured(f"telemetry {loaded.name} clock jumps backwards at line {loaded.value.backward_jumps[0].row}")
    inside = within(timed(loaded.value, grounds.offset), grounds.window.start, grounds.window.end)
    if not inside:
        raise NotMeasured(f"telemetry {loaded.name} has no samples in the run window")
    inventory = load(context, "gpu_inventory", SmiLog)
    return stats(inside, max_sm_clocks(inventory.value))


def _telemetry(pick: Callable[[WindowStats], float | None], what: str) -> Derive:
    def derive(context: CheckContext, grounds: Basis) -> float:
        value = pick(_window_stats(context, grounds))
        if value is None:
            raise NotMeasured(f"the telemetry reports no {what}")
        return value

    return derive


def _parsed(role: str, kind: type[P], pick: Callable[[P], float | None], what: str) -> Derive:
    """A figure read from the evidence playing `role`, parsed as `kind`."""

    def derive(context: CheckContext, grounds: Basis) -> float:
        loaded = load(context, role, kind)
        if loaded.value is None:
            raise NotMeasured(loaded.problem)
        value = pick(loaded.value)
        if value is None:
            raise NotMeasured(f"{role} {loaded.name} reports no {what}")
        return value

    return derive


def _summary(pick: Callable[[LoadgenSummary], float | None], what: str) -> Derive:
    return _parsed("benchmark_summary", LoadgenSummary, pick, what)


def _serving(pick: Callable[[ServingResult], float | None], what: str) -> Derive:
    return _parsed("serving_benchmark", ServingResult, pick, what)


def _bandwidth(kernel: str) -> Derive:
    def derive(context: CheckContext, grounds: Basis) -> float:
        loaded = load(context, "bandwidth_log", BandwidthLog)
        if loaded.value is None:
            raise NotMeasured(loaded.problem)
        if kernel not in loaded.value.rates_gb_s:
            raise NotMeasured(f"bandwidth_log {loaded.name} has no {kernel} rate")
        return loaded.value.rates_gb_s[kernel]

    return derive


def _triad_fraction(context: CheckContext, grounds: Basis) -> float:
    spec = declared_spec_bandwidth(grounds)
    if spec is None:
        raise NotMeasured(
            f"no datasheet bandwidth for the declared hardware ({grounds.hardware_problem or 'unknown model'})"
        )
    return _bandwidth("triad")(context, grounds) / spec


def _per_watt(throughput: str) -> Derive:
    def derive(context: CheckContext, grounds: Basis) -> float:
        result = per_watt(context, grounds, throughput, max_gap_s=3600)
        if result.value is None:
            raise NotMeasured(result.problem)
        return result.value

    return derive


def _free_disk(context: CheckContext, grounds: Basis) -> float:
    loaded = load(context, "disk_usage", DiskUsage)
    if loaded.value is None:
        raise NotMeasured(loaded.problem)
    systems = loaded.value.filesystems
    if len(systems) != 1:
        raise NotMeasured(f"disk_usage {loaded.name} lists {len(systems)} file systems; attach `df -P -k PATH` for one")
    return systems[0].available_bytes / 1e9


def _uptime(context: CheckContext, grounds: Basis) -> float:
    loaded = load(context, "uptime", Uptime)
    if loaded.value is None:
        raise NotMeasured(loaded.problem)
    return loaded.value.seconds


def _model_load(pick: Callable[[ModelLoad], float]) -> Derive:
    def derive(context: CheckContext, grounds: Basis) -> float:
        loaded = load(context, "server_log", ModelLoad)
        if loaded.value is None:
            raise NotMeasured(loaded.problem)
        return pick(loaded.value)

    return derive


def _statistic(key: str) -> Callable[[ServingResult], float | None]:
    def pick(result: ServingResult) -> float | None:
        return result.latency_ms.get(key)

    return pick


def _latency_ms(key: str) -> Callable[[LoadgenSummary], float | None]:
    def pick(summary: LoadgenSummary) -> float | None:
        value = summary.latency_ns.get(key)
        return None if value is None else value / 1e6

    return pick


DERIVE: dict[str, Derive] = {
    "gpu_count": lambda c, g: float(len(_inventory(c).gpus)),
    "gpu_memory_total_mib": lambda c, g: _same([x.memory_total_mib for x in _inventory(c).gpus], "frame-buffer size"),
    "power_limit_w": lambda c, g: _same([x.power_limit_effective_w for x in _inventory(c).gpus], "power limit"),
    "max_sm_clock_mhz": lambda c, g: _same([x.max_sm_clock_mhz for x in _inventory(c).gpus], "max SM clock"),
    "mean_power_w": _telemetry(lambda s: s.mean_power_w, "power draw"),
    "max_power_w": _telemetry(lambda s: s.max_power_w, "power draw"),
    "mean_temperature_c": _telemetry(lambda s: s.mean_temperature_c, "temperature"),
    "max_temperature_c": _telemetry(lambda s: s.max_temperature_c, "temperature"),
    "mean_sm_clock_mhz": _telemetry(lambda s: s.mean_sm_clock_mhz, "unthrottled SM clock"),
    "mean_gpu_utilization_pct": _telemetry(lambda s: s.mean_utilization_pct, "unthrottled utilisation"),
    "telemetry_samples": _telemetry(lambda s: float(s.samples), "samples"),
    "throttled_samples": _telemetry(lambda s: float(s.throttled), "throttle state"),
    "samples_per_second": _summary(lambda s: s.samples_per_second, "samples per second"),
    "latency_mean_ms": _summary(_latency_ms("mean"), "mean latency"),
    "latency_p50_ms": _summary(_latency_ms("p50"), "50th percentile latency"),
    "latency_p90_ms": _summary(_latency_ms("p90"), "90th percentile latency"),
    "latency_p99_ms": _summary(_latency_ms("p99"), "99th percentile latency"),
    "request_throughput_rps": _serving(lambda s: s.request_throughput, "request throughput"),
    "output_tokens_per_second": _serving(lambda s: s.output_throughput, "output throughput"),
    "total_tokens_per_second": _serving(lambda s: s.total_token_throughput, "total token throughput"),
    "completed_requests": _serving(lambda s: float(s.completed), "completed count"),
    **{
        f"{latency}_{stat}_ms": _serving(_statistic(f"{latency}.{stat}"), f"{stat} {latency.upper()}")
        for latency in ("ttft", "tpot", "itl", "e2el")
        for stat in ("mean", "median", "p90", "p95", "p99")
    },
    **{f"{kernel}_gb_s": _bandwidth(kernel) for kernel in ("copy", "scale", "mul", "add", "triad", "dot")},
    "triad_fraction_of_spec": _triad_fraction,
    "samples_per_second_per_watt": _per_watt("samples_per_second"),
    "output_tokens_per_second_per_watt": _per_watt("output_tokens_per_second"),
    "free_disk_gb": _free_disk,
    "uptime_s": _uptime,
    "model_load_s": _model_load(lambda m: m.seconds),
    "model_load_gib": _model_load(lambda m: m.gib),
}
assert set(DERIVE) == set(METRICS), f"metrics without a derivation: {set(METRICS) ^ set(DERIVE)}"

"""This lane's rule checks, by kind (rules.py merges CHECKS into its dispatcher).

Every kind reads the submission's declarations (submission.py) and the evidence files by
role (evidence.py), computes its figures itself, and returns findings; a failed check is
data. Evidence that is missing, unreadable or refused (an XML bomb, a truncated log) is a
flag on the finding that needed it, never a pass. This module holds the shared
`run_window` kind; the others live with their subject:

| kind                | module         | sheet                                  |
| ------------------- | -------------- | -------------------------------------- |
| `run_window`        | here           | every Compute sheet                    |
| `measured_claims`   | claims.py      | every Compute sheet                    |
| `gpu_spec`          | hardware.py    | compute_gpu_spec_verification_v1       |
| `system_readiness`  | hardware.py    | compute_system_readiness_v1            |
| `benchmark_score`   | benchmark.py   | compute_benchmark_score_validation_v1  |
| `inference_latency` | benchmark.py   | compute_inference_latency_v1           |
| `efficiency`        | benchmark.py   | compute_efficiency_metrics_v1          |
| `thermal_power`     | thermal.py     | compute_thermal_power_check_v1         |
| `memory_bandwidth`  | thermal.py     | compute_memory_bandwidth_v1            |
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from defendable_canonical.model import Finding
from defendable_referee.compute.benchmark import check_benchmark_score, check_efficiency, check_inference_latency
from defendable_referee.compute.claims import check_measured_claims
from defendable_referee.compute.evidence import load
from defendable_referee.compute.hardware import check_gpu_spec, check_system_readiness
from defendable_referee.compute.params import RunWindowParams
from defendable_referee.compute.smi_csv import Telemetry
from defendable_referee.compute.submission import basis, evidence_roles
from defendable_referee.compute.telemetry import gaps, timed, within
from defendable_referee.compute.thermal import check_memory_bandwidth, check_thermal_power
from defendable_referee.compute.window import spans
from defendable_referee.context import CheckContext
from defendable_referee.findings import finding, listing
from defendable_referee.sheet import Rule, params_for


def check_run_window(rule: Rule, context: CheckContext) -> list[Finding]:
    """The evidence was taken inside the declared run, on a clock that did not jump.

    Plan: 1. the window itself; 2. each timestamped item inside it; 3. the telemetry clock."""
    params = params_for(rule)
    assert isinstance(params, RunWindowParams)
    grounds = basis(context.document)
    window = grounds.window
    if window is None:
        return [finding(rule, "flag", f"no usable run window: {grounds.window_problem}", tier="high")]
    # 1.
    span = f"{window.start.isoformat()} to {window.end.isoformat()}"
    if window.seconds > params.max_window_s:
        return [
            finding(
                rule,
                "flag",
                f"run window {span} is {window.seconds:.0f} s; the limit is {params.max_window_s:.0f} s",
                tier="high",
                observed=f"{window.seconds:.0f}",
                expected=f"≤ {params.max_window_s:.0f}",
            )
        ]
    findings = [
        finding(rule, "pass", f"run window {span} ({window.seconds:.0f} s; host clocks at UTC{window.host_utc_offset})")
    ]
    # 2.
    found, unreadable = spans(context, window.start, window.end, grounds.offset, timedelta(seconds=params.slack_s))
    findings += [finding(rule, "flag", f"cannot place evidence in time: {p.problem}", tier="high") for p in unreadable]
    for item in found:
        where = f"{item.role} {item.name}"
        if item.outside:
            first = min(item.outside).isoformat()
            findings.append(
                finding(
                    rule,
                    "flag",
                    f"{where}: {len(item.outside)} of {item.points} timestamps fall outside the run window"
                    f" (first {first}); evidence from outside the run is not evidence of it",
                    tier="high",
                    observed=first,
                    expected=span,
                )
            )
        else:
            findings.append(finding(rule, "pass", f"{where}: all {item.points} timestamps inside the run window"))
    if not found and not unreadable:
        findings.append(
            finding(
                rule, "flag", "no attached evidence carries timestamps: nothing ties it to the run window", tier="high"
            )
        )
    # 3.
    if "telemetry" in evidence_roles(context.document):
        findings += _clock(rule, context, params, grounds.offset)
    return findings


def _clock(rule: Rule, context: CheckContext, params: RunWindowParams, offset: timedelta) -> list[Finding]:
    series = load(context, "telemetry", Telemetry)
    if series.value is None or not series.value.samples:
        return []  # unreadable: already flagged above; empty: flagged by the kinds that need samples
    jumps = series.value.backward_jumps
    if jumps:
        shown = [f"line {j.row} ({j.gpu}: {j.previous.isoformat()} then {j.current.isoformat()})" for j in jumps]
        return [
            finding(
                rule,
                "flag",
                f"telemetry {series.name} clock jumps backwards {len(jumps)} times: {listing(shown)};"
                " figures over this series are not trusted",
                tier="high",
            )
        ]
    samples = timed(series.value, offset)
    first, last = min(t.at for t in samples), max(t.at for t in samples)
    holes = gaps(within(samples, first, last), first, last, params.max_gap_s)
    if holes:
        shown = [f"{g.gpu} {g.seconds:.0f} s from {g.start.isoformat()}" for g in holes]
        return [
            finding(
                rule,
                "flag",
                f"telemetry {series.name} is silent longer than {params.max_gap_s:g} s {len(holes)} times"
                f" (a forward clock jump or lost samples): {listing(shown)}",
                tier=params.gap_tier,
            )
        ]
    gpus = len({t.sample.gpu for t in samples})
    return [
        finding(
            rule,
            "pass",
            f"telemetry {series.name}: {len(samples)} samples of {gpus} GPUs,"
            f" clock monotonic, no gap over {params.max_gap_s:g} s",
        )
    ]


CHECKS: dict[str, Callable[[Rule, CheckContext], list[Finding]]] = {
    "run_window": check_run_window,
    "measured_claims": check_measured_claims,
    "gpu_spec": check_gpu_spec,
    "system_readiness": check_system_readiness,
    "benchmark_score": check_benchmark_score,
    "inference_latency": check_inference_latency,
    "efficiency": check_efficiency,
    "thermal_power": check_thermal_power,
    "memory_bandwidth": check_memory_bandwidth,
}

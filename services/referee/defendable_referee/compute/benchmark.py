"""The `benchmark_score`, `inference_latency` and `efficiency` rule kinds.

Each reads the benchmark's own output, never the submitter's transcription of it, and
binds it to the declared hardware by time (performance.py). Granularity:

* benchmark_score: validity (summary and detail agree), scenario if the sheet fixes one,
  throughput against the floor (summary and detail agree), p99 latency if bounded, and
  one finding per binding (system description, telemetry);
* inference_latency: completion, output throughput, one finding per bounded latency
  statistic, bindings;
* efficiency: perf per watt against the floor, throttled share, sampling coverage, binding.
"""

from __future__ import annotations

from defendable_canonical.model import Finding
from defendable_referee.compute.evidence import load
from defendable_referee.compute.mlperf import LoadgenDetail, LoadgenSummary
from defendable_referee.compute.params import BenchmarkScoreParams, EfficiencyParams, InferenceLatencyParams
from defendable_referee.compute.performance import bind_to_hardware, per_watt
from defendable_referee.compute.submission import Targets, basis, section
from defendable_referee.compute.vllm_bench import ServingResult
from defendable_referee.context import CheckContext
from defendable_referee.findings import finding, listing
from defendable_referee.sheet import Rule, params_for


def _bindings(rule: Rule, context: CheckContext, require_telemetry: bool) -> list[Finding]:
    return [
        finding(rule, "pass" if b.ok else "flag", b.message, tier=None if b.ok else "high")
        for b in bind_to_hardware(context, basis(context.document), require_telemetry=require_telemetry)
    ]


def check_benchmark_score(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, BenchmarkScoreParams)
    summary = load(context, "benchmark_summary", LoadgenSummary)
    detail = load(context, "benchmark_detail", LoadgenDetail)
    missing = [p.problem for p in (summary, detail) if p.value is None]
    if summary.value is None or detail.value is None:
        return [finding(rule, "flag", f"no benchmark result to validate: {listing(missing)}")]
    s, d = summary.value, detail.value
    findings: list[Finding] = []
    # validity: LoadGen's own verdict, the same in both files, with no logged error
    problems = []
    if not s.valid:
        problems.append(f"{summary.name} says Result is {s.validity}")
    if d.validity != s.validity:
        problems.append(f"{detail.name} says {d.validity!r} but {summary.name} says {s.validity!r}: not one run")
    if s.errors or d.errors:
        problems.append(f"LoadGen logged {max(s.errors, d.errors)} errors")
    findings.append(
        finding(rule, "flag", "; ".join(problems), observed=s.validity, expected="VALID")
        if problems
        else finding(rule, "pass", f"LoadGen reports VALID in both {summary.name} and {detail.name}", observed="VALID")
    )
    if params.scenario is not None:
        ok = s.scenario == params.scenario == d.scenario and s.mode == "PerformanceOnly"
        findings.append(
            finding(
                rule,
                "pass" if ok else "flag",
                f"scenario {s.scenario} / {d.scenario}, mode {s.mode};"
                f" the sheet requires {params.scenario}, PerformanceOnly",
                observed=f"{s.scenario}",
                expected=params.scenario,
            )
        )
    targets, problem = section(context.document, "targets", Targets)
    if targets is None:
        undeclared = finding(rule, "flag", f"no declared thresholds to hold the benchmark to: {problem}")
        return [*findings, undeclared, *_bindings(rule, context, params.require_telemetry)]
    findings.append(_throughput(rule, params, targets, s, d, summary.name, detail.name))
    if targets.max_latency_p99_ms is not None or params.ceiling_latency_p99_ms is not None:
        findings.append(_latency(rule, params, targets, s, summary.name))
    return findings + _bindings(rule, context, params.require_telemetry)


def _throughput(
    rule: Rule,
    params: BenchmarkScoreParams,
    targets: Targets,
    s: LoadgenSummary,
    d: LoadgenDetail,
    sname: str,
    dname: str,
) -> Finding:
    target, floor = targets.min_samples_per_second, params.floor_samples_per_second
    if target is None:
        return finding(rule, "flag", "targets declares no min_samples_per_second to hold the benchmark to")
    if floor is not None and target < floor:
        return finding(
            rule,
            "flag",
            f"declared target {target:g} samples/s is below this sheet's floor {floor:g}",
            observed=f"{target:g}",
            expected=f"≥ {floor:g}",
        )
    rate, logged = s.samples_per_second, d.samples_per_second
    if rate is None:
        return finding(rule, "flag", f"throughput not measured: {sname} has no samples-per-second line")
    if logged is None or abs(logged - rate) > params.max_summary_detail_gap * rate:
        return finding(
            rule, "flag", f"{sname} reports {rate:g} samples/s but {dname} logs {logged}: not one run", tier="high"
        )
    ok = rate >= target
    return finding(
        rule,
        "pass" if ok else "flag",
        f"{rate:g} samples/s (summary and detail agree) against the declared target {target:g}",
        observed=f"{rate:g}",
        expected=f"≥ {target:g}",
    )


def _latency(rule: Rule, params: BenchmarkScoreParams, targets: Targets, s: LoadgenSummary, sname: str) -> Finding:
    target, ceiling = targets.max_latency_p99_ms, params.ceiling_latency_p99_ms
    if target is None:
        return finding(rule, "flag", f"this sheet bounds p99 latency (≤ {ceiling:g} ms); targets declares none")
    if ceiling is not None and target > ceiling:
        return finding(
            rule, "flag", f"declared p99 latency target {target:g} ms is above this sheet's ceiling {ceiling:g}"
        )
    p99 = s.latency_ns.get("p99")
    if p99 is None:
        return finding(rule, "flag", f"p99 latency not measured: {sname} has no 99.00 percentile line", tier="high")
    ok = p99 / 1e6 <= target
    return finding(
        rule,
        "pass" if ok else "flag",
        f"p99 latency {p99 / 1e6:.3f} ms against the declared target {target:g} ms",
        observed=f"{p99 / 1e6:.3f}",
        expected=f"≤ {target:g}",
    )


def check_inference_latency(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, InferenceLatencyParams)
    loaded = load(context, "serving_benchmark", ServingResult)
    if loaded.value is None:
        return [finding(rule, "flag", f"no serving benchmark to check: {loaded.problem}")]
    result = loaded.value
    findings: list[Finding] = []
    failed = result.failed
    if failed is None and result.num_prompts is not None:
        failed = result.num_prompts - result.completed  # older releases write no "failed"
    ok = result.completed >= params.min_completed and failed is not None and failed <= params.max_failed
    findings.append(
        finding(
            rule,
            "pass" if ok else "flag",
            f"{result.completed} requests completed, {'unknown' if failed is None else failed} failed"
            f" (at least {params.min_completed} and at most {params.max_failed} failed required)",
            observed=str(result.completed),
        )
    )
    rate = result.output_throughput
    if rate is None:
        findings.append(
            finding(rule, "flag", f"output throughput not measured: {loaded.name} has no output_throughput")
        )
    else:
        ok = rate >= params.min_output_tokens_per_second
        findings.append(
            finding(
                rule,
                "pass" if ok else "flag",
                f"{rate:.1f} output tok/s against the floor {params.min_output_tokens_per_second:g}",
                observed=f"{rate:.1f}",
                expected=f"≥ {params.min_output_tokens_per_second:g}",
            )
        )
    for latency, bounds in (("ttft", params.max_ttft_ms), ("tpot", params.max_tpot_ms), ("itl", params.max_itl_ms)):
        for stat, ceiling in sorted(bounds.items()):
            value = result.latency_ms.get(f"{latency}.{'median' if stat == 'p50' else stat}")
            label = f"{stat} {latency.upper()}"
            if value is None:
                findings.append(
                    finding(
                        rule,
                        "flag",
                        f"{label} not measured: {loaded.name} has no {stat}_{latency}_ms (set --metric-percentiles)",
                        tier="high",
                    )
                )
                continue
            ok = value <= ceiling
            findings.append(
                finding(
                    rule,
                    "pass" if ok else "flag",
                    f"{label} {value:.2f} ms against the ceiling {ceiling:g} ms",
                    observed=f"{value:.2f}",
                    expected=f"≤ {ceiling:g}",
                )
            )
    return findings + _bindings(rule, context, params.require_telemetry)


def check_efficiency(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, EfficiencyParams)
    grounds = basis(context.document)
    result = per_watt(context, grounds, params.throughput, params.max_gap_s)
    unit = "samples/s" if params.throughput == "samples_per_second" else "tok/s"
    if result.value is None or result.stats is None or result.power_w is None or result.throughput is None:
        missing = finding(rule, "flag", f"perf per watt not measured: {result.problem}", tier="high")
        return [missing, *_bindings(rule, context, True)]
    figures = result.stats
    findings: list[Finding] = []
    span = f"{result.start.isoformat() if result.start else '?'} to {result.end.isoformat() if result.end else '?'}"
    headline = (
        f"{result.value:.4g} {unit}/W: {result.throughput:g} {unit} over {result.power_w:.1f} W mean node power"
        f" in the benchmark window {span} ({figures.samples} samples, {figures.throttled} throttled excluded)"
    )
    if params.min_per_watt is None:
        findings.append(finding(rule, "pass", headline, observed=f"{result.value:.4g}"))
    else:
        ok = result.value >= params.min_per_watt
        findings.append(
            finding(
                rule,
                "pass" if ok else "flag",
                headline,
                observed=f"{result.value:.4g}",
                expected=f"≥ {params.min_per_watt:g}",
            )
        )
    share = figures.throttled / figures.samples if figures.samples else 1.0
    if figures.throttle_unknown:
        findings.append(
            finding(
                rule,
                "flag",
                f"throttle state unknown for {figures.throttle_unknown} of {figures.samples} samples"
                " (no SM clock or max SM clock)",
            )
        )
    else:
        ok = share <= params.max_throttled_fraction
        findings.append(
            finding(
                rule,
                "pass" if ok else "flag",
                f"{figures.throttled} of {figures.samples} samples throttled (SM clock < 0.75 × max): {share:.1%},"
                f" at most {params.max_throttled_fraction:.0%} allowed",
                observed=f"{share:.4f}",
                expected=f"≤ {params.max_throttled_fraction:g}",
            )
        )
    if result.gaps:
        shown = [f"{g.gpu} {g.seconds:.1f} s from {g.start.isoformat()}" for g in result.gaps]
        findings.append(
            finding(rule, "flag", f"the benchmark window is not sampled every {params.max_gap_s:g} s: {listing(shown)}")
        )
    else:
        findings.append(
            finding(rule, "pass", f"the benchmark window is sampled at least every {params.max_gap_s:g} s on every GPU")
        )
    return findings + _bindings(rule, context, True)

"""The `thermal_power` and `memory_bandwidth` rule kinds.

thermal_power reads the telemetry over the declared run window: peak temperature, any
thermal slowdown (always a high flag: figures taken while the GPU cooled itself down are
not the GPU's), power draw against the limit in force, and the power limit read back —
requested (what the operator set) against effective (what the board enforces), both
against the limit the submission declares.

memory_bandwidth compares the measured STREAM/BabelStream rate with the datasheet peak of
the declared GPU, after checking the log ran on that GPU at all.
"""

from __future__ import annotations

from defendable_canonical.model import Finding
from defendable_referee.compute.evidence import load
from defendable_referee.compute.gpu_specs import by_device_id, by_model, by_name
from defendable_referee.compute.nvidia_smi import SmiLog
from defendable_referee.compute.params import MemoryBandwidthParams, ThermalPowerParams
from defendable_referee.compute.smi_csv import Telemetry
from defendable_referee.compute.stream_log import BandwidthLog
from defendable_referee.compute.submission import Basis, basis, evidence_roles
from defendable_referee.compute.telemetry import Timed, max_sm_clocks, stats, timed, within
from defendable_referee.context import CheckContext
from defendable_referee.findings import finding, listing
from defendable_referee.sheet import Rule, params_for


def check_thermal_power(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, ThermalPowerParams)
    grounds = basis(context.document)
    series = load(context, "telemetry", Telemetry)
    if series.value is None:
        return [finding(rule, "flag", f"temperature and power not measured: {series.problem}", tier="high")]
    if grounds.window is None:
        return [finding(rule, "flag", f"no run window to read the telemetry over: {grounds.window_problem}")]
    if series.value.backward_jumps:
        row = series.value.backward_jumps[0].row
        return [
            finding(
                rule, "flag", f"telemetry {series.name} clock jumps backwards (line {row}): not trusted", tier="high"
            )
        ]
    inside = within(timed(series.value, grounds.offset), grounds.window.start, grounds.window.end)
    inventory = load(context, "gpu_inventory", SmiLog) if "gpu_inventory" in evidence_roles(context.document) else None
    figures = stats(inside, max_sm_clocks(inventory.value if inventory else None))
    findings: list[Finding] = []
    if len(inside) < params.min_samples:
        return [
            finding(
                rule,
                "flag",
                f"{len(inside)} telemetry samples in the run window; at least {params.min_samples} needed",
                tier="high",
            )
        ]
    findings.append(
        finding(
            rule,
            "pass",
            f"{len(inside)} samples of {len(figures.gpus)} GPUs in the run window;"
            f" {figures.throttled} throttled (SM clock < 0.75 × max)",
        )
    )
    # temperature
    peak = figures.max_temperature_c
    if peak is None:
        findings.append(
            finding(
                rule, "flag", "temperature not measured: the telemetry has no temperature.gpu readings", tier="high"
            )
        )
    else:
        ok = peak <= params.max_temperature_c
        findings.append(
            finding(
                rule,
                "pass" if ok else "flag",
                f"peak GPU temperature {peak:g} C (mean {figures.mean_temperature_c:.1f} C)"
                f" against the ceiling {params.max_temperature_c:g} C",
                observed=f"{peak:g}",
                expected=f"≤ {params.max_temperature_c:g}",
            )
        )
    # thermal slowdown: any is high, whatever the rule's tier
    if not series.value.has_thermal_reason or figures.thermal_unknown == len(inside):
        findings.append(
            finding(
                rule,
                "flag",
                "thermal slowdown not measured: query clocks_throttle_reasons.active (or hw_/sw_thermal_slowdown)",
                tier="high",
            )
        )
    elif figures.thermal_slowdown_rows:
        rows = figures.thermal_slowdown_rows
        findings.append(
            finding(
                rule,
                "flag",
                f"thermal slowdown active in {len(rows)} samples during the run"
                f" (lines {listing([str(r) for r in rows])})",
                tier="high",
                observed=str(len(rows)),
                expected="0",
            )
        )
    else:
        findings.append(finding(rule, "pass", "no thermal slowdown (hardware or software) in any sample of the run"))
    findings += _power(rule, params, grounds, inside, inventory.value if inventory else None)
    return findings


def _power(
    rule: Rule, params: ThermalPowerParams, grounds: Basis, inside: list[Timed], inventory: SmiLog | None
) -> list[Finding]:
    tolerance = params.power_tolerance_w
    findings: list[Finding] = []
    by_gpu: dict[str, tuple[float | None, float | None]] = {}
    for board in inventory.gpus if inventory else []:
        for key in (board.uuid, board.bus_id):
            by_gpu[key.upper()] = (board.power_limit_requested_w, board.power_limit_effective_w)
    limits: dict[str, tuple[float | None, float | None]] = {}
    peaks: dict[str, float] = {}
    for t in inside:
        s = t.sample
        fallback = by_gpu.get(s.gpu.upper(), (None, None))
        limits[s.gpu] = (
            fallback[0] if s.power_limit_w is None else s.power_limit_w,
            fallback[1] if s.enforced_power_limit_w is None else s.enforced_power_limit_w,
        )
        if s.power_w is not None:
            peaks[s.gpu] = max(peaks.get(s.gpu, 0.0), s.power_w)
    # draw against the limit in force
    if not peaks:
        findings.append(
            finding(rule, "flag", "power draw not measured: the telemetry has no power.draw readings", tier="high")
        )
    else:
        over, unknown = [], []
        for gpu in sorted(peaks):
            enforced = limits[gpu][1]
            if enforced is None:
                unknown.append(gpu)
            elif peaks[gpu] > enforced + tolerance:
                over.append(f"{gpu} {peaks[gpu]:.1f} W over {enforced:.1f} W")
        if over:
            findings.append(
                finding(
                    rule,
                    "flag",
                    f"power draw above the enforced limit (not a real reading of this board): {listing(over)}",
                    tier="high",
                )
            )
        elif unknown:
            findings.append(finding(rule, "flag", f"enforced power limit not measured for {listing(unknown)}"))
        else:
            top = max(peaks.values())
            findings.append(finding(rule, "pass", f"peak draw {top:.1f} W stays within every GPU's enforced limit"))
    # the limit read back: declared == requested == effective
    if params.require_power_limit:
        declared = grounds.hardware.power_limit_w if grounds.hardware else None
        if declared is None:
            findings.append(finding(rule, "flag", "the submission declares no power_limit_w to read back", tier="high"))
        else:
            problems = []
            for gpu, (requested, effective) in sorted(limits.items()):
                if requested is None or effective is None:
                    problems.append(f"{gpu} limit not reported (query power.limit, enforced.power.limit)")
                    continue
                if abs(requested - declared) > tolerance:
                    problems.append(f"{gpu} requested {requested:g} W, declared {declared:g} W")
                if abs(effective - requested) > tolerance:
                    problems.append(
                        f"{gpu} effective {effective:g} W ≠ requested {requested:g} W (the platform capped it)"
                    )
            findings.append(
                finding(
                    rule, "flag", f"power limit read back does not match: {listing(problems)}", expected=f"{declared:g}"
                )
                if problems or not limits
                else finding(
                    rule,
                    "pass",
                    f"power limit {declared:g} W requested and in force on all {len(limits)} GPUs",
                    observed=f"{declared:g}",
                )
            )
    return findings


def check_memory_bandwidth(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, MemoryBandwidthParams)
    grounds = basis(context.document)
    spec = by_model(grounds.hardware.gpu_model) if grounds.hardware else None
    if spec is None:
        return [
            finding(
                rule,
                "flag",
                f"no datasheet bandwidth to compare with: {grounds.hardware_problem or 'unknown gpu_model'}",
            )
        ]
    log = load(context, "bandwidth_log", BandwidthLog)
    if log.value is None:
        return [finding(rule, "flag", f"memory bandwidth not measured: {log.problem}", tier="high")]
    findings: list[Finding] = []
    # the log ran on the declared GPU: by the device it names, and by the inventory's PCI ids
    problems = []
    named = by_name(log.value.device) if log.value.device else None
    if log.value.device is None:
        problems.append(f"{log.name} does not name the device it ran on")
    elif named is None or named.model != spec.model:
        problems.append(f"{log.name} ran on {log.value.device!r} ({named.model if named else 'unknown'})")
    if "gpu_inventory" in evidence_roles(context.document):
        inventory = load(context, "gpu_inventory", SmiLog)
        if inventory.value is None:
            problems.append(inventory.problem)
        else:
            others = [g.bus_id for g in inventory.value.gpus if _model(g.device_id) != spec.model]
            if others:
                problems.append(
                    f"gpu_inventory {inventory.name} shows GPUs that are not {spec.model}: {listing(others)}"
                )
    findings.append(
        finding(
            rule, "flag", f"the bandwidth log is not from the declared {spec.model}: {listing(problems)}", tier="high"
        )
        if problems
        else finding(rule, "pass", f"{log.name} ran on {log.value.device}, the declared {spec.model}")
    )
    rate = log.value.rates_gb_s.get(params.kernel)
    if rate is None:
        findings.append(
            finding(
                rule,
                "flag",
                f"{params.kernel} bandwidth not measured: {log.name} has no {params.kernel} row",
                tier="high",
            )
        )
        return findings
    fraction = rate / spec.bandwidth_gb_s
    ok = params.min_fraction <= fraction <= params.max_fraction
    why = " (above the datasheet peak: not a measurement of this GPU)" if fraction > params.max_fraction else ""
    findings.append(
        finding(
            rule,
            "pass" if ok else "flag",
            f"{params.kernel} {rate:.1f} GB/s is {fraction:.1%}"
            f" of the {spec.model}'s {spec.bandwidth_gb_s:g} GB/s{why}",
            tier="high" if why else None,
            observed=f"{fraction:.4f}",
            expected=f"{params.min_fraction:g} to {params.max_fraction:g}",
        )
    )
    return findings


def _model(device_id: int | None) -> str | None:
    spec = None if device_id is None else by_device_id(device_id)
    return spec.model if spec else None

"""Benchmarks against the hardware they claim to have run on, and perf per watt.

A benchmark log names no GPU the referee can trust (MLPerf's summary names a SUT, vLLM's
result a model). What binds it to the declared hardware is time: the telemetry series,
whose rows carry each GPU's PCI device id, must cover the benchmark's own window with
samples of the declared GPU. An MLPerf system description, when attached, must name the
declared GPU too. A log copied from another machine fails one or the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from defendable_referee.compute.evidence import load
from defendable_referee.compute.gpu_specs import by_model, by_name
from defendable_referee.compute.mlperf import LoadgenDetail, SystemDescription
from defendable_referee.compute.nvidia_smi import SmiLog
from defendable_referee.compute.smi_csv import Telemetry
from defendable_referee.compute.submission import Basis, evidence_roles
from defendable_referee.compute.telemetry import (
    Gap,
    WindowStats,
    gaps,
    host_to_utc,
    identities,
    max_sm_clocks,
    stats,
    timed,
    within,
)
from defendable_referee.compute.vllm_bench import ServingResult
from defendable_referee.compute.window import benchmark_window
from defendable_referee.context import CheckContext
from defendable_referee.findings import listing


@dataclass(frozen=True)
class Binding:
    ok: bool
    message: str


def bind_to_hardware(context: CheckContext, basis: Basis, *, require_telemetry: bool) -> list[Binding]:
    """Whether the attached benchmark ran on the declared GPUs: by telemetry over its window,
    and by the MLPerf system description when one is attached."""
    if basis.hardware is None or basis.window is None:
        return [
            Binding(False, f"cannot bind the benchmark to hardware: {basis.hardware_problem or basis.window_problem}")
        ]
    declared = basis.hardware.gpu_model
    found: list[Binding] = []
    if "system_description" in evidence_roles(context.document):
        found.append(_system_description(context, declared, basis.hardware.gpu_count))
    if require_telemetry:
        found.append(_telemetry_binding(context, basis, declared))
    return found


def _system_description(context: CheckContext, declared: str, count: int) -> Binding:
    system = load(context, "system_description", SystemDescription)
    if system.value is None:
        return Binding(False, system.problem)
    named = system.value.accelerator_model_name
    spec = by_name(named)
    total = system.value.accelerators_per_node * system.value.number_of_nodes
    if spec is None or spec.model != declared:
        what = spec.model if spec else "no GPU the referee knows"
        return Binding(False, f"system description {system.name} names {named!r} ({what}); declared {declared}")
    if total != count:
        return Binding(False, f"system description {system.name} has {total} accelerators; declared {count}")
    return Binding(True, f"system description {system.name} names {named!r} × {total}, the declared {declared}")


def _telemetry_binding(context: CheckContext, basis: Basis, declared: str) -> Binding:
    window = benchmark_window(context, basis.offset)
    if isinstance(window, str):
        return Binding(False, f"no benchmark window to bind: {window}")
    start, end, source = window
    series = load(context, "telemetry", Telemetry)
    if series.value is None:
        return Binding(False, f"the benchmark is not bound to hardware: {series.problem}")
    inside = within(timed(series.value, basis.offset), start, end)
    span = f"{start.isoformat()} to {end.isoformat()}"
    if not inside:
        return Binding(
            False,
            f"telemetry {series.name} has no samples during {source} ({span}): the log is not bound to this hardware",
        )
    wrong = [
        f"{i.gpu} ({i.spec.model if i.spec else 'unknown'}, by {i.how})"
        for i in identities(inside)
        if i.spec is None or i.spec.model != declared
    ]
    if wrong:
        return Binding(
            False, f"during {source} the telemetry shows GPUs other than the declared {declared}: {listing(wrong)}"
        )
    gpus = len({t.sample.gpu for t in inside})
    return Binding(
        True, f"telemetry {series.name} covers {source} ({span}) with {len(inside)} samples of {gpus} × {declared}"
    )


@dataclass(frozen=True)
class PerWatt:
    value: float | None
    problem: str = ""
    throughput: float | None = None
    unit: str = ""
    power_w: float | None = None
    start: datetime | None = None
    end: datetime | None = None
    stats: WindowStats | None = None
    gaps: list[Gap] = field(default_factory=list)


def per_watt(context: CheckContext, basis: Basis, throughput: str, max_gap_s: float) -> PerWatt:
    """Throughput over node power in the benchmark's own window (timestamps joined).

    Plan: 1. the benchmark's throughput and window; 2. the telemetry inside that window;
    3. power over unthrottled samples (throttled ones are excluded and counted)."""
    if basis.window is None:
        return PerWatt(None, f"no run window: {basis.window_problem}")
    # 1.
    if throughput == "samples_per_second":
        detail = load(context, "benchmark_detail", LoadgenDetail)
        if detail.value is None:
            return PerWatt(None, detail.problem)
        rate, unit = detail.value.samples_per_second, "samples/s"
        start, end = detail.value.start, detail.value.end
    else:
        serving = load(context, "serving_benchmark", ServingResult)
        if serving.value is None:
            return PerWatt(None, serving.problem)
        rate, unit = serving.value.output_throughput, "tok/s"
        start, end = host_to_utc(serving.value.start, basis.offset), host_to_utc(serving.value.end, basis.offset)
    if rate is None:
        return PerWatt(None, f"the benchmark reports no {throughput}")
    # 2.
    series = load(context, "telemetry", Telemetry)
    if series.value is None:
        return PerWatt(None, series.problem, rate, unit)
    if series.value.backward_jumps:
        jump = series.value.backward_jumps[0]
        return PerWatt(
            None, f"telemetry {series.name} clock jumps backwards at line {jump.row}: not trusted", rate, unit
        )
    inside = within(timed(series.value, basis.offset), start, end)
    if not inside:
        return PerWatt(
            None, f"telemetry {series.name} has no samples during the benchmark", rate, unit, start=start, end=end
        )
    inventory = load(context, "gpu_inventory", SmiLog) if "gpu_inventory" in evidence_roles(context.document) else None
    figures = stats(inside, max_sm_clocks(inventory.value if inventory else None))
    holes = gaps(inside, start, end, max_gap_s)
    # 3.
    power = figures.mean_power_unthrottled_w
    if power is None or power <= 0:
        return PerWatt(
            None,
            "no unthrottled power samples for every GPU in the benchmark window",
            rate,
            unit,
            None,
            start,
            end,
            figures,
            holes,
        )
    return PerWatt(rate / power, "", rate, unit, power, start, end, figures, holes)


def declared_spec_bandwidth(basis: Basis) -> float | None:
    spec = by_model(basis.hardware.gpu_model) if basis.hardware else None
    return spec.bandwidth_gb_s if spec else None

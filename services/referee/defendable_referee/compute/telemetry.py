"""Figures over a telemetry series, computed by the referee: pure functions of samples.

Time: the series' host-local timestamps are placed in UTC with the submission's declared
host offset, then cut to a window (the run, or one benchmark inside it).

Throttle-aware (as nvbench does): a sample whose SM clock is below 0.75 × the GPU's
maximum SM clock is *throttled*; it is excluded from performance figures (mean SM clock,
utilisation, the power behind a perf-per-watt figure) and counted. The maximum comes from
the series (`clocks.max.sm`) or, failing that, from the nvidia-smi inventory. Temperature
and power limits are read over every sample: a throttled sample is still a hot one.

Multi-GPU: per-GPU means are summed for a node's power; peaks are per sample.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from statistics import fmean

from defendable_referee.compute.gpu_specs import NVIDIA_PCI_VENDOR, GpuSpec, by_device_id, by_name
from defendable_referee.compute.nvidia_smi import SmiLog
from defendable_referee.compute.smi_csv import Sample, Telemetry

THROTTLE_SM_FRACTION = 0.75


def host_to_utc(local: datetime, offset: timedelta) -> datetime:
    """A host-local naive timestamp, in UTC (aware ones pass through, converted)."""
    if local.tzinfo is not None:
        return local.astimezone(UTC)
    return (local - offset).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Timed:
    at: datetime  # UTC
    sample: Sample


def timed(telemetry: Telemetry, offset: timedelta) -> list[Timed]:
    return [Timed(host_to_utc(s.time, offset), s) for s in telemetry.samples]


def within(samples: list[Timed], start: datetime, end: datetime) -> list[Timed]:
    return [t for t in samples if start <= t.at <= end]


def max_sm_clocks(inventory: SmiLog | None) -> dict[str, float]:
    """GPU key (uuid and PCI bus id) -> max SM clock, from an nvidia-smi inventory."""
    found: dict[str, float] = {}
    for gpu in inventory.gpus if inventory else []:
        if gpu.max_sm_clock_mhz is not None:
            for key in (gpu.uuid, gpu.bus_id):
                if key:
                    found[key.upper()] = gpu.max_sm_clock_mhz
    return found


def throttled(sample: Sample, inventory_max: dict[str, float]) -> bool | None:
    """SM clock below 0.75 × max; None when either clock is unknown."""
    maximum = sample.max_sm_clock_mhz or inventory_max.get(sample.gpu.upper())
    if sample.sm_clock_mhz is None or not maximum:
        return None
    return sample.sm_clock_mhz < THROTTLE_SM_FRACTION * maximum


@dataclass(frozen=True)
class Gap:
    gpu: str
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def gaps(samples: list[Timed], start: datetime, end: datetime, max_gap_s: float) -> list[Gap]:
    """Stretches of [start, end] longer than `max_gap_s` with no sample, per GPU (edges included)."""
    found: list[Gap] = []
    for gpu, series in sorted(by_gpu(samples).items()):
        times = [start, *sorted(t.at for t in series), end]
        found += [Gap(gpu, a, b) for a, b in itertools.pairwise(times) if (b - a).total_seconds() > max_gap_s]
    return found


def by_gpu(samples: list[Timed]) -> dict[str, list[Timed]]:
    grouped: dict[str, list[Timed]] = {}
    for t in samples:
        grouped.setdefault(t.sample.gpu, []).append(t)
    return grouped


@dataclass(frozen=True)
class WindowStats:
    gpus: list[str]
    samples: int
    throttled: int  # samples excluded from performance figures
    throttle_unknown: int  # samples whose SM clock or max is not reported
    mean_power_w: float | None  # node total: sum of per-GPU means, every sample
    mean_power_unthrottled_w: float | None  # node total over unthrottled samples only
    max_power_w: float | None  # the highest single-GPU sample
    mean_temperature_c: float | None
    max_temperature_c: float | None
    mean_sm_clock_mhz: float | None  # unthrottled samples
    mean_utilization_pct: float | None  # unthrottled samples
    thermal_slowdown_rows: list[int] = field(default_factory=list)
    thermal_unknown: int = 0  # samples with no thermal-slowdown reading


def stats(samples: list[Timed], inventory_max: dict[str, float]) -> WindowStats:
    states = [(t.sample, throttled(t.sample, inventory_max)) for t in samples]
    clear = [s for s, state in states if state is False]
    grouped: dict[str, list[Sample]] = {}
    clear_grouped: dict[str, list[Sample]] = {}
    for s, state in states:
        grouped.setdefault(s.gpu, []).append(s)
        if state is False:
            clear_grouped.setdefault(s.gpu, []).append(s)
    every = [s for s, _ in states]
    return WindowStats(
        gpus=sorted(grouped),
        samples=len(samples),
        throttled=sum(1 for _, state in states if state is True),
        throttle_unknown=sum(1 for _, state in states if state is None),
        mean_power_w=_node_power(grouped),
        mean_power_unthrottled_w=_node_power(clear_grouped) if len(clear_grouped) == len(grouped) else None,
        max_power_w=_max(s.power_w for s in every),
        mean_temperature_c=_mean(s.temperature_c for s in every),
        max_temperature_c=_max(s.temperature_c for s in every),
        mean_sm_clock_mhz=_mean(s.sm_clock_mhz for s in clear),
        mean_utilization_pct=_mean(s.utilization_pct for s in clear),
        thermal_slowdown_rows=[s.row for s in every if s.thermal_slowdown],
        thermal_unknown=sum(1 for s in every if s.thermal_slowdown is None),
    )


def _node_power(grouped: dict[str, list[Sample]]) -> float | None:
    means = [_mean(s.power_w for s in series) for series in grouped.values()]
    return None if not means or any(m is None for m in means) else sum(m for m in means if m is not None)


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return fmean(present) if present else None


def _max(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


@dataclass(frozen=True)
class Identity:
    gpu: str
    spec: GpuSpec | None
    how: str  # "PCI device 0x2330", "name 'NVIDIA H100 80GB HBM3'", or why it is unknown


def identities(samples: list[Timed]) -> list[Identity]:
    """What each GPU in the series is: by PCI device id where the series has it, else by name."""
    found: list[Identity] = []
    for gpu, series in sorted(by_gpu(samples).items()):
        first = series[0].sample
        if first.device_id is not None:
            if first.vendor_id != NVIDIA_PCI_VENDOR:
                found.append(Identity(gpu, None, f"PCI vendor 0x{first.vendor_id or 0:04X} is not NVIDIA"))
            else:
                found.append(Identity(gpu, by_device_id(first.device_id), f"PCI device 0x{first.device_id:04X}"))
        elif first.name:
            found.append(Identity(gpu, by_name(first.name), f"name {first.name!r}"))
        else:
            found.append(Identity(gpu, None, "no pci.device_id or name column"))
    return found

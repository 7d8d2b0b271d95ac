"""When each piece of evidence says it was taken, against the declared run window.

| role                | its own timestamps                                            |
| ------------------- | ------------------------------------------------------------- |
| `gpu_inventory`     | `<timestamp>` (host-local)                                    |
| `telemetry`         | every sample (host-local)                                     |
| `benchmark_detail`  | `test_datetime` (UTC) to the last event's `time_ms`            |
| `serving_benchmark` | `date` (host-local, the end) minus `duration`                 |

Other roles carry no timestamps of their own; they are bound to the run only by being
attached to it (and, for benchmarks, by the telemetry that must cover them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from defendable_referee.compute.evidence import Loaded, load
from defendable_referee.compute.mlperf import LoadgenDetail
from defendable_referee.compute.nvidia_smi import SmiLog
from defendable_referee.compute.smi_csv import Telemetry
from defendable_referee.compute.submission import evidence_roles
from defendable_referee.compute.telemetry import host_to_utc
from defendable_referee.compute.vllm_bench import ServingResult
from defendable_referee.context import CheckContext

T = TypeVar("T")
TIMESTAMPED = ("gpu_inventory", "telemetry", "benchmark_detail", "serving_benchmark")


@dataclass(frozen=True)
class Span:
    role: str
    name: str
    start: datetime  # UTC
    end: datetime
    points: int  # how many timestamps the evidence carries
    outside: list[datetime]  # those outside the window (widened by slack)


def spans(
    context: CheckContext, start: datetime, end: datetime, offset: timedelta, slack: timedelta
) -> tuple[list[Span], list[Loaded[object]]]:
    """The time span of each attached timestamped evidence item; and the items that could not be read."""
    roles = evidence_roles(context.document)
    found: list[Span] = []
    problems: list[Loaded[object]] = []
    low, high = start - slack, end + slack
    for role in TIMESTAMPED:
        if role not in roles:
            continue
        times, name, problem = _times(context, role, offset)
        if problem is not None:
            problems.append(problem)
            continue
        if times:
            outside = [t for t in times if not low <= t <= high]
            found.append(Span(role, name, min(times), max(times), len(times), outside))
    return found, problems


def benchmark_window(context: CheckContext, offset: timedelta) -> tuple[datetime, datetime, str] | str:
    """(start, end, source) of the benchmark run the submission attaches, or why there is none."""
    detail = load(context, "benchmark_detail", LoadgenDetail)
    if detail.value is not None:
        return detail.value.start, detail.value.end, f"benchmark_detail {detail.name}"
    serving = load(context, "serving_benchmark", ServingResult)
    if serving.value is not None:
        result = serving.value
        return host_to_utc(result.start, offset), host_to_utc(result.end, offset), f"serving_benchmark {serving.name}"
    return "; ".join(p for p in (detail.problem, serving.problem) if p)


def _times(context: CheckContext, role: str, offset: timedelta) -> tuple[list[datetime], str, Loaded[object] | None]:
    if role == "gpu_inventory":
        inventory = load(context, role, SmiLog)
        if inventory.value is None:
            return [], inventory.name, _erase(inventory)
        stamp = inventory.value.timestamp
        return ([host_to_utc(stamp, offset)] if stamp else []), inventory.name, None
    if role == "telemetry":
        series = load(context, role, Telemetry)
        if series.value is None:
            return [], series.name, _erase(series)
        return [host_to_utc(s.time, offset) for s in series.value.samples], series.name, None
    if role == "benchmark_detail":
        detail = load(context, role, LoadgenDetail)
        if detail.value is None:
            return [], detail.name, _erase(detail)
        return [detail.value.start, detail.value.end], detail.name, None
    serving = load(context, role, ServingResult)
    if serving.value is None:
        return [], serving.name, _erase(serving)
    return [host_to_utc(serving.value.start, offset), host_to_utc(serving.value.end, offset)], serving.name, None


def _erase(loaded: Loaded[T]) -> Loaded[object]:
    return Loaded(loaded.role, None, loaded.problem, loaded.name)

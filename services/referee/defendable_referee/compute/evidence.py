"""Evidence files by role: which parser reads which attached file, and loading it.

The submission's `evidence_files` gives each attached file a role; the role names the
parser. What the probe (or an operator) should attach, per role:

| role                 | produced by                                                     | media type       |
| -------------------- | --------------------------------------------------------------- | ---------------- |
| `gpu_inventory`      | `nvidia-smi -q -x`                                              | application/xml  |
| `telemetry`          | `nvidia-smi --query-gpu=FIELDS --format=csv -lms 1000` (below)  | text/csv         |
| `benchmark_summary`  | MLPerf LoadGen `mlperf_log_summary.txt`                         | text/plain       |
| `benchmark_detail`   | MLPerf LoadGen `mlperf_log_detail.txt`                          | text/plain       |
| `system_description` | an MLPerf `systems/<system>.json`                               | application/json |
| `serving_benchmark`  | `vllm bench serve --save-result` JSON                           | application/json |
| `server_log`         | the vLLM server's log                                           | text/plain       |
| `bandwidth_log`      | BabelStream or STREAM stdout                                    | text/plain       |
| `diagnostics`        | `dcgmi diag -r N -j`                                            | application/json |
| `disk_usage`         | `df -P -k PATH`                                                 | text/plain       |
| `uptime`             | `cat /proc/uptime`                                              | text/plain       |

The telemetry FIELDS the checks read: timestamp, index, uuid, name, pci.bus_id,
pci.device_id, clocks.sm, clocks.max.sm, power.draw, power.limit, enforced.power.limit,
temperature.gpu, utilization.gpu, clocks_throttle_reasons.active (run with TZ=UTC, or
declare the host's offset). Media types are not trusted (the role decides the parser). A file is read only from the
local copy the referee fetched and re-hashed (`CheckContext.files`), after its size is
checked; a parsed file is cached by path, size and mtime, so the several rules reading
one file parse it once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Generic, TypeVar

from defendable_referee.compute.dcgm import Diagnostic, parse_diag
from defendable_referee.compute.errors import EvidenceRefused
from defendable_referee.compute.host import DiskUsage, Uptime, parse_df, parse_uptime
from defendable_referee.compute.mlperf import (
    LoadgenDetail,
    LoadgenSummary,
    SystemDescription,
    parse_detail,
    parse_summary,
    parse_system_description,
)
from defendable_referee.compute.nvidia_smi import SmiLog, parse_smi_xml
from defendable_referee.compute.smi_csv import Telemetry, parse_smi_csv
from defendable_referee.compute.stream_log import BandwidthLog, parse_bandwidth_log
from defendable_referee.compute.submission import evidence_roles
from defendable_referee.compute.vllm_bench import ModelLoad, ServingResult, parse_server_log, parse_serving_result
from defendable_referee.context import CheckContext

T = TypeVar("T")
MAX_EVIDENCE_BYTES = 64 * 1024 * 1024  # the largest any parser accepts; each checks its own limit too

PARSERS: dict[str, tuple[Callable[[bytes], Any], type]] = {
    "gpu_inventory": (parse_smi_xml, SmiLog),
    "telemetry": (parse_smi_csv, Telemetry),
    "benchmark_summary": (parse_summary, LoadgenSummary),
    "benchmark_detail": (parse_detail, LoadgenDetail),
    "system_description": (parse_system_description, SystemDescription),
    "serving_benchmark": (parse_serving_result, ServingResult),
    "server_log": (parse_server_log, ModelLoad),
    "bandwidth_log": (parse_bandwidth_log, BandwidthLog),
    "diagnostics": (parse_diag, Diagnostic),
    "disk_usage": (parse_df, DiskUsage),
    "uptime": (parse_uptime, Uptime),
}
ROLES: tuple[str, ...] = tuple(PARSERS)


@dataclass(frozen=True)
class Loaded(Generic[T]):
    """A role's evidence, parsed — or the reason there is none (`value` None, `problem` set)."""

    role: str
    value: T | None
    problem: str = ""
    name: str = ""  # the attached item's file name, for messages


def load(context: CheckContext, role: str, kind: type[T]) -> Loaded[T]:
    """The evidence `evidence_files[role]` names, parsed by the role's parser."""
    produces = PARSERS[role][1]
    assert produces is kind, f"role {role} parses to {produces.__name__}, not {kind.__name__}"
    reference = evidence_roles(context.document).get(role)
    if reference is None:
        return Loaded(role, None, f"evidence_files names no {role}")
    cited = context.cited(reference)
    if cited is None:
        return Loaded(role, None, f"{role} names {reference[:80]!r}, which is not attached evidence")
    ref, _ = cited
    path = context.files.get(ref.id)
    if path is None:
        return Loaded(role, None, f"{role} {ref.name}: the referee holds no copy of its bytes", ref.name)
    try:
        value = _parse(str(path), role)
    except EvidenceRefused as exc:
        return Loaded(role, None, f"{role} {ref.name}: {exc}", ref.name)
    assert isinstance(value, kind)
    return Loaded(role, value, "", ref.name)


def role_of(context: CheckContext, reference: str) -> str | None:
    """The role `evidence_files` gives the attached item `reference` names (by id, name or digest)."""
    cited = context.cited(reference)
    if cited is None:
        return None
    for role, named in evidence_roles(context.document).items():
        other = context.cited(named)
        if other is not None and other[0].id == cited[0].id and role in PARSERS:
            return role
    return None


def _parse(path: str, role: str) -> Any:
    stat = Path(path).stat()
    if stat.st_size > MAX_EVIDENCE_BYTES:
        raise EvidenceRefused(f"{stat.st_size} bytes; the limit is {MAX_EVIDENCE_BYTES}")
    return _parse_cached(path, stat.st_size, stat.st_mtime_ns, role)


@lru_cache(maxsize=64)
def _parse_cached(path: str, size: int, mtime_ns: int, role: str) -> Any:
    # size and mtime are part of the key so a rewritten file is parsed again.
    data = Path(path).read_bytes()
    if len(data) != size:
        raise EvidenceRefused(f"changed while being read ({size} bytes became {len(data)})")
    return PARSERS[role][0](data)

"""Test kit for the Compute lane: evidence bundles on disk, submissions, telemetry series.

The real captures are under fixtures/ (README.md names their sources). No real
`--query-gpu` series sampled under load was found in public repositories, so `series()`
writes one in nvidia-smi's documented CSV format (the header nvidia-smi prints for the
query below, values with units as `--format=csv` writes them); every test that needs
load telemetry builds it here, openly, with the figures it states.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from defendable_canonical.model import EvidenceRef, Finding, Verdict
from defendable_referee.check import check_submission
from defendable_referee.sheet import LoadedSheet, load_sheet

FIXTURES = Path(__file__).parent / "fixtures"
SHEETS = Path(__file__).parents[3] / "services/referee/defendable_referee/flight_sheets"
MLPERF_H100 = FIXTURES / "mlperf/h100-sxm-retinanet-offline"
XML = FIXTURES / "nvidia-smi-xml"

H100 = ("NVIDIA H100 80GB HBM3", "0x233010DE", 1980.0)
A100 = ("NVIDIA A100-SXM4-80GB", "0x20B210DE", 1410.0)
L40S = ("NVIDIA L40S", "0x26B910DE", 2520.0)

HEADER = (
    "timestamp, index, uuid, name, pci.bus_id, pci.device_id, clocks.current.sm [MHz], clocks.max.sm [MHz],"
    " power.draw [W], power.limit [W], enforced.power.limit [W], temperature.gpu, utilization.gpu [%],"
    " clocks_throttle_reasons.active"
)


@dataclass
class Row:
    """One sample's readings; `series()` varies them per row through `shape`."""

    sm_fraction: float = 1.0  # SM clock as a fraction of max
    power_w: float = 650.0
    limit_w: float = 700.0
    enforced_w: float = 700.0
    temperature_c: float = 64.0
    utilization: float = 98.0
    reasons: int = 0  # clocks_throttle_reasons.active bitmask


def series(
    start: datetime,
    count: int,
    *,
    every_s: float = 5.0,
    gpus: int = 1,
    board: tuple[str, str, float] = H100,
    shape: Any = None,
    times: Iterable[datetime] | None = None,
) -> bytes:
    """A `--query-gpu` CSV: `count` samples per GPU from `start` (host-local), `every_s` apart,
    or at the given `times`; `shape(i) -> Row` sets sample i's readings (default: steady load)."""
    name, device_id, max_sm = board
    lines = [HEADER]
    stamps = list(times) if times is not None else [start + timedelta(seconds=i * every_s) for i in range(count)]
    for i, at in enumerate(stamps):
        row: Row = shape(i) if shape else Row()
        for g in range(gpus):
            stamp = (at + timedelta(milliseconds=7 * g)).strftime("%Y/%m/%d %H:%M:%S.%f")[:-3]
            lines.append(
                f"{stamp}, {g}, GPU-{g:08d}-0000-4000-8000-00000000abcd, {name}, 00000000:{0x19 + g:02X}:00.0,"
                f" {device_id}, {max_sm * row.sm_fraction:.0f} MHz, {max_sm:.0f} MHz, {row.power_w:.2f} W,"
                f" {row.limit_w:.2f} W, {row.enforced_w:.2f} W, {row.temperature_c:.0f}, {row.utilization:.0f} %,"
                f" 0x{row.reasons:016x}"
            )
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Bundle:
    """Attached evidence: files written under `root`, each with a real sha256, and their roles."""

    root: Path
    evidence: list[EvidenceRef] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)

    def add(self, role: str | None, name: str, data: bytes, media_type: str = "text/plain") -> str:
        evidence_id = f"ev_{len(self.evidence) + 1}"
        path = self.root / f"{evidence_id}-{name}"
        path.write_bytes(data)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.evidence.append(
            EvidenceRef(id=evidence_id, name=name, media_type=media_type, size=len(data), sha256=digest)
        )
        self.files[evidence_id] = path
        if role is not None:
            self.roles[role] = name
        return name

    def fixture(self, role: str, path: Path, media_type: str = "text/plain") -> str:
        return self.add(role, path.name, path.read_bytes(), media_type)


def sheet(sheet_id: str) -> LoadedSheet:
    path = SHEETS / f"{sheet_id}.json"
    return load_sheet(path.read_bytes(), source=path.name)


def submission(
    bundle: Bundle,
    *,
    start: str,
    end: str,
    model: str,
    count: int,
    memory_gb: int,
    driver: str = "510",
    cuda: str = "11.4",
    power_limit_w: float | None = None,
    claims: list[dict[str, Any]] | None = None,
    offset: str = "+00:00",
    **extra: Any,
) -> dict[str, Any]:
    hardware: dict[str, Any] = {
        "gpu_model": model,
        "gpu_count": count,
        "memory_gb_per_gpu": memory_gb,
        "driver_floor": driver,
        "cuda_floor": cuda,
    }
    if power_limit_w is not None:
        hardware["power_limit_w"] = power_limit_w
    return {
        "assignment_id": "asg_compute_1",
        "run_window": {"start": start, "end": end, "host_utc_offset": offset},
        "declared_hardware": hardware,
        "evidence_files": dict(bundle.roles),
        "claims": claims or [],
        **extra,
    }


def claim(metric: str, value: float, unit: str, *evidence: str) -> dict[str, Any]:
    return {"metric": metric, "value": value, "unit": unit, "evidence": list(evidence)}


def run(sheet_id: str, document: dict[str, Any], bundle: Bundle) -> tuple[list[Finding], Verdict]:
    return check_submission(sheet(sheet_id), msgspec.json.encode(document), bundle.evidence, files=bundle.files)


def unsatisfied(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.status != "pass"]


def of_kind(findings: list[Finding], kind: str) -> list[Finding]:
    return [f for f in findings if f.kind == kind]


def flagged(findings: list[Finding], text: str, *, tier: str | None = None) -> Finding:
    """The one unsatisfied finding whose message contains `text` (and has `tier`, if given)."""
    hits = [f for f in unsatisfied(findings) if text in f.message and (tier is None or f.tier == tier)]
    assert hits, f"no unsatisfied finding mentions {text!r}; got: {[f.message for f in unsatisfied(findings)]}"
    return hits[0]

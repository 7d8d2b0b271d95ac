"""The probe's submission: declarations from what the machine reported, figures the referee re-derives.

The document follows the Compute lane's format (defendable_referee.compute.submission) and
the chosen sheet's `required_output_schema`: only the roles, hardware fields, metrics and
targets that schema admits are written. Every claim is computed by the referee's own
derivation (`claims.DERIVE`) over the very files that will be attached, so the probe states
no number the referee cannot re-derive; a figure the evidence does not bear (no power
reading, say) is left out rather than guessed.

Plan of `build`: 1. give each collected file its role, where the sheet reads that role;
2. declarations, cut to the fields the sheet admits; 3. the claims, derived; 4. targets.
"""

from __future__ import annotations

import hashlib
import math
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from defendable_canonical.model import EvidenceRef
from defendable_cli.collect import Evidence, Host
from defendable_referee.compute.claims import DERIVE, NotMeasured
from defendable_referee.compute.gpu_specs import by_device_id, by_name
from defendable_referee.compute.metric_names import METRICS
from defendable_referee.compute.nvidia_smi import SmiLog
from defendable_referee.compute.params import BenchmarkScoreParams
from defendable_referee.compute.submission import basis
from defendable_referee.context import CheckContext
from defendable_referee.sheet import FlightSheet, params_for

HOST_UTC_OFFSET = "+00:00"  # every tool runs with TZ=UTC (collect.UTC_ENV)
DEFAULT_TARGET = 1.0  # samples/s, where the sheet sets no floor: the run only has to have measured something


@dataclass(frozen=True)
class Shape:
    """What a sheet's output schema admits."""

    roles: frozenset[str]
    required_roles: frozenset[str]
    hardware_fields: frozenset[str]
    metrics: tuple[str, ...]
    targets: frozenset[str]
    cpu_only: bool  # declared_hardware.gpu_count must be 0: a run that used no GPU
    notes: bool

    @classmethod
    def of(cls, sheet: FlightSheet) -> Shape:
        properties: dict[str, Any] = sheet.required_output_schema.get("properties", {})
        files = properties.get("evidence_files", {})
        hardware = properties.get("declared_hardware", {}).get("properties", {})
        metric = properties.get("claims", {}).get("items", {}).get("properties", {}).get("metric", {})
        return cls(
            roles=frozenset(files.get("properties", {})),
            required_roles=frozenset(files.get("required", [])),
            hardware_fields=frozenset(hardware),
            metrics=tuple(m for m in metric.get("enum", ()) if m in METRICS),
            targets=frozenset(properties.get("targets", {}).get("properties", {})),
            cpu_only=hardware.get("gpu_count", {}).get("const") == 0,
            notes="notes" in properties,
        )


def declare_cpu(host: Host) -> dict[str, Any]:
    return {"gpu_count": 0, "cpu_model": host.cpu_model, "logical_cpus": host.logical_cpus, "memory_gb": host.memory_gb}


def declare_gpus(log: SmiLog) -> tuple[dict[str, Any] | None, str]:
    """The GPU declaration the inventory supports, or None and why there is none.

    gpu_model is the referee's key for the board's PCI device id; the floors are the versions
    the inventory reports (they meet themselves); the power limit is the one in force."""
    if not log.gpus:
        return None, "nvidia-smi lists no GPU"
    models = set()
    for gpu in log.gpus:
        spec = by_device_id(gpu.device_id) if gpu.device_id is not None else None
        if spec is None:
            device = "no device id" if gpu.device_id is None else f"PCI device 0x{gpu.device_id:04X}"
            return None, f"{gpu.product_name or gpu.bus_id} ({device}) is not a GPU the referee identifies"
        models.add(spec)
    if len(models) != 1:
        return None, f"the GPUs are of {len(models)} models ({', '.join(sorted(m.model for m in models))})"
    if not log.driver_version or not log.cuda_version:
        return None, "nvidia-smi reports no driver or CUDA version"
    spec = models.pop()
    declared: dict[str, Any] = {
        "gpu_model": spec.model,
        "gpu_count": len(log.gpus),
        "memory_gb_per_gpu": spec.memory_gb,
        "driver_floor": log.driver_version,
        "cuda_floor": log.cuda_version,
    }
    limits = {gpu.power_limit_effective_w for gpu in log.gpus}
    if len(limits) == 1 and (limit := limits.pop()) is not None:
        declared["power_limit_w"] = limit
    return declared, ""


def system_description(log: SmiLog, host: Host, gpu_model: str) -> dict[str, Any]:
    """An MLPerf `systems/<system>.json` for this node: the accelerator as nvidia-smi names it
    where the referee reads that name as the declared model, else by the referee's key."""
    gpu = log.gpus[0]
    named = by_name(gpu.product_name)
    return {
        "system_name": host.name,
        "number_of_nodes": 1,
        "accelerators_per_node": len(log.gpus),
        "accelerator_model_name": gpu.product_name if named and named.model == gpu_model else gpu_model,
        "accelerator_memory_capacity": f"{gpu.memory_total_mib:.0f} MiB" if gpu.memory_total_mib else "",
        "host_processor_model_name": host.cpu_model,
        "host_memory_capacity": f"{host.memory_gb} GB",
        "operating_system": platform.platform(),
        "framework": "defendable probe",
    }


def references(evidence: Sequence[Evidence]) -> tuple[list[EvidenceRef], dict[str, Path]]:
    """Evidence refs as the referee will hold them (ids local to this check), and their files."""
    refs: list[EvidenceRef] = []
    files: dict[str, Path] = {}
    for number, item in enumerate(evidence, start=1):
        data = item.path.read_bytes()
        evidence_id = f"ev_{number}"
        refs.append(
            EvidenceRef(
                id=evidence_id,
                name=item.name,
                media_type=item.media_type,
                size=len(data),
                sha256="sha256:" + hashlib.sha256(data).hexdigest(),
            )
        )
        files[evidence_id] = item.path
    return refs, files


def target_floor(sheet: FlightSheet) -> float:
    """The lowest throughput target the sheet lets a submission declare (its benchmark floor)."""
    for rule in sheet.rules:
        if rule.kind == "benchmark_score":
            params = params_for(rule)
            assert isinstance(params, BenchmarkScoreParams)
            if params.floor_samples_per_second is not None:
                return params.floor_samples_per_second
    return DEFAULT_TARGET


def build(
    sheet: FlightSheet,
    evidence: Sequence[Evidence],
    *,
    assignment_id: str,
    start: datetime,
    end: datetime,
    hardware: dict[str, Any],
    min_samples_per_second: float | None,
    notes: str,
) -> dict[str, Any]:
    shape = Shape.of(sheet)
    # 1.
    roles = {item.role: item.name for item in evidence if item.role in shape.roles}
    missing = sorted(shape.required_roles - set(roles))
    if missing:
        raise ValueError(f"{sheet.key} needs {', '.join(missing)}, which this run did not produce")
    # 2.
    document: dict[str, Any] = {
        "assignment_id": assignment_id,
        "run_window": {
            "start": start.isoformat(timespec="milliseconds"),
            "end": end.isoformat(timespec="milliseconds"),
            "host_utc_offset": HOST_UTC_OFFSET,
        },
        "declared_hardware": {k: v for k, v in hardware.items() if k in shape.hardware_fields},
        "evidence_files": roles,
        "claims": [],
    }
    if shape.notes:
        document["notes"] = notes
    # 3.
    refs, files = references(evidence)
    context = CheckContext(sheet=sheet, document=document, evidence=refs, files=files)
    grounds = basis(document)
    claims = []
    for metric in shape.metrics:
        unit, needs = METRICS[metric]
        if not all(role in roles for role in needs):
            continue
        try:
            value = DERIVE[metric](context, grounds)
        except NotMeasured:
            continue
        if not math.isfinite(value):
            continue
        claims.append({"metric": metric, "value": value, "unit": unit, "evidence": [roles[r] for r in needs]})
    document["claims"] = claims
    # 4.
    if "min_samples_per_second" in shape.targets:
        document["targets"] = {"min_samples_per_second": min_samples_per_second or target_floor(sheet)}
    return document

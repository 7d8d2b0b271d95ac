"""The `gpu_spec` and `system_readiness` rule kinds: what the machine is, and whether it is fit to run.

`gpu_spec` identifies each GPU by its PCI device id and frame-buffer size, never by the
product name alone (a name is a string anyone can edit; the id is what the board reports),
and checks the vendor is NVIDIA at all — nvidia-smi can be installed on a host without
NVIDIA hardware. Granularity: one finding each for vendor, count, identity, memory,
driver floor and CUDA floor.

`system_readiness` reads the same inventory for persistence mode, ECC, retired pages and
remapped rows, plus the optional host evidence (DCGM diagnostic, free disk, uptime, model
load). One finding per enabled check.
"""

from __future__ import annotations

from defendable_canonical.model import Finding
from defendable_referee.compute.dcgm import Diagnostic
from defendable_referee.compute.evidence import load
from defendable_referee.compute.gpu_specs import NVIDIA_PCI_VENDOR, by_device_id, by_model
from defendable_referee.compute.host import DiskUsage, Uptime
from defendable_referee.compute.nvidia_smi import GpuSnapshot, SmiLog
from defendable_referee.compute.params import GpuSpecParams, SystemReadinessParams
from defendable_referee.compute.quantity import version_tuple
from defendable_referee.compute.submission import basis, evidence_roles
from defendable_referee.compute.vllm_bench import ModelLoad
from defendable_referee.context import CheckContext
from defendable_referee.findings import finding, listing
from defendable_referee.sheet import Rule, params_for


def _name(gpu: GpuSnapshot) -> str:
    return f"{gpu.bus_id or gpu.uuid} ({gpu.product_name or 'unnamed'})"


def check_gpu_spec(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, GpuSpecParams)
    grounds = basis(context.document)
    inventory = load(context, "gpu_inventory", SmiLog)
    if inventory.value is None:
        return [finding(rule, "flag", f"no GPU inventory to verify the declared hardware against: {inventory.problem}")]
    log, declared = inventory.value, grounds.hardware
    if declared is None:
        return [finding(rule, "flag", f"nothing declared to verify: {grounds.hardware_problem}")]
    spec = by_model(declared.gpu_model)
    if spec is None:
        return [
            finding(rule, "flag", f"declared gpu_model {declared.gpu_model!r} is not a GPU the referee can identify")
        ]
    gpus = log.gpus
    findings: list[Finding] = []
    # vendor: the PCI vendor id the board reports
    foreign = [
        f"{_name(g)} vendor {'unreported' if g.vendor_id is None else f'0x{g.vendor_id:04X}'}"
        for g in gpus
        if g.vendor_id != NVIDIA_PCI_VENDOR
    ]
    if not gpus or foreign:
        why = listing(foreign) if foreign else f"{inventory.name} lists no GPU"
        findings.append(finding(rule, "flag", f"not NVIDIA hardware (PCI vendor 0x10DE): {why}", tier="high"))
    else:
        findings.append(finding(rule, "pass", f"all {len(gpus)} GPUs report PCI vendor 0x10DE (NVIDIA)"))
    # count: the GPUs listed, and the log's own attached_gpus
    problems = []
    if params.count_must_match and len(gpus) != declared.gpu_count:
        problems.append(f"{inventory.name} lists {len(gpus)} GPUs; declared {declared.gpu_count}")
    if log.attached_gpus is not None and log.attached_gpus != len(gpus):
        problems.append(f"it says attached_gpus {log.attached_gpus} but lists {len(gpus)} (an edited or partial file)")
    findings.append(
        finding(rule, "flag", "; ".join(problems), observed=str(len(gpus)), expected=str(declared.gpu_count))
        if problems
        else finding(
            rule, "pass", f"{len(gpus)} GPUs, as declared", observed=str(len(gpus)), expected=str(declared.gpu_count)
        )
    )
    # identity: by PCI device id, whatever the product name says
    wrong = []
    for gpu in gpus:
        found = by_device_id(gpu.device_id) if gpu.device_id is not None else None
        if found is None or found.model != spec.model:
            device = "no device id" if gpu.device_id is None else f"device 0x{gpu.device_id:04X}"
            wrong.append(f"{_name(gpu)} is {found.model if found else 'unknown'} by {device}")
    findings.append(
        finding(
            rule,
            "flag",
            f"GPUs that are not the declared {spec.model}: {listing(wrong)}",
            tier="high",
            expected=spec.model,
        )
        if wrong
        else finding(
            rule,
            "pass",
            f"every GPU is {spec.model} by PCI device id ({listing([f'0x{d:04X}' for d in spec.device_ids])})",
        )
    )
    # memory: the frame buffer must be the declared model's, and so must the declaration
    off = [
        f"{_name(g)} {g.memory_total_mib or 'no'} MiB"
        for g in gpus
        if g.memory_total_mib is None or not spec.memory_fits(g.memory_total_mib)
    ]
    if declared.memory_gb_per_gpu != spec.memory_gb:
        off.append(f"declared {declared.memory_gb_per_gpu} GB per GPU; a {spec.model} has {spec.memory_gb} GB")
    findings.append(
        finding(
            rule, "flag", f"memory does not match a {spec.model} ({spec.memory_gb} GB): {listing(off)}", tier="high"
        )
        if off
        else finding(rule, "pass", f"every GPU's frame buffer fits a {spec.memory_gb} GB {spec.model}")
    )
    findings.append(_floor(rule, "driver", log.driver_version, declared.driver_floor))
    findings.append(_floor(rule, "CUDA", log.cuda_version, declared.cuda_floor))
    return findings


def _floor(rule: Rule, what: str, reported: str | None, floor: str) -> Finding:
    have, need = version_tuple(reported or ""), version_tuple(floor)
    if need is None:
        return finding(rule, "flag", f"declared {what} floor {floor!r} is not a dotted version")
    if have is None:
        return finding(
            rule, "flag", f"the inventory reports no {what} version (read {reported!r})", expected=f"≥ {floor}"
        )
    ok = have >= need
    return finding(
        rule,
        "pass" if ok else "flag",
        f"{what} {reported} {'meets' if ok else 'is below'} the floor {floor}",
        observed=reported,
        expected=f"≥ {floor}",
    )


def check_system_readiness(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, SystemReadinessParams)
    inventory = load(context, "gpu_inventory", SmiLog)
    if inventory.value is None:
        return [finding(rule, "flag", f"no GPU inventory to judge readiness from: {inventory.problem}")]
    gpus = inventory.value.gpus
    findings: list[Finding] = []
    if params.require_persistence_mode:
        off = [f"{_name(g)}: {g.persistence_mode or 'not reported'}" for g in gpus if g.persistence_mode != "Enabled"]
        findings.append(
            finding(rule, "flag", f"persistence mode is not enabled: {listing(off)}")
            if off or not gpus
            else finding(rule, "pass", f"persistence mode enabled on all {len(gpus)} GPUs")
        )
    if params.require_ecc:
        findings.append(_ecc(rule, gpus))
    findings.append(_memory_health(rule, gpus, params.max_retired_pages))
    roles = evidence_roles(context.document)
    if "diagnostics" in roles or params.require_diagnostics:
        findings.append(_diagnostics(rule, context, params))
    if params.min_free_disk_gb is not None:
        findings.append(_disk(rule, context, params.min_free_disk_gb, params.disk_mount))
    if params.require_uptime_covers_run:
        findings.append(_uptime(rule, context))
    if params.max_model_load_s is not None:
        findings.append(_model_load(rule, context, params.max_model_load_s))
    return findings


def _ecc(rule: Rule, gpus: list[GpuSnapshot]) -> Finding:
    problems = []
    for gpu in gpus:
        if gpu.ecc_mode != "Enabled":
            problems.append(f"{_name(gpu)} ECC {gpu.ecc_mode or 'not reported'}")
        errors = [n for n in (gpu.dram_uncorrectable_volatile, gpu.dram_uncorrectable_aggregate) if n]
        if errors:
            problems.append(f"{_name(gpu)} {max(errors)} uncorrectable DRAM ECC errors")
    if problems or not gpus:
        return finding(rule, "flag", f"ECC: {listing(problems) or 'no GPU listed'}")
    return finding(rule, "pass", f"ECC enabled on all {len(gpus)} GPUs, no uncorrectable DRAM errors")


def _memory_health(rule: Rule, gpus: list[GpuSnapshot], max_retired: int) -> Finding:
    problems = []
    for gpu in gpus:
        retired = (gpu.retired_pages_single_bit or 0) + (gpu.retired_pages_double_bit or 0)
        if retired > max_retired:
            problems.append(f"{_name(gpu)} {retired} retired pages")
        for what, state in (
            ("a page retirement pending", gpu.retirement_pending),
            ("a row remap failed", gpu.remapped_rows_failure),
            ("a row remap pending", gpu.remapped_rows_pending),
        ):
            if state == "Yes":
                problems.append(f"{_name(gpu)} has {what}")
    if problems:
        return finding(rule, "flag", f"GPU memory is degraded: {listing(problems)}")
    return finding(rule, "pass", f"no retired pages beyond {max_retired} and no pending or failed row remaps")


def _diagnostics(rule: Rule, context: CheckContext, params: SystemReadinessParams) -> Finding:
    loaded = load(context, "diagnostics", Diagnostic)
    if loaded.value is None:
        return finding(rule, "flag", f"no DCGM diagnostic: {loaded.problem}")
    diag = loaded.value
    failed = [f"{r.test} on GPU {r.gpus}" for r in diag.results if r.status in ("fail", "other")]
    warned = [f"{r.test} on GPU {r.gpus}" for r in diag.results if r.status == "warn"]
    if diag.runtime_error or failed:
        why = diag.runtime_error or ""
        return finding(rule, "flag", f"DCGM diagnostic {loaded.name} failed: {listing(failed) or why}", tier="high")
    if warned:
        return finding(
            rule, "flag", f"DCGM diagnostic {loaded.name} warns: {listing(warned)}", tier=params.diagnostics_warn_tier
        )
    return finding(
        rule,
        "pass",
        f"DCGM {diag.version or ''} diagnostic {loaded.name}: {len(diag.results)} results, no failure"
        " (a pass means DCGM found nothing at its level, not that the GPU is proven healthy)",
    )


def _disk(rule: Rule, context: CheckContext, minimum_gb: float, mount: str | None) -> Finding:
    loaded = load(context, "disk_usage", DiskUsage)
    if loaded.value is None:
        return finding(rule, "flag", f"free disk not measured: {loaded.problem}", tier="high")
    systems = [f for f in loaded.value.filesystems if mount is None or f.mount == mount]
    if len(systems) != 1:
        what = f"mount {mount}" if mount else "exactly one file system"
        return finding(rule, "flag", f"free disk not measured: {loaded.name} does not show {what}", tier="high")
    free = systems[0].available_bytes / 1e9
    ok = free >= minimum_gb
    return finding(
        rule,
        "pass" if ok else "flag",
        f"{free:.1f} GB free on {systems[0].mount}; {minimum_gb:g} GB required",
        observed=f"{free:.1f}",
        expected=f"≥ {minimum_gb:g}",
    )


def _uptime(rule: Rule, context: CheckContext) -> Finding:
    grounds = basis(context.document)
    loaded = load(context, "uptime", Uptime)
    if loaded.value is None:
        return finding(rule, "flag", f"uptime not measured: {loaded.problem}", tier="high")
    if grounds.window is None:
        return finding(rule, "flag", f"no run window to compare uptime with: {grounds.window_problem}")
    up, run = loaded.value.seconds, grounds.window.seconds
    ok = up >= run
    return finding(
        rule,
        "pass" if ok else "flag",
        f"host up {up:.0f} s {'covers' if ok else 'is shorter than'} the {run:.0f} s run"
        + ("" if ok else ": it booted during the run"),
        observed=f"{up:.0f}",
        expected=f"≥ {run:.0f}",
    )


def _model_load(rule: Rule, context: CheckContext, maximum_s: float) -> Finding:
    loaded = load(context, "server_log", ModelLoad)
    if loaded.value is None:
        return finding(rule, "flag", f"model load not measured: {loaded.problem}", tier="high")
    load_s = loaded.value.seconds
    ok = load_s <= maximum_s
    return finding(
        rule,
        "pass" if ok else "flag",
        f"model loaded in {load_s:.1f} s ({loaded.value.gib:.2f} GiB, slowest of {loaded.value.loads} workers);"
        f" limit {maximum_s:g} s",
        observed=f"{load_s:.1f}",
        expected=f"≤ {maximum_s:g}",
    )

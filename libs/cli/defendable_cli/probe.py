"""`defendable probe`: measure a compute run on this machine and submit it as evidence.

Exit codes: 0 collected (and, unless --no-submit, submitted and checked: the verdict is
printed), 2 bad usage, 3 collection failed, 4 the API refused or could not be reached.

Plan of `probe`:
1. arguments, and a server that answers for the key (before minutes are spent measuring);
2. the host, and whether it has NVIDIA GPUs that can run the workload: a GPU run needs the
   PCI bus, nvidia-smi, a GPU model the referee identifies, and torch with CUDA; anything
   less is a CPU compute run, and the probe says why;
3. the sheet, which must be able to read what this run produces;
4. collection, with the run window open: inventory, DCGM, telemetry in the background,
   disk, the LoadGen benchmark, the bandwidth run, uptime;
5. the submission (compute_submission.py), checked here first with the referee's own code;
6. submit it, wait for the referee's verdict, print it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec

from defendable.client import ApiError, Client
from defendable_canonical.model import AgentProfile, Finding, Verdict
from defendable_cli import collect, compute_submission, process
from defendable_cli.collect import CollectionFailed, Evidence, GpuPresence, Host
from defendable_cli.progress import Progress
from defendable_referee.check import check_submission
from defendable_referee.compute.dcgm import parse_diag
from defendable_referee.compute.errors import EvidenceRefused
from defendable_referee.compute.host import parse_df, parse_uptime
from defendable_referee.compute.mlperf import parse_summary
from defendable_referee.compute.nvidia_smi import SmiLog, parse_smi_xml
from defendable_referee.compute.smi_csv import parse_smi_csv
from defendable_referee.compute.stream_log import parse_bandwidth_log
from defendable_referee.errors import FlightSheetInvalid, UnknownFlightSheet
from defendable_referee.sheet import FlightSheet, load_library, load_sheet

T = TypeVar("T")
GPU_SHEET = "compute_benchmark_score_validation_v1@1.0.0"
CPU_SHEET = "compute_cpu_benchmark_v1@1.0.0"
MIN_DURATION_S, MAX_DURATION_S = 1.0, 3600.0
CHECK_TIMEOUT_S = 180.0
API_TIMEOUT_S = 30.0
EXIT_COLLECTION, EXIT_API = 3, 4


class UsageError(Exception):
    """Exit 2."""


class ApiFailed(Exception):
    """Exit 4: the message carries the server's problem detail, or why it could not be reached."""


@dataclass
class Run:
    """What one probe collected, as it collects it."""

    out: Path
    progress: Progress
    host: Host
    start: datetime
    evidence: list[Evidence] = field(default_factory=list)
    hardware: dict[str, Any] = field(default_factory=dict)
    gpu_log: SmiLog | None = None
    why_cpu: str = ""

    @property
    def on_gpu(self) -> bool:
        return self.gpu_log is not None


def probe(args: argparse.Namespace) -> int:
    try:
        return _probe(args)
    except UsageError as exc:
        print(f"defendable: {exc}", file=sys.stderr)
        return 2
    except (CollectionFailed, process.ProcessFailed) as exc:
        print(f"defendable: collection failed: {exc}", file=sys.stderr)
        return EXIT_COLLECTION
    except ApiFailed as exc:
        print(f"defendable: {exc}", file=sys.stderr)
        return EXIT_API


def _probe(args: argparse.Namespace) -> int:
    # 1.
    url = args.url or os.environ.get("DEFENDABLE_URL", "")
    key = args.key or os.environ.get("DEFENDABLE_SUBMITTER_KEY", "")
    if not args.no_submit and not url:
        raise UsageError("give --url or set DEFENDABLE_URL (or collect only, with --no-submit)")
    if not args.no_submit and not url.startswith(("http://", "https://")):
        raise UsageError(f"--url needs an http(s) URL, got {url[:100]!r}")
    if not args.no_submit and not key:
        raise UsageError("give --key or set DEFENDABLE_SUBMITTER_KEY: a submitter key (or --no-submit)")
    if not MIN_DURATION_S <= args.duration <= MAX_DURATION_S:
        raise UsageError(f"--duration must be {MIN_DURATION_S:g} to {MAX_DURATION_S:g} seconds, not {args.duration:g}")
    if not args.disk.is_dir():
        raise UsageError(f"--disk {args.disk} is not a directory")
    if find_spec("mlperf_loadgen") is None:
        raise CollectionFailed("MLPerf LoadGen is not installed: pip install mlcommons-loadgen")
    client = None if args.no_submit else Client(url, key, timeout=API_TIMEOUT_S)
    try:
        with _workdir(args.out) as out:
            return _collect_and_submit(args, client, out)
    finally:
        if client is not None:
            client.close()


def _collect_and_submit(args: argparse.Namespace, client: Client | None, out: Path) -> int:
    progress = Progress()
    # 2.
    start = datetime.now(UTC)
    host = collect.host_facts()
    progress.step("host", f"{host.cpu_model}, {host.logical_cpus} logical CPUs, {host.memory_gb} GB memory")
    run = Run(out=out, progress=progress, host=host, start=start)
    _find_gpus(run, collect.gpu_presence(out))
    # 3.
    ref = args.sheet or (GPU_SHEET if run.on_gpu else CPU_SHEET)
    sheet = _sheet(client, ref)
    progress.step("sheet", f"{sheet.key}: {sheet.title}")
    shape = compute_submission.Shape.of(sheet)
    _fits(sheet, shape, run)
    # 4.
    _collect(run, args.duration, args.disk)
    end = datetime.now(UTC)
    # 5.
    notes = (
        "Collected by defendable probe on an NVIDIA GPU run."
        if run.on_gpu
        else f"Collected by defendable probe. CPU compute run: {_digitless(run.why_cpu)}."
    )
    try:
        document = compute_submission.build(
            sheet,
            run.evidence,
            assignment_id=args.assignment or "probe",
            start=start,
            end=end,
            hardware=run.hardware,
            min_samples_per_second=args.min_samples_per_second,
            notes=notes,
        )
    except ValueError as exc:
        raise CollectionFailed(str(exc)) from exc
    refs, files = compute_submission.references(run.evidence)
    findings, verdict = check_submission(sheet, msgspec.json.encode(document), refs, files=files)
    claimed = len(document["claims"])
    progress.step("claims", f"{claimed} figures, each derived from the evidence by the referee's own code")
    progress.step("check", f"here, against {sheet.key}: {_verdict_line(verdict)}")
    if args.no_submit:
        (out / "submission.json").write_bytes(msgspec.json.format(msgspec.json.encode(document)) + b"\n")
        print(f"not submitted: checked here against {sheet.key}")
        _print_verdict(verdict, findings)
        print(f"evidence and submission.json in {out}" if args.out else "pass --out DIR to keep the evidence")
        return 0
    # 6.
    assert client is not None
    return _submit(client, args, sheet, run, document)


# -- 2. GPUs ------------------------------------------------------------------


def _find_gpus(run: Run, presence: GpuPresence) -> None:
    if not presence.hardware:
        run.why_cpu = "no NVIDIA GPU found" if not presence.pci_functions else "nvidia-smi is not installed"
        run.progress.step("gpu", f"{run.why_cpu}: this is a CPU compute run")
        run.hardware = compute_submission.declare_cpu(run.host)
        return
    assert presence.nvidia_smi is not None
    log: SmiLog | None = None
    declared: dict[str, Any] | None = None
    try:
        inventory = collect.inventory(run.out, presence.nvidia_smi)
        log = _parsed(inventory, parse_smi_xml)
    except CollectionFailed as exc:  # a driver that does not answer: the GPUs cannot run the workload either
        why = str(exc)
    else:
        run.evidence.append(Evidence(inventory.name, inventory.path, inventory.media_type, None))  # for the record
        declared, why = compute_submission.declare_gpus(log)
        why = why or presence.torch_cuda
    if declared is None or log is None or why:
        run.why_cpu = f"{len(presence.pci_functions)} NVIDIA GPUs found, but {why}"
        run.progress.step("gpu", f"{run.why_cpu}: this is a CPU compute run")
        run.hardware = compute_submission.declare_cpu(run.host)
        return
    run.evidence[-1] = inventory  # the GPU run's inventory, with its role
    run.gpu_log, run.hardware = log, declared
    run.progress.step(
        "gpu",
        f"{declared['gpu_count']} × {declared['gpu_model']} (driver {log.driver_version}, CUDA {log.cuda_version})",
    )


def _digitless(text: str) -> str:
    """`notes` may hold no digits: the reason, with its counts and versions taken out."""
    return " ".join("".join(c for c in text if not c.isdigit()).split())


# -- 3. the sheet -------------------------------------------------------------


def _sheet(client: Client | None, ref: str) -> FlightSheet:
    if "@" not in ref:
        raise UsageError(f"--sheet {ref!r}: give id@version, e.g. {CPU_SHEET}")
    if client is None:
        try:
            return load_library().get(ref).sheet
        except (UnknownFlightSheet, FlightSheetInvalid) as exc:
            raise UsageError(str(exc)) from exc
    reply = _api(client.base_url, client.get, f"/flight-sheets/{ref}")
    if reply.status_code == 404:
        raise UsageError(f"{client.base_url} has no flight sheet {ref}")
    try:
        body = reply.json()
    except msgspec.DecodeError:
        body = reply.text[:300]
    _raise_for(reply.status_code, body)
    try:
        return load_sheet(msgspec.json.encode(body["sheet"]), source=ref).sheet
    except (FlightSheetInvalid, KeyError, TypeError) as exc:
        raise ApiFailed(f"{client.base_url} served {ref} in a form this client cannot read: {exc}") from exc


def _fits(sheet: FlightSheet, shape: compute_submission.Shape, run: Run) -> None:
    if sheet.lane != "compute":
        raise UsageError(f"{sheet.key} is a {sheet.lane} sheet; the probe submits compute runs")
    if shape.cpu_only and run.on_gpu:
        raise UsageError(f"{sheet.key} is for runs that used no GPU; this run uses the GPUs")
    if not shape.cpu_only and not run.on_gpu:
        raise UsageError(f"{sheet.key} declares GPU hardware; this is a CPU compute run ({run.why_cpu})")
    produced = {"benchmark_summary", "benchmark_detail", "bandwidth_log", "disk_usage", "uptime"}
    if run.on_gpu:
        produced |= {"gpu_inventory", "telemetry", "system_description", "diagnostics"}
    missing = sorted(shape.required_roles - produced)
    if missing:
        raise UsageError(f"{sheet.key} needs {', '.join(missing)}, which the probe does not produce")


# -- 4. collection ------------------------------------------------------------


def _collect(run: Run, duration_s: float, disk: Path) -> None:
    progress, out = run.progress, run.out
    sampler = None
    if run.gpu_log is not None:
        smi = shutil.which("nvidia-smi") or "nvidia-smi"
        _dcgm(run)
        sampler = collect.start_telemetry(out, smi, timeout_s=duration_s * 12 + 1800)
        progress.step("telemetry", f"nvidia-smi --query-gpu sampling every {collect.TELEMETRY_PERIOD_MS} ms")
    try:
        _disk(run, disk)
        _benchmark(run, duration_s)
        _bandwidth(run)
    finally:
        if sampler is not None:
            telemetry = collect.stop_telemetry(sampler)
            run.evidence.append(telemetry)
            samples = _parsed(telemetry, parse_smi_csv).samples
            progress.step("telemetry", f"{len(samples)} samples of {len({s.gpu for s in samples})} GPUs")
    uptime = collect.uptime(out)
    run.evidence.append(uptime)
    progress.step("uptime", f"host up {_parsed(uptime, parse_uptime).seconds / 3600:.1f} h")
    run.evidence += collect.host_records(out)
    if run.gpu_log is not None:
        system = out / "system.json"
        description = compute_submission.system_description(run.gpu_log, run.host, run.hardware["gpu_model"])
        system.write_bytes(msgspec.json.format(msgspec.json.encode(description)) + b"\n")
        run.evidence.append(Evidence(system.name, system, "application/json", "system_description"))


def _dcgm(run: Run) -> None:
    """DCGM's level-1 diagnostic where DCGM is installed and answers; optional evidence, so a
    DCGM that fails (no host engine running, say) is reported and the run goes on."""
    try:
        with run.progress.waiting("dcgm", "dcgmi diag -r 1 -j"):
            diagnostic = collect.dcgm_diagnostic(run.out)
        if diagnostic is None:
            run.progress.step("dcgm", "DCGM is not installed: no diagnostic")
            return
        results = _parsed(diagnostic, parse_diag).results
    except CollectionFailed as exc:
        run.progress.step("dcgm", f"no diagnostic: {exc}")
        return
    run.evidence.append(diagnostic)
    failed = [r.test for r in results if r.status == "fail"]
    named = f": {', '.join(failed)}" if failed else ""
    run.progress.step("dcgm", f"{len(results)} results, {len(failed)} failed{named}")


def _disk(run: Run, disk: Path) -> None:
    usage = collect.disk_usage(run.out, disk)
    run.evidence.append(usage)
    for fs in _parsed(usage, parse_df).filesystems:
        run.progress.step("disk", f"{fs.available_bytes / 1e9:,.1f} GB free on {fs.mount} ({disk})")


def _benchmark(run: Run, duration_s: float) -> None:
    logs = run.out / "loadgen"
    logs.mkdir()
    device = "cuda" if run.on_gpu else "cpu"
    argv = [sys.executable, "-m", "defendable_cli.benchmark", str(logs), "--duration", f"{duration_s:g}"]
    deadline = duration_s * 10 + 300  # a slow machine, retries, and torch starting CUDA
    with run.progress.waiting("benchmark", f"MLPerf LoadGen Offline on the {device.upper()}, {duration_s:g} s or more"):
        finished = process.run(
            [*argv, "--device", device],
            run.out / "benchmark.json",
            limit_bytes=1024 * 1024,
            timeout_s=deadline,
            env=collect.UTC_ENV,
        )
    about = msgspec.json.decode(finished.stdout.read_bytes())
    finished.stdout.unlink()
    summary = Evidence("mlperf_log_summary.txt", logs / "mlperf_log_summary.txt", "text/plain", "benchmark_summary")
    detail = Evidence("mlperf_log_detail.txt", logs / "mlperf_log_detail.txt", "text/plain", "benchmark_detail")
    run.evidence += [summary, detail]
    result = _parsed(summary, parse_summary)
    rate = f"{result.samples_per_second:,.0f} samples/s" if result.samples_per_second else "no throughput"
    run.progress.step("benchmark", f"LoadGen {result.scenario} {result.validity}, {rate} ({about['workload']})")


def _bandwidth(run: Run) -> None:
    device = "cuda" if run.on_gpu else "cpu"
    target = run.out / "bandwidth.log"
    argv = [sys.executable, "-m", "defendable_cli.triad", "--device", device]
    what = "BabelStream-format kernels on the GPU (torch)" if run.on_gpu else "STREAM-format kernels on the CPU (NumPy)"
    with run.progress.waiting("bandwidth", what):
        process.run(argv, target, limit_bytes=1024 * 1024, timeout_s=900)
    log = Evidence(target.name, target, "text/plain", "bandwidth_log")
    run.evidence.append(log)
    parsed = _parsed(log, parse_bandwidth_log)
    shown = ", ".join(f"{k} {v:,.1f} GB/s" for k, v in parsed.rates_gb_s.items() if k in ("copy", "triad"))
    run.progress.step("bandwidth", shown + (f" on {parsed.device}" if parsed.device else ""))


def _parsed(item: Evidence, parse: Callable[[bytes], T]) -> T:
    try:
        return parse(item.path.read_bytes())
    except EvidenceRefused as exc:
        raise CollectionFailed(f"{item.name} is not what the referee reads as {item.role}: {exc}") from exc


@contextmanager
def _workdir(out: Path | None) -> Iterator[Path]:
    if out is None:
        with tempfile.TemporaryDirectory(prefix="defendable-probe-") as scratch:
            yield Path(scratch)
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out {out} must be a new or empty directory: evidence of one run only")
    out.mkdir(parents=True, exist_ok=True)
    yield out


# -- 6. submission ------------------------------------------------------------


def _submit(client: Client, args: argparse.Namespace, sheet: FlightSheet, run: Run, document: dict[str, Any]) -> int:
    base, progress = client.base_url, run.progress
    tools = ["mlperf_loadgen", "torch" if run.on_gpu else "numpy"] + (["nvidia-smi"] if run.on_gpu else [])
    profile = AgentProfile(
        model="defendable-probe",
        harness="defendable probe",
        tools=tools,
        runtime=f"python{sys.version_info.major}.{sys.version_info.minor}",
    )
    assignment = args.assignment or f"Measure a compute run on {run.host.name} against {sheet.key}"
    run_id = _api(base, client.create_run, args.project, sheet.key, profile, "compute", assignment)
    progress.step("submit", f"run {run_id} created in project {args.project!r}")
    if not args.assignment:
        document["assignment_id"] = run_id
    for item in run.evidence:
        _api(base, client.add_file, run_id, item.name, item.path, item.media_type)
    progress.step("submit", f"{len(run.evidence)} evidence files attached")
    _api(base, client.wait_for, run_id, ("created",), CHECK_TIMEOUT_S)
    if args.out:
        (run.out / "submission.json").write_bytes(msgspec.json.format(msgspec.json.encode(document)) + b"\n")
    _api(base, client.submit, run_id, document)
    with progress.waiting("verdict", "waiting for the referee"):
        checked = _api(base, client.wait_for, run_id, ("checked",), CHECK_TIMEOUT_S)
    verdict = msgspec.convert(checked["verdict"], Verdict)
    findings = msgspec.convert(checked.get("findings", []), list[Finding])
    progress.step("verdict", _verdict_line(verdict))
    print(f"run {run_id} checked against {sheet.key}")
    _print_verdict(verdict, findings)
    print(f"{base}/runs/{run_id}")
    return 0


def _api(base: str, call: Callable[..., T], *args: Any) -> T:
    """`call(*args)`, its failures translated into ApiFailed with the problem detail the server sent."""
    try:
        return call(*args)
    except ApiError as exc:
        _raise_for(exc.status, exc.body)
        raise  # unreachable: _raise_for raises for every status ≥ 400
    except TimeoutError as exc:
        raise ApiFailed(f"{base}: {exc or 'timed out'}") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise ApiFailed(f"cannot reach {base}: {exc}") from exc


def _raise_for(status: int, body: Any) -> None:
    if status < 400:
        return
    if isinstance(body, dict):
        title = f" {body['title']}" if isinstance(body.get("title"), str) else ""
        detail = body.get("detail") or body
    else:
        title, detail = "", body
    raise ApiFailed(f"HTTP {status}{title}: {detail}")


def _verdict_line(verdict: Verdict) -> str:
    risk = verdict.risk
    return (
        f"{verdict.recommended_action} ({verdict.severity}, score {verdict.score},"
        f" flags: {risk.high} high, {risk.mid} mid, {risk.low} low)"
    )


def _print_verdict(verdict: Verdict, findings: list[Finding]) -> None:
    print(f"verdict: {_verdict_line(verdict)}")
    passed = sum(1 for f in findings if f.status == "pass")
    print(f"findings: {passed} of {len(findings)} pass")
    for f in findings:
        if f.status != "pass":
            print(f"  {f.status} {f.tier or ''} {f.rule_id}: {f.message}")

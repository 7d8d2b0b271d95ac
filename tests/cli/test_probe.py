"""`defendable probe` on this machine: real LoadGen, a real bandwidth run, a submission the referee approves.

The run is the CLI itself, as a seller runs it (a subprocess, --no-submit: no server). There is
no GPU here, so it must say so and produce a CPU compute run; every file it keeps must read
with the referee's own parser for its role, and the referee's check of the submission over
those files must raise no flag at all — every figure claimed is re-derived from them.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from defendable_canonical.model import EvidenceRef
from defendable_cli.collect import nvidia_pci_functions
from defendable_cli.progress import Progress
from defendable_referee.check import check_submission
from defendable_referee.compute.evidence import PARSERS
from defendable_referee.compute.mlperf import LoadgenDetail
from defendable_referee.sheet import load_library
from defendable_stack.process import free_port

CPU_SHEET = "compute_cpu_benchmark_v1@1.0.0"
DURATION_S = "5"
PROGRESS_LINE = re.compile(r"^\[ *\d+\.\ds\] [a-z]+ +\S")
gpu_host = pytest.mark.skipif(
    bool(nvidia_pci_functions()) and shutil.which("nvidia-smi") is not None,
    reason="this host has NVIDIA GPUs: the probe makes a GPU run here, not a CPU one",
)


@dataclass(frozen=True)
class Probed:
    out: Path
    returncode: int
    stdout: str
    stderr: str


def probe(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DEFENDABLE_")}
    return subprocess.run(
        [sys.executable, "-m", "defendable_cli.main", "probe", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean | (env or {}),
    )


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> Probed:
    out = tmp_path_factory.mktemp("probe") / "evidence"
    done = probe("--no-submit", "--out", str(out), "--duration", DURATION_S)
    return Probed(out, done.returncode, done.stdout, done.stderr)


def evidence_of(out: Path, roles: dict[str, str]) -> tuple[list[EvidenceRef], dict[str, Path]]:
    """The files the submission gives roles, as the referee holds attached evidence."""
    by_name = {p.name: p for p in out.rglob("*") if p.is_file()}
    refs, files = [], {}
    for number, name in enumerate(roles.values(), start=1):
        data = by_name[name].read_bytes()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        refs.append(EvidenceRef(id=f"ev_{number}", name=name, media_type="text/plain", size=len(data), sha256=digest))
        files[f"ev_{number}"] = by_name[name]
    return refs, files


@gpu_host
def test_a_machine_without_a_gpu_says_so_and_makes_a_cpu_compute_run(probed: Probed) -> None:
    assert probed.returncode == 0, probed.stderr
    assert "no NVIDIA GPU found: this is a CPU compute run" in probed.stderr
    assert f"not submitted: checked here against {CPU_SHEET}" in probed.stdout
    assert "verdict: approve" in probed.stdout
    assert "Traceback" not in probed.stderr
    lines = probed.stderr.splitlines()
    assert lines and all(PROGRESS_LINE.match(line) for line in lines), lines
    assert any(re.search(r"benchmark +LoadGen Offline VALID, [\d,]+ samples/s", line) for line in lines), lines


@gpu_host
def test_every_kept_file_reads_with_the_referees_parser_for_its_role(probed: Probed) -> None:
    assert probed.returncode == 0, probed.stderr
    document = msgspec.json.decode((probed.out / "submission.json").read_bytes())
    roles = document["evidence_files"]
    assert set(roles) == {"benchmark_summary", "benchmark_detail", "bandwidth_log", "disk_usage", "uptime"}
    by_name = {p.name: p for p in probed.out.rglob("*") if p.is_file()}
    for role, name in roles.items():
        parse, kind = PARSERS[role]
        assert isinstance(parse(by_name[name].read_bytes()), kind), role
    detail = PARSERS["benchmark_detail"][0](by_name[roles["benchmark_detail"]].read_bytes())
    assert isinstance(detail, LoadgenDetail) and detail.validity == "VALID"
    assert (detail.end - detail.start).total_seconds() >= float(DURATION_S)
    assert {"cpuinfo.txt", "meminfo.txt"} <= set(by_name)  # the host facts' sources, for the record


@gpu_host
def test_the_referee_approves_the_cpu_run_and_re_derives_every_claim(probed: Probed) -> None:
    assert probed.returncode == 0, probed.stderr
    raw = (probed.out / "submission.json").read_bytes()
    document = msgspec.json.decode(raw)
    assert document["declared_hardware"]["gpu_count"] == 0
    assert not re.search(r"\d", document["notes"])
    claimed = {c["metric"] for c in document["claims"]}
    assert {"samples_per_second", "triad_gb_s", "free_disk_gb", "uptime_s"} <= claimed
    refs, files = evidence_of(probed.out, document["evidence_files"])
    findings, verdict = check_submission(load_library().get(CPU_SHEET), raw, refs, files=files)
    assert [f.message for f in findings if f.status != "pass"] == []
    assert verdict.recommended_action == "approve" and verdict.risk.high == 0
    passed = [f.message for f in findings if f.kind == "measured_claims"]
    assert len(passed) == len(document["claims"])


def test_without_a_key_the_probe_stops_before_measuring_with_exit_2() -> None:
    done = probe("--url", "http://127.0.0.1:9", timeout=60)
    assert done.returncode == 2, done.stderr
    assert "DEFENDABLE_SUBMITTER_KEY" in done.stderr and "Traceback" not in done.stderr
    assert "benchmark" not in done.stderr


def test_without_a_url_the_probe_stops_with_exit_2() -> None:
    done = probe(env={"DEFENDABLE_SUBMITTER_KEY": "dfd_x"}, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "DEFENDABLE_URL" in done.stderr


def test_a_url_that_is_not_http_is_a_usage_error() -> None:
    done = probe("--url", "127.0.0.1:8700", "--key", "dk_x", timeout=60)
    assert done.returncode == 2 and "http(s) URL" in done.stderr


def test_an_out_directory_holding_other_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("evidence of another run")
    done = probe("--no-submit", "--out", str(tmp_path), timeout=60)
    assert done.returncode == 2, done.stderr
    assert "new or empty directory" in done.stderr


def test_a_duration_out_of_range_is_a_usage_error() -> None:
    done = probe("--no-submit", "--duration", "0", timeout=60)
    assert done.returncode == 2 and "--duration" in done.stderr


def test_an_unreachable_server_is_exit_4_with_the_reason_and_no_traceback() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = probe(env={"DEFENDABLE_URL": url, "DEFENDABLE_SUBMITTER_KEY": "dfd_x"}, timeout=120)
    assert done.returncode == 4, done.stderr
    assert f"cannot reach {url}" in done.stderr
    assert "Traceback" not in done.stderr
    assert "benchmark" not in done.stderr  # refused before minutes are spent measuring


def test_progress_lines_carry_the_elapsed_time_and_the_step() -> None:
    ticks = iter([10.0, 13.3])
    stream = io.StringIO()
    Progress(stream, clock=lambda: next(ticks)).step("benchmark", "LoadGen Offline VALID, 4,812 samples/s")
    assert stream.getvalue() == "[   3.3s] benchmark   LoadGen Offline VALID, 4,812 samples/s\n"

"""`defendable probe` against the services on real servers: the run it submits is checked and approved.

The probe runs as a seller runs it, a subprocess with a submitter key; the referee then
fetches every evidence file from S3, re-hashes it, and re-derives each claimed figure.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from defendable.client import AsyncClient
from defendable_gateway.admin import CreatedOrg

from ..cli.test_probe import CPU_SHEET, gpu_host, probe
from .conftest import Services, key


@gpu_host
async def test_the_probe_submits_a_cpu_run_the_stack_checks_and_approves(
    services: Services, org: CreatedOrg, tmp_path: Path
) -> None:
    submitter = key(org, "submitter")
    out = tmp_path / "evidence"
    args = ("--url", services.base_url, "--key", submitter, "--duration", "5", "--out", str(out))
    done = await asyncio.to_thread(probe, *args, "--project", "probe e2e")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    found = re.search(rf"^run (\S+) checked against {re.escape(CPU_SHEET)}$", done.stdout, re.MULTILINE)
    assert found, done.stdout
    assert "verdict: approve" in done.stdout
    async with AsyncClient(services.base_url, submitter) as client:
        run = await client.run(found.group(1))
    assert run["stage"] == "checked"
    assert run["verdict"]["recommended_action"] == "approve", [f for f in run["findings"] if f["status"] != "pass"]
    assert all(f["status"] == "pass" for f in run["findings"])
    assert any(f["kind"] == "benchmark_score" and "VALID" in f["message"] for f in run["findings"])
    attached = {e["name"] for e in run["evidence"] if e["status"] == "attached"}
    assert {"mlperf_log_summary.txt", "mlperf_log_detail.txt", "bandwidth.log", "df.txt", "uptime.txt"} <= attached
    assert (out / "submission.json").is_file()


async def test_a_bad_key_is_exit_4_with_the_servers_401_detail(services: Services) -> None:
    unknown = "dk_0000000000000000_" + "x" * 43  # well formed, never issued
    args = ("--url", services.base_url, "--key", unknown, "--duration", "5")
    done = await asyncio.to_thread(probe, *args, timeout=120)
    assert done.returncode == 4, done.stderr
    assert "HTTP 401" in done.stderr and "unknown or revoked" in done.stderr
    assert "Traceback" not in done.stderr
    assert "benchmark" not in done.stderr  # refused before the measuring starts

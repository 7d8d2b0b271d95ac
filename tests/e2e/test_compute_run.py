"""A Compute-lane run through the stack: real MLPerf H100 logs as evidence, figures re-derived by the referee.

The referee copies each evidence file from S3 into a work directory, re-hashed
(evidence_files.py), and checks the sheet from those copies: a claim the files bear out
passes, a GPU the files contradict is a high flag that recommends reject.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from defendable.client import AsyncClient

from ..referee.compute.kit import Bundle
from ..referee.compute.test_sheet_benchmark import BENCHMARK, benchmark_submission, mlperf
from .conftest import create

PROFILE = {"model": "seller-probe", "harness": "pytest", "tools": [], "runtime": "python3.11"}


async def compute_run(client: AsyncClient, bundle: Bundle, document: dict[str, Any]) -> dict[str, Any]:
    run_id = await create(client, PROFILE, f"{BENCHMARK}@1.0.0", lane="compute")
    await asyncio.gather(
        *(
            client.add_file(run_id, ref.name, bundle.files[ref.id].read_bytes(), media_type=ref.media_type)
            for ref in bundle.evidence
        )
    )
    await client.wait_for(run_id, ("created",))
    await client.submit(run_id, document)
    return await client.wait_for(run_id, ("checked",), timeout=120)


async def test_a_real_h100_benchmark_passes_and_a_claimed_a100_is_rejected(
    submitter: AsyncClient, tmp_path: Path
) -> None:
    for side in ("honest", "lying"):
        (tmp_path / side).mkdir()
    honest_bundle, lying_bundle = mlperf(tmp_path / "honest"), mlperf(tmp_path / "lying")
    honest, lying = await asyncio.gather(
        compute_run(submitter, honest_bundle, benchmark_submission(honest_bundle)),
        # The same H100 logs, listed as an A100: the referee reads the hardware from the files.
        compute_run(submitter, lying_bundle, benchmark_submission(lying_bundle, model="A100-SXM4-80GB")),
    )
    assert honest["verdict"]["severity"] == "honey", [f for f in honest["findings"] if f["status"] != "pass"]
    assert any("1728.33 samples/s" in f["message"] for f in honest["findings"] if f["kind"] == "benchmark_score")
    assert lying["verdict"]["recommended_action"] == "reject", lying["verdict"]
    high = [f for f in lying["findings"] if f["status"] == "flag" and f["tier"] == "high"]
    assert high and any("H100" in f["message"] for f in high), high

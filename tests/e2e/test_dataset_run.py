"""Dataset-lane runs through the stack: the data files are the evidence, every figure re-derived from them.

The referee copies each file from S3 into a work directory, re-hashed, and DuckDB reads
those copies. A clean dataset passes and mints a receipt; one with planted PII is flagged
and its receipt-to-be never carries the PII it found (redacted samples only).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec

from defendable.client import AsyncClient

from ..referee.dataset.kit import SAFETY, SCHEMA, Bundle, clean_rows
from .conftest import create

PROFILE = {"model": "dataset-seller", "harness": "pytest", "tools": [], "runtime": "python3.11"}
PII = ["jane.doe@example.com", "4111 1111 1111 1111"]


async def dataset_run(client: AsyncClient, sheet: str, bundle: Bundle) -> dict[str, Any]:
    run_id = await create(client, PROFILE, sheet, lane="dataset")
    await asyncio.gather(
        *(
            client.add_file(run_id, name, path.read_bytes(), media_type=media)
            for name, (path, media) in bundle.files.items()
        )
    )
    await client.wait_for(run_id, ("created",))
    await client.submit(run_id, bundle.manifest())
    return await client.wait_for(run_id, ("checked",), timeout=120)


def clean(root: Path) -> Bundle:
    root.mkdir()
    bundle = Bundle(root)
    bundle.add_csv("train.csv", clean_rows(40))
    bundle.add_csv("test.csv", clean_rows(20, start=100, users="t"), split="test")
    return bundle


def with_pii(root: Path) -> Bundle:
    root.mkdir()
    rows = clean_rows(40)
    rows[3]["text"] += f" write to {PII[0]}"
    rows[7]["text"] += f" card {PII[1]} exp 12/29"
    bundle = Bundle(root)
    bundle.add_csv("train.csv", rows)
    bundle.add_csv("test.csv", clean_rows(20, start=100, users="t"), split="test")
    return bundle


async def test_a_clean_dataset_mints_and_planted_pii_is_flagged_without_leaking(
    submitter: AsyncClient, approver: AsyncClient, tmp_path: Path
) -> None:
    good, leaky = await asyncio.gather(
        dataset_run(submitter, SCHEMA, clean(tmp_path / "clean")),
        dataset_run(submitter, SAFETY, with_pii(tmp_path / "pii")),
    )
    assert good["verdict"]["severity"] == "honey", [f["message"] for f in good["findings"] if f["status"] != "pass"]
    assert any("records read in full" in f["message"] for f in good["findings"])
    await approver.approve(good["run_id"], "schema re-derived from the files")
    minted = await submitter.wait_for(good["run_id"], ("minted",))
    assert minted["receipt"]["payload"]["lane"] == "dataset"

    assert leaky["verdict"]["recommended_action"] == "reject", leaky["verdict"]
    flagged = [f["message"] for f in leaky["findings"] if f["status"] == "flag"]
    assert any("email" in m for m in flagged) and any("card" in m for m in flagged), flagged
    served = msgspec.json.encode(leaky).decode()
    assert not any(value in served for value in PII)  # the run (and so its receipt) carries no found PII

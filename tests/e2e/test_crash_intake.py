"""Intake SIGKILLed between a verdict and the approval made on it: the accepted approval still mints.

The gateway accepts a decision once its read model shows the run checked;
intake learns of the same Checked event through its own consumer. With intake
down, both the Checked events and the approvals queue up; on restart the two
consumers race, and a decision seen before its verdict must wait, not be
refused (DESIGN.md §6: no accepted event is lost).
"""

from __future__ import annotations

import asyncio

import pytest

from defendable.client import AsyncClient
from defendable_gateway.admin import CreatedOrg
from defendable_stack.servers import Stack

from .conftest import Services, create
from .memo import EVIDENCE, memo
from .test_crash_ledger import (
    SETTLE_S,
    approve_all,
    assert_every_run_has_its_receipt,
    assert_one_verified_chain,
    bounded,
    patient,
    wait_for_receipts,
)

RUNS = 20


async def submitted_run(client: AsyncClient) -> str:
    run_id = await create(client)
    await asyncio.gather(*(client.add_file(run_id, name, data) for name, data in EVIDENCE.items()))
    await client.wait_for(run_id, ("created",))
    await client.submit(run_id, memo())
    await client.wait_for(run_id, ("submitted",))
    return run_id


@pytest.mark.timeout(900)
async def test_intake_sigkilled_before_it_records_verdicts_still_admits_every_approval_made_on_them(
    stack: Stack, services: Services, org: CreatedOrg, submitter: AsyncClient, approver: AsyncClient
) -> None:
    run_ids = await bounded(RUNS, 10, lambda _: submitted_run(submitter))
    await asyncio.to_thread(services.kill, "intake")  # the referee's verdicts now wait for intake in RUNS
    try:
        await bounded(RUNS, 10, lambda i: submitter.wait_for(run_ids[i], ("checked",), timeout=SETTLE_S))
        await approve_all(approver, run_ids)  # 202: the decisions wait in INGEST
    finally:
        services.start("intake")

    final = await wait_for_receipts(stack.database_url, org.org_id, RUNS)
    refusals = {}
    for run_id in run_ids:
        run = await patient(lambda run_id=run_id: approver.run(run_id))  # type: ignore[misc]  # bound default
        if run["refusals"]:
            refusals[run_id] = run["refusals"]
    assert final == RUNS and not refusals, (final, refusals)
    rows = await assert_one_verified_chain(stack.database_url, approver, org.org_id, run_ids)
    await assert_every_run_has_its_receipt(approver, run_ids, rows)

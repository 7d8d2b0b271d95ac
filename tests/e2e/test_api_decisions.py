"""Decisions: only a checked, undecided run may be decided; no receipt without approval (DESIGN.md §1, §6)."""

from __future__ import annotations

import asyncio

import pytest

from defendable.client import ApiError, AsyncClient

from .conftest import checked_run, create


async def test_approving_a_run_without_a_verdict_is_a_409_and_nothing_is_decided(
    submitter: AsyncClient, approver: AsyncClient
) -> None:
    run_id = await create(submitter)
    with pytest.raises(ApiError) as refused:
        await approver.approve(run_id)
    assert refused.value.status == 409
    assert "no verdict yet" in str(refused.value)
    with pytest.raises(ApiError) as refused:
        await approver.reject(run_id)
    assert refused.value.status == 409
    run = await submitter.run(run_id)
    assert run["approval"] is None and run["stage"] in ("requested", "created")


async def test_approving_twice_is_a_409_the_second_time_and_mints_one_receipt(
    submitter: AsyncClient, approver: AsyncClient
) -> None:
    run_id = await checked_run(submitter)
    status, _ = await approver.receipt(run_id)
    assert status == 409  # checked, not approved: no receipt yet
    await approver.approve(run_id, note="first")
    await approver.wait_for(run_id, ("approved", "minted", "rendered"))
    with pytest.raises(ApiError) as refused:
        await approver.approve(run_id, note="second")
    assert refused.value.status == 409
    assert "already decided" in str(refused.value)
    with pytest.raises(ApiError) as refused:
        await approver.reject(run_id)
    assert refused.value.status == 409

    status, body = await approver.receipt(run_id)
    assert status in (200, 202), body
    run = await approver.wait_for(run_id, ("minted", "rendered"))
    status, receipt = await approver.receipt(run_id)
    assert status == 200
    assert receipt["payload"]["approval"]["note"] == "first"
    assert run["receipt"]["receipt_hash"] == receipt["receipt_hash"]
    verify = (await approver.get("/ledger/verify")).json()
    assert verify["ok"] is True and verify["length"] == 1


async def test_a_rejected_run_never_gets_a_receipt(submitter: AsyncClient, approver: AsyncClient) -> None:
    run_id = await checked_run(submitter)
    await approver.reject(run_id, note="Not convinced by the NOI.")
    run = await approver.wait_for(run_id, ("rejected",))
    assert run["stage"] == "rejected"
    assert run["approval"]["decision"] == "reject" and run["approval"]["note"] == "Not convinced by the NOI."
    with pytest.raises(ApiError) as refused:
        await approver.approve(run_id)
    assert refused.value.status == 409
    await asyncio.sleep(1.0)  # give a wrongly minted receipt time to show up
    status, body = await approver.receipt(run_id)
    assert status == 409, body
    assert "rejected" in body["detail"]
    run = await approver.run(run_id)
    assert run["stage"] == "rejected" and run["receipt"] is None
    assert (await approver.get("/ledger/verify")).json()["length"] == 0

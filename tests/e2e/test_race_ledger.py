"""Ledger races on real processes: two replicas on one durable consumer, and a redelivered approval.

DESIGN.md §4: several ledger replicas may run; the head lock, not luck, keeps
one writer per org. §3/§6: every handler is idempotent, so an Approved event
seen twice — even under a new Nats-Msg-Id that JetStream cannot deduplicate —
mints once and re-announces the same Minted event.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import time

import msgspec
import nats
import pytest

from defendable.client import AsyncClient
from defendable_canonical.events import Minted, event_decoder
from defendable_canonical.subjects import RUNS_STREAM
from defendable_gateway.admin import CreatedOrg
from defendable_stack.servers import Stack

from .conftest import Services, checked_run
from .test_crash_ledger import (
    SETTLE_S,
    approve_all,
    assert_every_run_has_its_receipt,
    assert_one_verified_chain,
    checked_runs,
    receipt_count,
    receipt_rows,
    verified_chain,
    wait_for_receipts,
)

RACED_RUNS = 150


def wait_started(services: Services, proc: subprocess.Popen[bytes], within: float = 60.0) -> None:
    """Until the extra process's FastStream app says it started (its consumer is then pulling)."""
    log = services.logs / "ledger-extra.log"
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the extra ledger exited with {proc.returncode}: {log.read_text()[-3000:]}"
        if log.exists() and "started successfully" in log.read_text():
            return
        time.sleep(0.2)
    raise TimeoutError(f"the extra ledger did not start within {within}s")


def stop(services: Services, proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    services.extra.remove(proc)


@pytest.mark.timeout(900)
async def test_two_ledger_processes_on_one_durable_consumer_never_fork_or_gap_an_orgs_chain(
    stack: Stack, services: Services, org: CreatedOrg, submitter: AsyncClient, approver: AsyncClient
) -> None:
    run_ids = await checked_runs(submitter, RACED_RUNS)
    extra = services.start_extra("ledger")
    try:
        await asyncio.to_thread(wait_started, services, extra)
        await approve_all(approver, run_ids)
        final = await wait_for_receipts(stack.database_url, org.org_id, RACED_RUNS)
        assert final == RACED_RUNS, f"{final} receipts for {RACED_RUNS} approvals"
        assert extra.poll() is None and services.procs["ledger"].poll() is None, "a ledger replica died"
    finally:
        await asyncio.to_thread(stop, services, extra)

    rows = await assert_one_verified_chain(stack.database_url, approver, org.org_id, run_ids)
    await assert_every_run_has_its_receipt(approver, run_ids, rows)


async def test_an_approval_redelivered_under_a_new_message_id_mints_nothing_new_and_reannounces_the_same_minted(
    stack: Stack, org: CreatedOrg, submitter: AsyncClient, approver: AsyncClient
) -> None:
    run_id = await checked_run(submitter)
    await approver.approve(run_id)
    await approver.wait_for(run_id, ("minted", "rendered"))
    approved_subject = f"run.approved.{org.org_id}.{run_id}"
    minted_subject = f"run.minted.{org.org_id}.{run_id}"

    nc = await nats.connect(stack.nats_url)
    try:
        js = nc.jetstream()
        approved = await js.get_last_msg(RUNS_STREAM, approved_subject)
        first = await js.get_last_msg(RUNS_STREAM, minted_subject)
        assert approved.data is not None and first.data is not None
        first_minted = event_decoder.decode(first.data)
        assert isinstance(first_minted, Minted)

        # A core subscription sees every publish, also one JetStream then drops as a duplicate.
        announced = await nc.subscribe(minted_subject)
        ack = await js.publish(
            approved_subject,
            approved.data,
            headers={"Nats-Msg-Id": f"redelivered-{secrets.token_hex(8)}"},  # JetStream's dedup cannot catch it
        )
        assert not ack.duplicate, "the re-published approval must reach the ledger as a new message"
        again = await announced.next_msg(timeout=SETTLE_S)
        again_minted = event_decoder.decode(again.data)
        assert isinstance(again_minted, Minted)
        assert again_minted.event_id == first_minted.event_id
        assert again.headers is not None and again.headers.get("Nats-Msg-Id") == first_minted.event_id
        assert (again_minted.seq, again_minted.receipt_hash, again_minted.share_token) == (
            first_minted.seq,
            first_minted.receipt_hash,
            first_minted.share_token,
        )
        assert msgspec.json.encode(again_minted.payload) == msgspec.json.encode(first_minted.payload)

        # The stream kept one Minted for the run: the re-announcement carried the first one's id.
        await asyncio.sleep(1.0)
        last = await js.get_last_msg(RUNS_STREAM, minted_subject)
        assert last.seq == first.seq
    finally:
        await nc.close()

    assert await receipt_count(stack.database_url, org.org_id) == 1
    assert [run for _, run in await receipt_rows(stack.database_url, org.org_id)] == [run_id]
    report = await verified_chain(approver)
    assert report["ok"] is True and report["length"] == 1, report

"""NATS or PostgreSQL SIGKILLed with runs in flight: every accepted run ends processed exactly once.

DESIGN.md §6: "a crash at any point, of any service, ends with every accepted
run processed exactly once in effect". Accepted means the gateway answered
202 (JetStream had acknowledged the command); a call that failed during the
outage was not accepted and may or may not have taken effect. The services
must ride out the outage on their own: nobody restarts them here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import nats
import pytest

from defendable.client import STAGE_RANK, ApiError, AsyncClient
from defendable_gateway.admin import CreatedOrg
from defendable_stack.servers import NatsServer, PostgresServer, Server, Stack

from .conftest import SERVICES, Services, create, wait_ready
from .memo import EVIDENCE, memo
from .test_crash_ledger import (
    SETTLE_S,
    assert_every_run_has_its_receipt,
    patient,
    receipt_rows,
    verified_chain,
)

IN_FLIGHT = 50
CONCURRENCY = 25
# Longer than the gateway's 10 s publish timeout and the ~11 s a non-infrastructure error takes to be
# dead-lettered (messaging.MAX_ATTEMPTS): calls during it fail, and consumers must retry past it.
OUTAGE_S = 12.0
KILL_AFTER_APPROVALS = 5
STILL_DRIVING_AT_KILL = 10

ACCEPTED = (ApiError, httpx.HTTPError, OSError, TimeoutError)


@dataclass
class Driven:
    """What the gateway accepted (answered 2xx) for one run, step by step, up to `goal`."""

    goal: str
    run_id: str | None = None
    evidence: int = 0
    submit_tried: bool = False
    submitted: bool = False
    approve_tried: bool = False
    approved: bool = False
    finished: bool = False


async def drive(submitter: AsyncClient, approver: AsyncClient, run: Driven) -> None:
    """Create and attach, submit, approve, up to the run's goal; stop at the first call not accepted."""
    try:
        await drive_steps(submitter, approver, run)
    finally:
        run.finished = True


async def drive_steps(submitter: AsyncClient, approver: AsyncClient, run: Driven) -> None:
    try:
        run.run_id = await create(submitter)
    except ACCEPTED:
        return
    run_id = run.run_id
    results = await asyncio.gather(
        *(submitter.add_file(run_id, name, data) for name, data in EVIDENCE.items()), return_exceptions=True
    )
    run.evidence = sum(not isinstance(r, BaseException) for r in results)
    if run.evidence < len(EVIDENCE) or run.goal == "created":
        return
    await patient(lambda: submitter.wait_for(run_id, ("created",), timeout=SETTLE_S))
    run.submit_tried = True
    try:
        await submitter.submit(run_id, memo())
    except ACCEPTED:
        return
    run.submitted = True
    if run.goal == "submitted":
        return
    await patient(lambda: submitter.wait_for(run_id, ("checked",), timeout=SETTLE_S))
    run.approve_tried = True
    try:
        await approver.approve(run_id, note="approved across a crash")
    except ACCEPTED:
        return
    run.approved = True


def stages(runs: list[Driven]) -> dict[str, int]:
    """Where the runs stand, by the last call the gateway accepted."""
    out = {"not created": 0, "created": 0, "submitted": 0, "approved": 0}
    for r in runs:
        stage = "approved" if r.approved else "submitted" if r.submitted else "created" if r.run_id else "not created"
        out[stage] += 1
    return out


async def crash_with_runs_in_flight(submitter: AsyncClient, approver: AsyncClient, server: Server) -> list[Driven]:
    """Drive IN_FLIGHT runs (a quarter to created, a quarter to submitted, half to approved); SIGKILL
    `server` once a few approvals are in, with many runs still in flight; restart it after OUTAGE_S.
    """
    goals = ("created", "submitted", "approved", "approved")
    runs = [Driven(goal=goals[i % len(goals)]) for i in range(IN_FLIGHT)]
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(run: Driven) -> None:
        async with gate:
            await drive(submitter, approver, run)

    drivers = asyncio.gather(*(one(run) for run in runs))
    for _ in range(int(SETTLE_S / 0.05)):
        if stages(runs)["approved"] >= KILL_AFTER_APPROVALS:
            break
        await asyncio.sleep(0.05)
    at_kill, driving = stages(runs), sum(not r.finished for r in runs)
    await asyncio.to_thread(server.kill)
    try:
        # The crash must find runs at every stage and many still driving, or the test proves less than it says.
        in_flight = [at_kill[stage] for stage in ("created", "submitted", "approved")]
        assert all(in_flight) and driving >= STILL_DRIVING_AT_KILL, (at_kill, driving)
        await asyncio.sleep(OUTAGE_S)
    finally:
        await asyncio.to_thread(server.restart)
        await asyncio.wait_for(drivers, SETTLE_S * 2)
    print(f"{server.name} killed with {driving} runs driving at {at_kill}; in the end {stages(runs)}")
    return runs


async def assert_each_accepted_run_processed_exactly_once(
    stack: Stack, org_id: str, submitter: AsyncClient, approver: AsyncClient, runs: list[Driven]
) -> None:
    accepted = [r for r in runs if r.run_id is not None]
    approved = [r.run_id for r in accepted if r.approved and r.run_id]
    assert approved, runs

    async def settled(r: Driven) -> None:
        assert r.run_id is not None
        run_id = r.run_id
        if r.approved:
            run = await patient(lambda: approver.wait_for(run_id, ("minted", "rendered"), timeout=SETTLE_S))
        elif r.submitted:
            run = await patient(lambda: submitter.wait_for(run_id, ("checked",), timeout=SETTLE_S))
            if not r.approve_tried:
                assert run["stage"] == "checked", (run_id, run["stage"])
        else:
            run = await patient(lambda: submitter.wait_for(run_id, ("created",), timeout=SETTLE_S))
            if not r.submit_tried:
                assert run["stage"] == "created", (run_id, run["stage"], run["refusals"])
            attached = [e for e in run["evidence"] if e["status"] == "attached"]
            deadline = time.monotonic() + SETTLE_S
            while len(attached) < r.evidence and time.monotonic() < deadline:
                await asyncio.sleep(1.0)
                run = await patient(lambda: submitter.run(run_id))
                attached = [e for e in run["evidence"] if e["status"] == "attached"]
            assert len(attached) >= r.evidence, (run_id, run["evidence"])
        assert STAGE_RANK[run["stage"]] < STAGE_RANK["refused"] and run["stage"] != "rejected", run
        assert run["refusals"] == [], (run_id, run["refusals"])

    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(r: Driven) -> None:
        async with gate:
            await settled(r)

    await asyncio.gather(*(one(r) for r in accepted))

    # Every accepted approval minted exactly once; an approval whose call failed may have minted too.
    rows = await receipt_rows(stack.database_url, org_id)
    minted = [run_id for _, run_id in rows]
    tried = {r.run_id for r in accepted if r.approve_tried}
    assert [seq for seq, _ in rows] == list(range(1, len(rows) + 1)), "the chain has a gap"
    assert len(set(minted)) == len(minted), "a run was minted twice"
    assert set(approved) <= set(minted) <= tried, (sorted(set(approved) - set(minted)), sorted(set(minted) - tried))
    report = await verified_chain(approver)
    assert report["ok"] is True and report["length"] == len(rows), report
    await assert_every_run_has_its_receipt(approver, approved, rows)
    await assert_nothing_dead_lettered(stack, org_id)


async def assert_nothing_dead_lettered(stack: Stack, org_id: str) -> None:
    nc = await nats.connect(stack.nats_url)
    try:
        info = await nc.jetstream().stream_info("DEAD", subjects_filter="dead.>")
    finally:
        await nc.close()
    dead = {subject: n for subject, n in (info.state.subjects or {}).items() if f".{org_id}" in subject}
    assert dead == {}, dead


@pytest.fixture
def services_survive(services: Services) -> Iterator[None]:
    """After the crash every service process must still be the one we started; restart any that died."""
    yield
    dead = [name for name in SERVICES if services.procs[name].poll() is not None]
    for name in dead:
        services.start(name)
    if dead:
        wait_ready(services.base_url, services.procs, services.logs)
        pytest.fail(f"service(s) {', '.join(dead)} died during the outage (restarted for the next tests)")
    assert httpx.get(f"{services.base_url}/readyz", timeout=10).status_code == 200


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("services_survive")
async def test_nats_sigkilled_with_runs_in_flight_loses_no_accepted_run_and_mints_each_once(
    nats_server: NatsServer, stack: Stack, org: CreatedOrg, submitter: AsyncClient, approver: AsyncClient
) -> None:
    runs = await crash_with_runs_in_flight(submitter, approver, nats_server)
    await assert_each_accepted_run_processed_exactly_once(stack, org.org_id, submitter, approver, runs)


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("services_survive")
async def test_postgres_sigkilled_with_runs_in_flight_loses_no_accepted_run_and_mints_each_once(
    pg_server: PostgresServer, stack: Stack, org: CreatedOrg, submitter: AsyncClient, approver: AsyncClient
) -> None:
    runs = await crash_with_runs_in_flight(submitter, approver, pg_server)
    await assert_each_accepted_run_processed_exactly_once(stack, org.org_id, submitter, approver, runs)

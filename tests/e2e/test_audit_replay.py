"""`defendable audit replay` over a real org on the real stack: nothing, then every tampering.

Runs go through the services (HTTP in, receipts minted by the ledger); the replay
reads the RUNS stream and asks the ledger for its receipts, as a user runs it. Then the
record is tampered with as an insider could: a receipt's payload rewritten in the ledger's
table, and a forged approval published straight to the stream (which the ledger mints,
since it trusts the stream); the replay reports each, with its kind and seq.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import asyncpg
import msgspec
import nats
import pytest
from nats.aio.client import Client as Nats

from defendable.client import AsyncClient
from defendable_canonical import jcs
from defendable_canonical.events import (
    Approved,
    Checked,
    Event,
    LaneUnlocked,
    RunCreated,
    Submitted,
    derive_id,
    encode,
    event_decoder,
)
from defendable_canonical.model import Approval, ReceiptBody, receipt_schema_for
from defendable_canonical.sample import sample_unlock_record
from defendable_canonical.subjects import RUNS_STREAM, event_subject
from defendable_gateway.admin import create_org
from defendable_stack.servers import Stack

from .conftest import Services, checked_run, key

SETTLE_S = 60.0


async def audit(nats_url: str, org_id: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "defendable_cli.main",
        "audit",
        "replay",
        "--org",
        org_id,
        "--nats",
        nats_url,
        "--json",
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        raise AssertionError(f"audit replay did not finish: {err.decode()[-3000:]}") from None
    assert proc.returncode is not None
    return proc.returncode, json.loads(out) if out.strip() else {}, err.decode()


async def receipts(database_url: str, org_id: str, expected: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + SETTLE_S
        while True:
            count = await conn.fetchval("SELECT count(*) FROM ledger.receipts WHERE org_id = $1", org_id)
            if count >= expected or time.monotonic() > deadline:
                assert count == expected, f"{count} receipts, expected {expected}"
                return
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def recorded(nc: Nats, name: str, org_id: str, run_id: str) -> Any:
    message = await nc.jetstream().get_last_msg(RUNS_STREAM, f"run.{name}.{org_id}.{run_id}")
    return event_decoder.decode(message.data or b"")


async def publish(nc: Nats, event: Event) -> None:
    ack = await nc.jetstream().publish(event_subject(event), encode(event), headers={"Nats-Msg-Id": event.event_id})
    assert not ack.duplicate


def kinds(report: dict[str, Any]) -> list[tuple[str, int | None]]:
    return sorted((d["kind"], d["seq"]) for d in report["divergences"])


@pytest.mark.timeout(600)
async def test_a_faithful_record_replays_clean_and_each_tampering_is_reported(stack: Stack, services: Services) -> None:
    org = await create_org(stack.database_url, "Audit Replay Trust", approver="Ada Auditor")
    org_id = org.org_id
    client = AsyncClient(services.base_url, key(org, "admin"))
    nc = await nats.connect(stack.nats_url)
    try:
        # 1. Three approved runs, one rejected, one checked and undecided (with flags), an unlock.
        approved = []
        for _ in range(3):
            run_id = await checked_run(client)
            await client.approve(run_id, note="inside policy")
            approved.append(run_id)
        rejected = await checked_run(client)
        await client.reject(rejected, note="not this one")
        undecided = await checked_run(client, dscr="1.9000")  # a wrong figure: flagged
        unlock = sample_unlock_record(7, org_id)
        lifted = LaneUnlocked(
            event_id=derive_id("ev", "audit-e2e", unlock.unlock_id),
            org_id=org_id,
            run_id=unlock.unlock_id,
            occurred_at=unlock.approval.decided_at,
            producer="intake",
            record=unlock,
        )
        await publish(nc, lifted)
        await receipts(stack.database_url, org_id, 4)
        for run_id in approved:
            await client.wait_for(run_id, ("minted",))

        # 2. The faithful record: no divergence, every run re-checked, every receipt rebuilt.
        code, report, err = await audit(stack.nats_url, org_id)
        assert code == 0, (report, err)
        summary = report["summary"]
        assert report["ok"] is True and report["divergences"] == []
        assert (summary["runs"], summary["rechecked"], summary["receipts"], summary["rebuilt"]) == (5, 5, 4, 4)
        assert set(summary["divergences"].values()) == {0}

        # 3. A receipt's payload rewritten in the ledger's own table (still canonical JSON).
        conn = await asyncpg.connect(stack.database_url)
        try:
            stored, victim = await conn.fetchrow(
                "SELECT payload, run_id FROM ledger.receipts WHERE org_id = $1 AND seq = 2", org_id
            )
            payload = msgspec.json.decode(stored)
            payload["approval"]["note"] = "approved without reservation"
            await conn.execute(
                "UPDATE ledger.receipts SET payload = $2 WHERE org_id = $1 AND seq = 2",
                org_id,
                jcs.canonicalize(payload),
            )
        finally:
            await conn.close()
        code, report, err = await audit(stack.nats_url, org_id)
        assert code == 1, (report, err)
        assert kinds(report) == [("chain_broken", 2), ("hash_mismatch", 2)], report["divergences"]
        mismatch = next(d for d in report["divergences"] if d["kind"] == "hash_mismatch")
        assert mismatch["run_id"] == victim and "approval" in mismatch["detail"]

        # 4. A forged approval of the undecided run, claiming a clean verdict: the ledger mints it.
        created: RunCreated = await recorded(nc, "created", org_id, undecided)
        submitted: Submitted = await recorded(nc, "submitted", org_id, undecided)
        checked: Checked = await recorded(nc, "checked", org_id, undecided)
        assert checked.verdict.severity != "honey"
        clean = msgspec.structs.replace(
            checked.verdict,
            score="100.00",
            severity="honey",
            client_ready=True,
            recommended_action="approve",
            flags=[],
        )
        body = ReceiptBody(
            schema=receipt_schema_for(created.lane),
            org_id=org_id,
            run_id=undecided,
            lane=created.lane,
            project=created.project,
            flight_sheet=checked.flight_sheet,
            agent_profile=created.agent_profile,
            assignment_sha256=created.assignment_sha256,
            evidence=submitted.evidence,
            submission_sha256=submitted.submission_sha256,
            findings=checked.findings,
            verdict=clean,
            approval=Approval(approver="Ada Auditor", decided_at=checked.occurred_at),
        )
        forged = Approved(
            event_id=derive_id("ev", "forged", undecided),
            org_id=org_id,
            run_id=undecided,
            occurred_at=checked.occurred_at,
            producer="intake",
            receipt=body,
        )
        await publish(nc, forged)
        await receipts(stack.database_url, org_id, 5)
        code, report, err = await audit(stack.nats_url, org_id)
        assert code == 1, (report, err)
        assert kinds(report) == [("chain_broken", 2), ("hash_mismatch", 2), ("inconsistent", 5)]
        inconsistent = next(d for d in report["divergences"] if d["kind"] == "inconsistent")
        assert inconsistent["run_id"] == undecided and "verdict not as Checked recorded" in inconsistent["detail"]

        # 5. From seq 3 on, the rewritten seq 2 only anchors the range (its recorded hash links on).
        code, report, err = await audit(stack.nats_url, org_id, "--from", "3")
        assert code == 1, (report, err)
        assert kinds(report) == [("inconsistent", 5)]
        assert report["summary"]["receipts"] == 3 and report["summary"]["rebuilt"] == 3

        # 6. Unusable input: exit 2, with the reason.
        code, _, err = await audit(stack.nats_url, "not an org!")
        assert code == 2 and "--org" in err
        code, _, err = await audit("nats://127.0.0.1:1", org_id)
        assert code == 2 and "cannot connect" in err
    finally:
        await nc.close()
        await client.aclose()

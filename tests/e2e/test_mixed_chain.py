"""Cook, incident and unlock receipts share the org's one chain with its eval receipts (DESIGN.md §1, §4).

Intake publishes CookApproved, IncidentAcknowledged and LaneUnlocked to JetStream once a
human approved the cook, acknowledged the incident, lifted the lock; this test publishes
them itself, exactly as intake would, interleaved with an ordinary approved run, and checks
what a customer sees: one gapless chain, each receipt served with its PDF, verifiable from
its share link, and a redelivered request that mints nothing new.
"""

from __future__ import annotations

import asyncio
import io
import secrets
import subprocess
import sys
import time
from typing import TypedDict

import nats
import pytest
from nats.aio.client import Client as Nats
from pypdf import PdfReader

from defendable.client import AsyncClient
from defendable_canonical.events import (
    CookApproved,
    Event,
    IncidentAcknowledged,
    LaneUnlocked,
    Minted,
    derive_id,
    encode,
    event_decoder,
)
from defendable_canonical.incident import UNLOCK_RECEIPT_SCHEMA
from defendable_canonical.model import COOK_RECEIPT_SCHEMA, EVAL_RECEIPT_SCHEMA, INCIDENT_RECEIPT_SCHEMA
from defendable_canonical.sample import sample_cook_body, sample_incident_body, sample_unlock_record
from defendable_canonical.subjects import RUNS_STREAM, event_subject
from defendable_canonical.verification import all_passed
from defendable_gateway.admin import CreatedOrg
from defendable_stack.servers import Stack

from .conftest import checked_run
from .test_crash_ledger import SETTLE_S, receipt_rows, verified_chain, wait_for_receipts
from .trust import outcomes, shared_checks

NOW = "2026-01-02T03:04:05.000Z"


class Envelope(TypedDict):
    event_id: str
    org_id: str
    run_id: str
    occurred_at: str
    producer: str


def envelope(kind: str, org_id: str, run_id: str) -> Envelope:
    return {
        "event_id": derive_id("ev", "intake", kind, org_id, run_id),
        "org_id": org_id,
        "run_id": run_id,
        "occurred_at": NOW,
        "producer": "intake",
    }


async def publish(nc: Nats, event: Event, msg_id: str | None = None) -> None:
    """As intake's publishes reach RUNS: subject by event type, `Nats-Msg-Id` the event id."""
    ack = await nc.jetstream().publish(
        event_subject(event), encode(event), headers={"Nats-Msg-Id": msg_id or event.event_id}
    )
    assert not ack.duplicate


async def minted(stack: Stack, org_id: str, expected: int) -> None:
    count = await wait_for_receipts(stack.database_url, org_id, expected, within=SETTLE_S)
    assert count == expected, f"{count} receipts, expected {expected}"


async def rendered_pdf(client: AsyncClient, receipt_hash: str) -> bytes:
    deadline = time.monotonic() + SETTLE_S
    while True:
        reply = await client.get(f"/receipts/{receipt_hash}.pdf")
        if reply.status_code == 200:
            return reply.content
        assert reply.status_code == 404 and time.monotonic() < deadline, (reply.status_code, reply.text)
        await asyncio.sleep(0.3)


async def served(client: AsyncClient, receipt_hash: str) -> dict[str, object]:
    """The gateway's copy of the receipt (its read model follows Minted): retried until it has it."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        reply = await client.get(f"/receipts/{receipt_hash}")
        if reply.status_code == 200:
            body: dict[str, object] = reply.json()
            return body
        assert reply.status_code == 404 and time.monotonic() < deadline, (reply.status_code, reply.text)
        await asyncio.sleep(0.3)


@pytest.mark.timeout(600)
async def test_cook_incident_and_unlock_receipts_chain_with_an_eval_receipt_and_each_verifies(
    stack: Stack, org: CreatedOrg, submitter: AsyncClient, approver: AsyncClient
) -> None:
    org_id = org.org_id
    cook = sample_cook_body(1, org_id, items=8)
    incident = sample_incident_body(1, org_id)
    unlock = sample_unlock_record(1, org_id)
    cook_event = CookApproved(**envelope("cook", org_id, cook.run_id), receipt=cook)
    incident_event = IncidentAcknowledged(**envelope("incident", org_id, incident.incident_id), receipt=incident)
    unlock_event = LaneUnlocked(**envelope("unlock", org_id, unlock.unlock_id), record=unlock)

    # 1. Interleaved: a cook, an ordinary approved run, an incident, its unlock; each minted before the next.
    run_id = await checked_run(submitter)
    nc = await nats.connect(stack.nats_url)
    try:
        await publish(nc, cook_event)
        await minted(stack, org_id, 1)
        await approver.approve(run_id, note="inside policy")
        await minted(stack, org_id, 2)
        await publish(nc, incident_event)
        await minted(stack, org_id, 3)
        await publish(nc, unlock_event)
        await minted(stack, org_id, 4)

        # 2. One chain, seq 1..4, in the order the requests were made.
        rows = await receipt_rows(stack.database_url, org_id)
        assert rows == [(1, cook.run_id), (2, run_id), (3, incident.incident_id), (4, unlock.unlock_id)]

        # 3. Each kind: one Minted on the stream, served by the gateway with its PDF.
        schemas = [COOK_RECEIPT_SCHEMA, EVAL_RECEIPT_SCHEMA, INCIDENT_RECEIPT_SCHEMA, UNLOCK_RECEIPT_SCHEMA]
        titles = [
            "Defendable cook receipt",
            "Defendable receipt",
            "Defendable incident receipt",
            "Defendable unlock receipt",
        ]
        js = nc.jetstream()
        hashes: list[str] = []
        for (seq, key), schema, title in zip(rows, schemas, titles, strict=True):
            message = await js.get_last_msg(RUNS_STREAM, f"run.minted.{org_id}.{key}")
            announced = event_decoder.decode(message.data or b"")
            assert isinstance(announced, Minted) and announced.seq == seq
            doc = await served(approver, announced.receipt_hash)
            payload = doc["payload"]
            assert isinstance(payload, dict) and payload["schema"] == schema and payload["seq"] == seq
            pdf = await rendered_pdf(approver, announced.receipt_hash)
            text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
            assert title in text and announced.receipt_hash in text
            hashes.append(announced.receipt_hash)

            # 4. Anyone holding the share link verifies it, in-process and with the CLI.
            links = doc["links"]
            assert isinstance(links, dict)
            share = str(links["share"])
            shared, checks = await shared_checks(share)
            assert all_passed(checks), checks
            assert outcomes(checks)["inclusion proof (RFC 9162)"] == "PASS"
            assert shared["transparency"]["leaf_index"] == seq - 1
            cli = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "defendable_cli.main", "verify", "--share", share],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert cli.returncode == 0, cli.stdout + cli.stderr
            assert f"a {schema} receipt" in cli.stdout

        # 5. The ledger verifies the whole chain over its own table.
        report = await verified_chain(approver)
        assert report == {"ok": True, "length": 4, "head": hashes[-1], "first_bad": None}

        # 6. A redelivered cook (a new Nats-Msg-Id: JetStream cannot drop it) mints nothing new
        #    and re-announces the same Minted under the same event id.
        subject = f"run.minted.{org_id}.{cook.run_id}"
        first = await js.get_last_msg(RUNS_STREAM, subject)
        watch = await nc.subscribe(subject)
        await publish(nc, cook_event, msg_id=f"redelivered-{secrets.token_hex(8)}")
        again = await watch.next_msg(timeout=SETTLE_S)
        again_minted = event_decoder.decode(again.data)
        first_minted = event_decoder.decode(first.data or b"")
        assert isinstance(again_minted, Minted) and isinstance(first_minted, Minted)
        assert again.headers is not None and again.headers.get("Nats-Msg-Id") == first_minted.event_id
        assert (again_minted.event_id, again_minted.seq, again_minted.receipt_hash) == (
            first_minted.event_id,
            1,
            hashes[0],
        )
        await asyncio.sleep(1.0)
        assert (await js.get_last_msg(RUNS_STREAM, subject)).seq == first.seq  # deduplicated by its event id
    finally:
        await nc.close()
    assert len(await receipt_rows(stack.database_url, org_id)) == 4
    report = await verified_chain(approver)
    assert report["ok"] is True and report["length"] == 4, report

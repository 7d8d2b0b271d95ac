"""A poison command is moved to the DEAD stream with its reason, and intake keeps working (DESIGN.md §3)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import nats
import pytest
from nats.aio.client import Client as Nats

from defendable.client import AsyncClient
from defendable_canonical.events import CreateRun, encode
from defendable_canonical.model import AgentProfile, FlightSheetRef
from defendable_gateway.admin import CreatedOrg

from .conftest import Services, checked_run

DEAD_WITHIN_S = 10.0


@pytest.fixture
async def bus(services: Services) -> AsyncIterator[Nats]:
    nc = await nats.connect(services.env["NATS_URL"])
    yield nc
    await nc.drain()


async def test_garbage_on_an_ingest_subject_is_dead_lettered_with_its_reason_and_intake_keeps_working(
    submitter: AsyncClient, org: CreatedOrg, bus: Nats, services: Services
) -> None:
    js = bus.jetstream()
    subject = f"ingest.create_run.{org.org_id}"
    dead = await js.subscribe(f"dead.intake.{subject}", ordered_consumer=True)
    garbage = b"\x00\xffthis is not a command" + secrets.token_bytes(16)
    await js.publish(subject, garbage, headers={"Nats-Msg-Id": "garbage-" + secrets.token_hex(8)})

    moved = await dead.next_msg(timeout=DEAD_WITHIN_S)
    assert moved.data == garbage
    assert moved.headers is not None
    assert "undecodable command" in moved.headers["Defendable-Dead-Reason"], moved.headers
    assert moved.headers["Defendable-Dead-Subject"] == subject
    for _ in range(50):  # intake terminates the original just after dead-lettering it
        info = await js.stream_info("INGEST", subjects_filter=subject)
        left = (info.state.subjects or {}).get(subject, 0)
        if left == 0:
            break
        await asyncio.sleep(0.1)
    assert left == 0, "the poison command is still in the work queue"

    run_id = await checked_run(submitter)
    assert (await submitter.run(run_id))["verdict"]["severity"] == "honey"
    assert services.procs["intake"].poll() is None


async def test_a_command_on_another_orgs_subject_is_dead_lettered_not_admitted(
    submitter: AsyncClient, org: CreatedOrg, bus: Nats
) -> None:
    js = bus.jetstream()
    subject = f"ingest.create_run.{org.org_id}"
    dead = await js.subscribe(f"dead.intake.{subject}", ordered_consumer=True)
    run_id = "run_" + secrets.token_hex(16)
    smuggled = CreateRun(
        command_id="cmd_" + secrets.token_hex(16),
        org_id="some-other-org-00000000",
        run_id=run_id,
        issued_at=datetime.now(UTC).isoformat(),
        actor="intruder",
        project="smuggled",
        lane="agent_work",
        flight_sheet=FlightSheetRef(id="cre_memo_dscr_ltv_v1", version="1.0.0", sha256="sha256:" + "0" * 64),
        agent_profile=AgentProfile(model="m", harness="h"),
    )
    await js.publish(subject, encode(smuggled), headers={"Nats-Msg-Id": smuggled.command_id})

    moved = await dead.next_msg(timeout=DEAD_WITHIN_S)
    assert moved.headers is not None
    reason = moved.headers["Defendable-Dead-Reason"]
    assert "does not belong to org some-other-org-00000000" in reason, reason
    response = await submitter.get(f"/runs/{run_id}")
    assert response.status_code == 404

"""Governance incidents end to end (issue 3), on the real stack.

Recurring high flags lock a lane for one agent profile (423, the clause cited), a human
acknowledges the incident and its receipt joins the org's chain, an approver unlocks the lane
(recorded too); a crash and redelivered verdicts still yield exactly one incident; a spend cap
and a dark agent open incidents the same way, under a policy declared in GOVERNANCE_POLICY_DIR.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import nats
import pytest
from nats.aio.client import Client as Nats

from defendable.client import AsyncClient
from defendable_canonical.events import CreateRun, encode
from defendable_canonical.incident import UNLOCK_RECEIPT_SCHEMA
from defendable_canonical.model import INCIDENT_RECEIPT_SCHEMA, AgentProfile, FlightSheetRef
from defendable_gateway.admin import CreatedOrg, create_org
from defendable_intake.governance_policy import load_library, publish
from defendable_stack.servers import Stack

from .conftest import AGENT_PROFILE, Services, create, key
from .memo import EVIDENCE, memo

T = TypeVar("T")
SETTLE_S = 60.0
OTHER_PROFILE: dict[str, Any] = {**AGENT_PROFILE, "model": "gpt-other"}
HIGH_FLAGS = "gov.high_flags.agent_work"
DEFAULT = load_library()["default_governance_v1@1.0.0"]


async def eventually(read: Callable[[], Awaitable[T]], done: Callable[[T], bool], within: float = SETTLE_S) -> T:
    """Poll `read` until `done` holds of its answer; the last answer either way (the caller asserts)."""
    deadline = time.monotonic() + within
    while True:
        value = await read()
        if done(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.25)


async def submitted_run(
    client: AsyncClient, profile: dict[str, Any], usage: dict[str, Any] | None = None, **kw: Any
) -> str:
    run_id = await create(client, profile)
    await asyncio.gather(*(client.add_file(run_id, name, data) for name, data in EVIDENCE.items()))
    await client.wait_for(run_id, ("created",))
    await client.submit(run_id, memo(**kw), usage=usage)
    return run_id


async def flagged_run(client: AsyncClient, profile: dict[str, Any]) -> str:
    """A checked run with high flags: its DSCR does not re-derive (the math rule's tier is high)."""
    run_id = await submitted_run(client, profile, dscr="9.9999")
    run = await client.wait_for(run_id, ("checked",))
    assert run["verdict"]["risk"]["high"] >= 1, run["verdict"]
    return run_id


async def incidents(client: AsyncClient, query: str = "") -> list[dict[str, Any]]:
    reply = await client.get(f"/incidents{query}")
    assert reply.status_code == 200, reply.text
    found: list[dict[str, Any]] = reply.json()["incidents"]
    return found


async def incident(client: AsyncClient, incident_id: str) -> dict[str, Any]:
    reply = await client.get(f"/incidents/{incident_id}")
    assert reply.status_code == 200, reply.text
    doc: dict[str, Any] = reply.json()
    return doc


async def only_incident(client: AsyncClient, **expect: str) -> dict[str, Any]:
    """The org's one incident, once the read model has it with `expect`'s values."""
    found = await eventually(
        lambda: incidents(client), lambda xs: len(xs) == 1 and all(xs[0][k] == v for k, v in expect.items())
    )
    assert len(found) == 1 and all(found[0][k] == v for k, v in expect.items()), found
    return found[0]


async def post_run(client: AsyncClient, profile: dict[str, Any]) -> Any:
    return await client.request(
        "POST",
        "/runs",
        json={
            "project": "Harbour Point refinancing",
            "lane": "agent_work",
            "flight_sheet": "cre_memo_dscr_ltv_v1@1.0.0",
            "agent_profile": profile,
        },
    )


@pytest.fixture
async def bus(services: Services) -> AsyncIterator[Nats]:
    nc = await nats.connect(services.env["NATS_URL"])
    yield nc
    await nc.drain()


async def stream_count(bus: Nats, subject: str) -> int:
    info = await bus.jetstream().stream_info("RUNS", subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


# ---------------------------------------------------------------------------- recurring high flags


async def test_three_high_flag_verdicts_lock_the_lane_for_that_profile_until_an_approver_unlocks_it(
    stack: Stack, services: Services, org: CreatedOrg, submitter: AsyncClient, approver: AsyncClient, bus: Nats
) -> None:
    flagged = [await flagged_run(submitter, AGENT_PROFILE) for _ in range(3)]
    opened = await only_incident(submitter, lock="locked")
    incident_id = opened["incident_id"]

    # 1. The fourth run of that profile in that lane is refused, the clause cited; another profile is not.
    refused = await post_run(submitter, AGENT_PROFILE)
    assert refused.status_code == 423, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["detail"] == (
        f"lane agent_work is locked for this agent profile by policy default_governance_v1@1.0.0 clause {HIGH_FLAGS}:"
        f" 3 high-flag verdicts within 86400 s; an approver can unlock it: POST /incidents/{incident_id}/unlock"
    )
    assert (problem["incident_id"], problem["clause_id"], problem["lane"]) == (incident_id, HIGH_FLAGS, "agent_work")
    same_tools_reordered = {**AGENT_PROFILE, "tools": ["calculator", "calculator"]}
    assert (await post_run(submitter, same_tools_reordered)).status_code == 423  # tools are a set
    assert (await post_run(submitter, OTHER_PROFILE)).status_code == 202

    # 2. The incident says what fired, for whom, under which policy, and what was done.
    doc = await incident(submitter, incident_id)
    assert (doc["kind"], doc["lane"], doc["clause_id"], doc["response"], doc["status"]) == (
        "high_flags", "agent_work", HIGH_FLAGS, "lock_lane", "open",
    )  # fmt: skip
    assert doc["agent_profile"] == AGENT_PROFILE
    assert doc["trigger"]["count"] == 3 and doc["trigger"]["runs"] == 3
    assert sorted(doc["trigger"]["run_ids"]) == sorted(flagged)
    assert doc["policy"]["id"] == "default_governance_v1" and doc["policy"]["version"] == "1.0.0"
    assert doc["policy"]["sha256"] == DEFAULT.sha256 and doc["policy"]["clause_id"] == HIGH_FLAGS
    assert doc["policy"]["clause"] == DEFAULT.clause_values[HIGH_FLAGS]
    assert doc["lock"]["state"] == "locked" and doc["lock"]["reason"] == problem["detail"]
    assert doc["receipt"] is None

    # 3. Intake refuses the run too when a client skips the gateway (an SDK on NATS).
    run_id = "run_" + secrets.token_hex(16)
    direct = CreateRun(
        command_id="cmd_" + secrets.token_hex(16), org_id=org.org_id, run_id=run_id,
        issued_at=datetime.now(UTC).isoformat(), actor="sdk", project="direct", lane="agent_work",
        flight_sheet=FlightSheetRef(id="cre_memo_dscr_ltv_v1", version="1.0.0", sha256="sha256:" + "0" * 64),
        agent_profile=msgspec.convert(AGENT_PROFILE, AgentProfile),
    )  # fmt: skip
    refusals = await bus.jetstream().subscribe(f"run.refused.{org.org_id}.{run_id}", ordered_consumer=True)
    await bus.jetstream().publish(
        f"ingest.create_run.{org.org_id}", encode(direct), headers={"Nats-Msg-Id": direct.command_id}
    )
    refusal = msgspec.json.decode((await refusals.next_msg(timeout=SETTLE_S)).data)
    await refusals.unsubscribe()
    assert (refusal["command_type"], refusal["reason"]) == ("CreateRun", problem["detail"]), refusal
    reply = await eventually(lambda: submitter.get(f"/runs/{run_id}"), lambda r: r.status_code == 200)
    assert reply.json()["stage"] == "refused", reply.text  # the read model learns of the run from its refusal
    assert [r["reason"] for r in reply.json()["refusals"]] == [problem["detail"]], reply.text  # and keeps why

    # 4. Only approvers acknowledge; the receipt is minted on the org's chain, once.
    denied = await submitter.request("POST", f"/incidents/{incident_id}/acknowledge", json={"note": "seen"})
    assert denied.status_code == 403, denied.text
    await approver._call("POST", f"/incidents/{incident_id}/acknowledge", json={"note": "model regressed; paused"})
    doc = await eventually(lambda: incident(approver, incident_id), lambda d: d["status"] == "minted")
    assert doc["acknowledgement"]["approver"] == "Zoë Ångström-Łukasiewicz", doc
    assert doc["acknowledgement"]["note"] == "model regressed; paused"
    assert doc["status"] == "minted", doc  # the ledger mints IncidentAcknowledged
    payload = doc["receipt"]["payload"]
    assert payload["schema"] == INCIDENT_RECEIPT_SCHEMA and payload["incident_id"] == incident_id
    assert payload["policy"] == doc["policy"] and payload["trigger"] == doc["trigger"]
    again = await approver.request("POST", f"/incidents/{incident_id}/acknowledge", json={})
    assert again.status_code == 409 and "already acknowledged by" in again.json()["detail"], again.text
    assert (await post_run(submitter, AGENT_PROFILE)).status_code == 423  # acknowledging does not unlock

    # 5. Unlocking is an approver action, recorded on the same chain; then the profile may run again.
    await approver._call("POST", f"/incidents/{incident_id}/unlock", json={"note": "fixed prompt; resume"})
    doc = await eventually(
        lambda: incident(approver, incident_id),
        lambda d: d["lock"]["state"] == "unlocked" and d["unlock_receipt"] is not None,
    )
    assert doc["lock"]["state"] == "unlocked", doc
    assert doc["unlock"]["approval"]["note"] == "fixed prompt; resume" and doc["unlock"]["incident_id"] == incident_id
    assert doc["unlock_receipt"] is not None, doc  # the ledger mints LaneUnlocked
    unlock_payload = doc["unlock_receipt"]["payload"]
    assert unlock_payload["schema"] == UNLOCK_RECEIPT_SCHEMA and unlock_payload["incident_id"] == incident_id
    twice = await approver.request("POST", f"/incidents/{incident_id}/unlock", json={})
    assert twice.status_code == 409 and "already unlocked" in twice.json()["detail"], twice.text
    resumed = await post_run(submitter, AGENT_PROFILE)
    assert resumed.status_code == 202, resumed.text
    await submitter.wait_for(resumed.json()["run_id"], ("created",))
    verify = (await approver.get("/ledger/verify")).json()
    assert verify["ok"] is True and verify["length"] == 2, verify  # the incident and the unlock receipts

    # 6. Another org sees none of it.
    other = await create_org(stack.env()["DATABASE_URL"], "Elsewhere Ltd", approver="Someone Else")
    them = AsyncClient(services.base_url, key(other, "approver"))
    their_submitter = AsyncClient(services.base_url, key(other, "submitter"))
    try:
        assert (await them.get(f"/incidents/{incident_id}")).status_code == 404
        assert (await them.request("POST", f"/incidents/{incident_id}/unlock", json={})).status_code == 404
        assert await incidents(them) == []
        assert (await post_run(their_submitter, AGENT_PROFILE)).status_code == 202  # their lane is not locked
    finally:
        await them.aclose()
        await their_submitter.aclose()


async def test_bad_governance_input_is_a_4xx_problem(submitter: AsyncClient, approver: AsyncClient) -> None:
    for path, body, status in [
        ("/agents/heartbeat", {"agent_profile": AGENT_PROFILE}, 400),  # no lane
        ("/agents/heartbeat", {"agent_profile": AGENT_PROFILE, "lane": "nowhere"}, 400),
        ("/incidents/inc_" + "0" * 32 + "/acknowledge", {}, 403),  # a submitter key
    ]:
        reply = await submitter.request("POST", path, json=body)
        assert reply.status_code == status, (path, reply.text)
        assert reply.headers["content-type"].startswith("application/problem+json")
    for path in ["/incidents/inc_" + "0" * 32, "/incidents/not-an-id", "/incidents/run_" + "0" * 32]:
        assert (await approver.get(path)).status_code == 404
    assert (await approver.request("POST", "/incidents/inc_" + "0" * 32 + "/unlock", json={})).status_code == 404
    assert (await approver.get("/incidents?status=bogus")).status_code == 400
    assert (await approver.get("/incidents?cursor=bogus")).status_code == 400
    assert (await approver.get("/incidents?limit=1000")).status_code == 400
    run_id = await create(submitter)
    await submitter.wait_for(run_id, ("created",))
    for usage in ['{"input_tokens": -1}', '{"cost": "1e9"}', '{"tokens": 3}', "not json", "x" * 2000]:
        reply = await submitter.request(
            "POST", f"/runs/{run_id}/submission", json=memo(), headers={"Defendable-Usage": usage}
        )
        assert reply.status_code == 400, (usage, reply.text)
        assert "Defendable-Usage" in reply.json()["detail"]


@pytest.mark.timeout(600)
async def test_an_intake_crash_and_redelivered_verdicts_still_yield_exactly_one_incident(
    services: Services, org: CreatedOrg, submitter: AsyncClient, approver: AsyncClient, bus: Nats
) -> None:
    run_ids = [await submitted_run(submitter, AGENT_PROFILE, dscr="9.9999") for _ in range(3)]
    for run_id in run_ids:
        await submitter.wait_for(run_id, ("submitted",))
    await asyncio.to_thread(services.kill, "intake")  # the verdicts now wait for intake in RUNS
    try:
        for run_id in run_ids:
            await submitter.wait_for(run_id, ("checked",), timeout=SETTLE_S)
    finally:
        services.start("intake")
    first = await only_incident(submitter, lock="locked")

    # Every verdict again, as a redelivery past JetStream's duplicate window would bring it.
    js = bus.jetstream()
    copies = await js.subscribe(f"run.checked.{org.org_id}.*", ordered_consumer=True)
    for _ in run_ids:
        checked = await copies.next_msg(timeout=10)
        await js.publish(checked.subject, checked.data, headers={"Nats-Msg-Id": "copy-" + secrets.token_hex(8)})
    await copies.unsubscribe()
    assert await eventually(lambda: stream_count(bus, f"run.checked.{org.org_id}.*"), lambda n: n == 6) == 6
    await asyncio.sleep(3.0)  # intake handles the copies: any second incident would appear by now

    assert await incidents(submitter) == [first]
    assert await stream_count(bus, f"run.incident_opened.{org.org_id}.*") == 1
    assert await stream_count(bus, f"run.lane_locked.{org.org_id}.*") == 1
    assert (await post_run(submitter, AGENT_PROFILE)).status_code == 423

    # Unlocked before anyone acknowledged it: the unlock acknowledges first, and both are minted.
    await approver._call("POST", f"/incidents/{first['incident_id']}/unlock", json={"note": "resume"})
    doc = await eventually(
        lambda: incident(approver, first["incident_id"]),
        lambda d: d["status"] == "minted" and d["unlock_receipt"] is not None,
    )
    assert doc["status"] == "minted" and doc["unlock_receipt"] is not None, doc
    assert doc["acknowledgement"]["note"] == "resume" and doc["lock"]["state"] == "unlocked"
    assert (await post_run(submitter, AGENT_PROFILE)).status_code == 202


# ---------------------------------------------------------------------------- a declared policy

E2E_POLICY = {
    "id": "e2e_governance_v1",
    "version": "1.0.0",
    "title": "Short windows for the end-to-end tests",
    "clauses": [
        {"id": HIGH_FLAGS, "kind": "high_flags", "lane": "agent_work", "count": 3, "window_s": 86400,
         "response": "lock_lane"},
        {"id": "gov.spend_cap.hourly", "kind": "spend_cap", "lane": "*", "window_s": 3600, "max_tokens": 10000,
         "max_cost": "1.00", "currency": "USD", "response": "lock_lane"},
        {"id": "gov.dark_agent.3s", "kind": "dark_agent", "lane": "*", "heartbeat_window_s": 3, "response": "alert"},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def declared_policy(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Intake restarted on a policy library of its own, ticking twice a second; then restored."""
    directory = tmp_path_factory.mktemp("governance")
    (directory / "e2e_governance_v1.json").write_text(json.dumps(E2E_POLICY, indent=2))
    assert publish(directory) == ["e2e_governance_v1@1.0.0"]
    services.stop("intake")
    services.start("intake", GOVERNANCE_POLICY_DIR=str(directory), GOVERNANCE_TICK_S="0.5")
    try:
        yield directory
    finally:
        services.stop("intake")
        services.start("intake")


async def test_usage_declared_with_submissions_past_a_spend_cap_locks_every_lane_for_that_profile(
    declared_policy: Path, submitter: AsyncClient
) -> None:
    spender = {**AGENT_PROFILE, "model": "gpt-spender"}
    usage = {"input_tokens": 5000, "output_tokens": 1000, "cost": "0.30"}
    first = await submitted_run(submitter, spender, usage=usage)
    await submitter.wait_for(first, ("checked",))
    assert await incidents(submitter) == []  # 6,000 tokens: under the cap
    second = await submitted_run(submitter, spender, usage=usage)  # 12,000 > 10,000 tokens in the hour
    run = await submitter.wait_for(second, ("checked",))
    assert run["verdict"]["severity"] == "honey"  # a clean run: only its usage counts here

    opened = await only_incident(submitter, kind="spend_cap", lock="locked")
    doc = await incident(submitter, opened["incident_id"])
    assert (doc["lane"], doc["clause_id"], doc["policy"]["id"]) == ("*", "gov.spend_cap.hourly", "e2e_governance_v1")
    trigger = doc["trigger"]
    assert (trigger["tokens"], trigger["cost"], trigger["breached"], trigger["runs"]) == (12000, "0.6", ["tokens"], 2)
    assert sorted(trigger["run_ids"]) == sorted([first, second])
    refused = await post_run(submitter, spender)
    assert refused.status_code == 423, refused.text
    assert refused.json()["detail"] == (
        "every lane is locked for this agent profile by policy e2e_governance_v1@1.0.0 clause gov.spend_cap.hourly:"
        " usage above 10000 tokens or 1.00 USD within 3600 s;"
        f" an approver can unlock it: POST /incidents/{opened['incident_id']}/unlock"
    )
    assert (await post_run(submitter, AGENT_PROFILE)).status_code == 202


async def test_an_agent_that_stops_sending_heartbeats_raises_a_dark_agent_alert(
    declared_policy: Path, submitter: AsyncClient, approver: AsyncClient
) -> None:
    quiet = {**AGENT_PROFILE, "model": "gpt-quiet"}
    beat = await submitter._call("POST", "/agents/heartbeat", json={"agent_profile": quiet, "lane": "agent_work"})
    assert beat["agent_id"].startswith("agent_") and len(beat["agent_id"]) == 38
    sent = time.monotonic()

    opened = await only_incident(submitter, kind="dark_agent")
    assert time.monotonic() - sent >= 3.0 - 0.5  # not before the window has passed
    doc = await incident(submitter, opened["incident_id"])
    assert (doc["response"], doc["lock"]["state"], doc["clause_id"]) == ("alert", "none", "gov.dark_agent.3s")
    assert doc["trigger"]["heartbeat_window_s"] == 3 and doc["trigger"]["silent_s"] >= 3
    assert (await post_run(submitter, quiet)).status_code == 202  # an alert locks nothing
    nothing = await approver.request("POST", f"/incidents/{opened['incident_id']}/unlock", json={})
    assert nothing.status_code == 409 and "set no lock" in nothing.json()["detail"], nothing.text

    await approver._call("POST", f"/incidents/{opened['incident_id']}/acknowledge", json={"note": "host rebooted"})
    doc = await eventually(lambda: incident(approver, opened["incident_id"]), lambda d: d["status"] == "minted")
    assert doc["status"] == "minted" and doc["receipt"]["payload"]["kind"] == "dark_agent", doc
    await asyncio.sleep(2.0)
    assert len(await incidents(submitter)) == 1  # one silence, one incident, however many ticks pass

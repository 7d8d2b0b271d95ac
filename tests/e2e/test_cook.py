"""Cook receipts end to end: a fine-tune's lift is minted only when it is real, and only once approved.

Every run here goes through the real stack (gateway → intake → referee), as a customer's
eval runs would: the cook names checked runs, intake vouches for them, the referee decides
the lift, a human approves, the ledger mints.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from defendable.client import AsyncClient, Reply
from defendable_canonical import jcs
from defendable_canonical.cook import COOK_RECEIPT_SCHEMA, EvalItem, cook_seed, eval_set_sha256
from defendable_gateway.admin import CreatedOrg, create_org
from defendable_referee.lift import paired_bootstrap
from defendable_stack.servers import Stack

from .conftest import Services, key
from .memo import EVIDENCE, SHEET, memo

NOI_SHEET = "cre_memo_noi_cap_rate_v1@1.0.0"
BASE, COOKED = "cre-analyst-8b", "cre-analyst-8b-cook-3"
DATASET = {"name": "cre-memos-ft", "version": "2026-11", "sha256": "sha256:" + hashlib.sha256(b"ft").hexdigest()}


async def eval_run(client: AsyncClient, model: str, sheet: str = SHEET, **memo_kw: Any) -> str:
    """One eval-set item evaluated by `model`: a checked run on `sheet`."""
    profile = {"model": model, "harness": "pytest", "tools": ["calculator"], "runtime": "python3.11"}
    for attempt in range(50):  # the referee may still be starting on the first test
        try:
            run_id = await client.create_run("Cook evals", sheet, profile, assignment="Assess DSCR and LTV.")
            break
        except Exception as exc:
            if "503" not in str(exc) or attempt == 49:
                raise
            await asyncio.sleep(0.2)
    await asyncio.gather(*(client.add_file(run_id, name, data) for name, data in EVIDENCE.items()))
    await client.wait_for(run_id, ("created",))
    await client.submit(run_id, memo(**memo_kw))
    await client.wait_for(run_id, ("checked",))
    return run_id


@dataclass
class Evals:
    org: CreatedOrg
    submitter: AsyncClient
    approver: AsyncClient
    pre: list[str]  # BASE, four memos with one wrong figure each, then two right ones
    post: list[str]  # COOKED, six right memos
    pre_right: list[str]  # BASE, two right memos
    pre_other_sheet: list[str]  # BASE on the NOI / cap-rate sheet
    created: str  # a run created but never submitted


@pytest.fixture(scope="module")
async def evals(stack: Stack, services: Services) -> AsyncIterator[Evals]:
    org = await create_org(stack.env()["DATABASE_URL"], "Cook Kitchen Capital", approver="Zoë Ångström-Łukasiewicz")
    submitter, approver = (
        AsyncClient(services.base_url, key(org, "submitter")),
        AsyncClient(services.base_url, key(org, "approver")),
    )
    wrong = [{"dscr": "1.7000"}] * 4 + [{}] * 2
    runs = await asyncio.gather(
        *(eval_run(submitter, BASE, **kw) for kw in wrong),
        *(eval_run(submitter, COOKED) for _ in range(6)),
        *(eval_run(submitter, BASE) for _ in range(2)),
        *(eval_run(submitter, BASE, NOI_SHEET) for _ in range(2)),
    )
    created = await submitter.create_run(
        "Cook evals", SHEET, {"model": BASE, "harness": "pytest", "tools": [], "runtime": ""}
    )
    yield Evals(
        org, submitter, approver, list(runs[:6]), list(runs[6:12]), list(runs[12:14]), list(runs[14:16]), created
    )
    await submitter.aclose()
    await approver.aclose()


def item_ids(n: int) -> list[str]:
    return [f"memo-{k:02d}" for k in range(n)]


def cook_body(pre: list[str], post: list[str], **changes: Any) -> dict[str, Any]:
    items = item_ids(len(pre))
    return {
        "project": "Harbour Point cook",
        "base_model": BASE,
        "cooked_model": COOKED,
        "dataset": DATASET,
        "eval_set": {
            "name": "cre-holdout-2026",
            "items": [{"id": i, "sha256": "sha256:" + hashlib.sha256(i.encode()).hexdigest()} for i in items],
        },
        "pre": [{"item_id": i, "run_id": r} for i, r in zip(items, pre, strict=True)],
        "post": [{"item_id": i, "run_id": r} for i, r in zip(items, post, strict=True)],
    } | changes


async def post_cook(client: AsyncClient, body: Any) -> Reply:
    return await client.request("POST", "/cooks", json=body)


async def request_cook(client: AsyncClient, body: dict[str, Any]) -> str:
    reply = await post_cook(client, body)
    assert reply.status_code == 202, reply.text
    answer = reply.json()
    assert answer["status"] == "requested" and answer["cook_id"].startswith("cook_")
    cook_id: str = answer["cook_id"]
    return cook_id


# `timeout` bounds a series of HTTP long-polls, not one awaitable.
async def wait_cook(client: AsyncClient, cook_id: str, *stages: str, timeout: float = 60.0) -> dict[str, Any]:  # noqa: ASYNC109
    """Long-poll GET /cooks/{id} until the cook is in one of `stages`."""
    deadline = time.monotonic() + timeout
    while True:
        reply = await client.request("GET", f"/cooks/{cook_id}", params={"until": stages[0], "timeout": "5"})
        assert reply.status_code == 200, reply.text
        cook: dict[str, Any] = reply.json()
        if cook["stage"] in stages:
            return cook
        if time.monotonic() > deadline:
            raise TimeoutError(f"cook {cook_id} is {cook['stage']}, waited for {stages}: {cook}")
        await asyncio.sleep(0.2)


def is_problem(reply: Reply, status: int) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json"), reply.headers
    body: dict[str, Any] = reply.json()
    assert body["status"] == status
    return body


async def test_a_cook_that_beat_its_base_is_minted_only_after_approval_with_a_recomputable_lift(
    evals: Evals,
) -> None:
    cook_id = await request_cook(evals.submitter, cook_body(evals.pre, evals.post))
    cook = await wait_cook(evals.submitter, cook_id, "checked", "refused")
    decision = cook["decision"]
    assert cook["stage"] == "checked", cook
    assert decision["eligible"] is True and decision["reasons"] == []
    assert [s["score"] for s in decision["pre"]["items"]] == ["86.67"] * 4 + ["100.00"] * 2
    assert decision["lift"]["mean_difference"] == "8.8867" and Decimal(decision["lift"]["lower"]) > 0

    # No receipt without approval: a checked cook waits for a human.
    await asyncio.sleep(0.5)
    assert (await wait_cook(evals.submitter, cook_id, "checked"))["receipt"] is None
    reply = await evals.submitter.request("POST", f"/cooks/{cook_id}/approve", json={})
    is_problem(reply, 403)  # a submitter may not approve

    reply = await evals.approver.request("POST", f"/cooks/{cook_id}/approve", json={"note": "Lift holds on holdout."})
    assert reply.status_code == 202, reply.text
    approved = await wait_cook(evals.approver, cook_id, "approved", "minted")
    assert approved["approval"]["approver"] == "Zoë Ångström-Łukasiewicz"
    reply = await evals.approver.request("POST", f"/cooks/{cook_id}/approve", json={})
    assert "already decided" in is_problem(reply, 409)["detail"]

    # The mint (services/ledger handles CookApproved).
    cook = await wait_cook(evals.approver, cook_id, "minted")
    receipt = cook["receipt"]
    payload = receipt["payload"]
    assert receipt["receipt_hash"] == "sha256:" + hashlib.sha256(jcs.canonicalize(payload)).hexdigest()
    assert payload["schema"] == COOK_RECEIPT_SCHEMA and payload["run_id"] == cook_id
    assert payload["org_id"] == evals.org.org_id and payload["seq"] == 1
    assert (payload["base_model"], payload["cooked_model"], payload["dataset"]) == (BASE, COOKED, DATASET)
    sheet = (await evals.submitter.get(f"/flight-sheets/{SHEET}")).json()
    assert payload["flight_sheet"] == {"id": sheet["id"], "version": sheet["version"], "sha256": sheet["sha256"]}
    items = [EvalItem(id=i, sha256="sha256:" + hashlib.sha256(i.encode()).hexdigest()) for i in item_ids(6)]
    assert payload["eval_set"] == {"name": "cre-holdout-2026", "sha256": eval_set_sha256(items), "items": 6}
    assert payload["pre"]["items"] == [
        {"item_id": i, "run_id": r, "score": s}
        for i, r, s in zip(item_ids(6), evals.pre, ["86.67"] * 4 + ["100.00"] * 2, strict=True)
    ]
    assert payload["post"]["items"] == [
        {"item_id": i, "run_id": r, "score": "100.00"} for i, r in zip(item_ids(6), evals.post, strict=True)
    ]
    assert (payload["pre"]["mean_score"], payload["post"]["mean_score"]) == ("91.1133", "100.0000")
    assert payload["approval"]["approver"] == "Zoë Ångström-Łukasiewicz"
    assert payload["approval"]["note"] == "Lift holds on holdout."

    # Anyone re-derives the lift from the receipt alone: seed, bounds, method.
    lift = payload["lift"]
    assert lift["seed"] == cook_seed(payload["eval_set"]["sha256"], sheet["sha256"], evals.pre, evals.post)
    estimate = paired_bootstrap(
        [Decimal(s["score"]) for s in payload["pre"]["items"]],
        [Decimal(s["score"]) for s in payload["post"]["items"]],
        seed=lift["seed"],
        resamples=lift["resamples"],
        confidence=Decimal(lift["confidence"]),
    )
    assert (lift["lower"], lift["upper"], lift["mean_difference"]) == (estimate.lower, estimate.upper, "8.8867")
    assert Decimal(lift["lower"]) > Decimal(lift["noise_floor"]) == 0
    assert lift["method"] == "paired-percentile-bootstrap/sha256-ctr" and lift["confidence"] == "0.95"
    verify = (await evals.approver.get("/ledger/verify")).json()
    assert verify["ok"] is True and verify["length"] == 1, verify
    share = (await evals.approver.get(receipt["links"]["share"].removeprefix(evals.approver.base_url))).json()
    assert share["receipt_hash"] == receipt["receipt_hash"]


async def test_intake_killed_around_a_cooks_request_and_approval_still_mints_it_once(
    evals: Evals, services: Services
) -> None:
    """An accepted cook command waits in INGEST while intake is down, and is admitted once after."""
    before = (await evals.approver.get("/ledger/verify")).json()["length"]
    await asyncio.to_thread(services.kill, "intake")
    try:
        cook_id = await request_cook(evals.submitter, cook_body(evals.pre, evals.post))  # 202: waits in INGEST
    finally:
        services.start("intake")
    assert (await wait_cook(evals.submitter, cook_id, "checked", "refused"))["stage"] == "checked"
    await asyncio.to_thread(services.kill, "intake")
    try:
        reply = await evals.approver.request("POST", f"/cooks/{cook_id}/approve", json={})
        assert reply.status_code == 202, reply.text
    finally:
        services.start("intake")
    cook = await wait_cook(evals.approver, cook_id, "minted", timeout=120)
    assert cook["refusals"] == [] and cook["receipt"]["payload"]["run_id"] == cook_id
    await asyncio.sleep(1.0)  # room for a second, wrong mint to show up
    verify = (await evals.approver.get("/ledger/verify")).json()
    assert verify["ok"] is True and verify["length"] == before + 1, verify


async def test_a_cook_that_did_not_beat_its_base_is_refused_and_cannot_be_approved(evals: Evals) -> None:
    cook_id = await request_cook(evals.submitter, cook_body(evals.pre_right, evals.post[:2]))
    cook = await wait_cook(evals.submitter, cook_id, "checked", "refused")
    reason = "did not beat the baseline: lower bound 0.0000 ≤ noise floor 0"
    assert cook["stage"] == "refused", cook
    assert cook["decision"]["eligible"] is False and cook["decision"]["reasons"] == [reason]
    assert cook["refusal_reasons"] == [reason] and cook["receipt"] is None
    assert cook["decision"]["lift"]["lower"] == "0.0000"  # the lift is shown even when refused
    for decision in ("approve", "reject"):
        reply = await evals.approver.request("POST", f"/cooks/{cook_id}/{decision}", json={})
        assert is_problem(reply, 409)["detail"] == f"cook {cook_id} was refused, so it cannot be decided: {reason}"


async def test_a_cook_whose_pre_and_post_used_different_sheets_is_refused(evals: Evals) -> None:
    cook_id = await request_cook(evals.submitter, cook_body(evals.pre_other_sheet, evals.post[:2]))
    cook = await wait_cook(evals.submitter, cook_id, "checked", "refused")
    assert cook["stage"] == "refused", cook
    (reason,) = cook["decision"]["reasons"]
    assert reason.startswith(f"pre and post used different flight sheets: pre {NOI_SHEET} (sha256:"), reason
    assert f"post {SHEET} (sha256:" in reason
    assert cook["decision"]["lift"] is None
    reply = await evals.approver.request("POST", f"/cooks/{cook_id}/approve", json={})
    assert "pre and post used different flight sheets" in is_problem(reply, 409)["detail"]


async def test_a_cook_naming_unchecked_or_unknown_runs_is_refused_by_intake(evals: Evals) -> None:
    unchecked = await request_cook(evals.submitter, cook_body([evals.created, evals.pre[1]], evals.post[:2]))
    cook = await wait_cook(evals.submitter, unchecked, "refused")
    assert cook["refusal_reasons"] == [
        f"cook {unchecked}: runs without a verdict: {evals.created} (created); cook checked runs only"
    ]
    ghost = "run_" + "0" * 32
    unknown = await request_cook(evals.submitter, cook_body([ghost, evals.pre[1]], evals.post[:2]))
    cook = await wait_cook(evals.submitter, unknown, "refused")
    assert cook["refusal_reasons"] == [f"cook {unknown}: runs not found in this organisation: {ghost}"]
    reply = await evals.approver.request("POST", f"/cooks/{unknown}/approve", json={})
    assert "runs not found" in is_problem(reply, 409)["detail"]


async def test_another_org_cannot_read_approve_or_cook_with_this_orgs_runs(
    evals: Evals, stack: Stack, services: Services
) -> None:
    cook_id = await request_cook(evals.submitter, cook_body(evals.pre[:2], evals.post[:2]))
    await wait_cook(evals.submitter, cook_id, "checked", "refused")
    other = await create_org(stack.env()["DATABASE_URL"], "Intruder Kitchens")
    them = AsyncClient(services.base_url, key(other, "admin"))
    try:
        fake = "cook_" + "0" * 32
        for method, path in (("GET", ""), ("POST", "/approve"), ("POST", "/reject")):
            theirs = is_problem(await them.request(method, f"/cooks/{cook_id}{path}", json={}), 404)
            missing = is_problem(await them.request(method, f"/cooks/{fake}{path}", json={}), 404)
            assert theirs == {**missing, "detail": missing["detail"].replace(fake, cook_id)}
        stolen = await request_cook(them, cook_body(evals.pre[:2], evals.post[:2]))
        cook = await wait_cook(them, stolen, "refused")
        (reason,) = cook["refusal_reasons"]
        assert reason.startswith(f"cook {stolen}: runs not found in this organisation: {evals.pre[0]}, ")
        assert evals.org.org_id not in msgspec.json.encode(cook).decode()
    finally:
        await them.aclose()


DIGEST = "sha256:" + "a" * 64
PAIR = {"item_id": "i1", "run_id": "run_" + "1" * 32}


def _malformed() -> list[tuple[str, Any, int, str]]:
    body = cook_body(["run_" + "1" * 32, "run_" + "2" * 32], ["run_" + "3" * 32, "run_" + "4" * 32])
    items = body["eval_set"]["items"]
    without_dataset = {k: v for k, v in body.items() if k != "dataset"}
    many = {"name": "big", "items": [{"id": f"i{k}", "sha256": DIGEST} for k in range(10_001)]}
    return [
        ("missing field", without_dataset, 400, "Object missing required field `dataset`"),
        ("10,001 items", body | {"eval_set": many}, 400, "Expected `array` of length <= 10000 (eval_set.items)"),
        ("bad item digest", body | {"eval_set": {"name": "x", "items": [{"id": "i", "sha256": "sha256:abc"}]}}, 400,
         "Expected `str` matching regex '^sha256:[0-9a-f]{64}$' (eval_set.items[0].sha256)"),
        ("bad dataset digest", body | {"dataset": DATASET | {"sha256": "A" * 64}}, 400, "(dataset.sha256)"),
        ("duplicate item ids", body | {"eval_set": {"name": "x", "items": [items[0], items[0]]}}, 422,
         "eval set lists item ids more than once: 'memo-00'"),
        ("pairs not on the eval set", body | {"pre": [PAIR, PAIR]}, 422, "pre lists items more than once: 'i1'"),
        ("same model twice", body | {"cooked_model": BASE}, 422, "a cook compares two models"),
        ("a malformed run id", body | {"post": [{"item_id": "memo-00", "run_id": "run_x"}]}, 400,
         "Expected `str` matching regex '^run_[0-9a-f]{32}$' (post[0].run_id)"),
        ("an unknown field", body | {"seed": 7}, 400, "unknown field `seed`"),
        ("not an object", [body], 400, "Expected `object`, got `array`"),
        ("empty sides", body | {"pre": []}, 400, "Expected `array` of length >= 1 (pre)"),
    ]  # fmt: skip


@pytest.mark.parametrize(("case", "body", "status", "detail"), _malformed(), ids=[c[0] for c in _malformed()])
async def test_a_malformed_cook_request_is_a_4xx_problem_naming_what_to_fix(
    evals: Evals, case: str, body: Any, status: int, detail: str
) -> None:
    problem = is_problem(await post_cook(evals.submitter, body), status)
    # Litestar names what failed in `extra`: each message with the key it is about.
    said = " ".join([problem["detail"], *(f"{e['message']} ({e['key']})" for e in problem.get("extra", []))])
    assert detail in said, problem


async def test_only_a_submitter_requests_a_cook(evals: Evals) -> None:
    is_problem(await post_cook(evals.approver, cook_body(evals.pre[:2], evals.post[:2])), 403)
    is_problem(await evals.approver.request("GET", "/cooks/not-a-cook"), 404)

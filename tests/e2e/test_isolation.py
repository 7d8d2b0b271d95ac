"""One org can never see, decide or verify another org's runs (DESIGN.md §6)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from defendable.client import AsyncClient
from defendable_gateway.admin import CreatedOrg, create_org
from defendable_stack.servers import Stack

from .conftest import Services, checked_run, key


@pytest.fixture
async def intruder(stack: Stack, services: Services) -> AsyncIterator[tuple[CreatedOrg, AsyncClient]]:
    other = await create_org(stack.env()["DATABASE_URL"], "Intruder Holdings")
    client = AsyncClient(services.base_url, key(other, "admin"))  # admin: every role, so only the org can stop it
    yield other, client
    await client.aclose()


def same_as_missing(theirs: httpx.Response, missing: httpx.Response, real: str, fake: str) -> None:
    """Another org's thing answers exactly like a thing that does not exist."""
    assert theirs.status_code == 404, theirs.text
    assert theirs.headers["content-type"].startswith("application/problem+json")
    assert theirs.json() == {**missing.json(), "detail": missing.json()["detail"].replace(fake, real)}


async def test_another_orgs_keys_get_404s_indistinguishable_from_a_missing_run(
    submitter: AsyncClient, approver: AsyncClient, org: CreatedOrg, intruder: tuple[CreatedOrg, AsyncClient]
) -> None:
    other, them = intruder
    minted = await checked_run(submitter)
    await approver.approve(minted)
    await approver.wait_for(minted, ("rendered",))
    _, receipt = await approver.receipt(minted)
    h = receipt["receipt_hash"]
    pending = await checked_run(submitter)
    fake_run, fake_hash = "run_" + "0" * 32, "sha256:" + "0" * 64

    raw = httpx.AsyncClient(base_url=them.base_url, headers={"Authorization": f"Bearer {key(other, 'admin')}"})

    async def both(method: str, path: str, real: str, fake: str) -> None:
        theirs = await raw.request(method, path, json={})
        missing = await raw.request(method, path.replace(real, fake), json={})
        same_as_missing(theirs, missing, real, fake)
        assert org.org_id not in theirs.text and org.name not in theirs.text

    for run_id in (minted, pending):
        await both("GET", f"/runs/{run_id}", run_id, fake_run)
        await both("POST", f"/runs/{run_id}/approve", run_id, fake_run)
        await both("POST", f"/runs/{run_id}/reject", run_id, fake_run)
        await both("POST", f"/runs/{run_id}/receipt", run_id, fake_run)
        await both("POST", f"/runs/{run_id}/submission", run_id, fake_run)
    await both("GET", f"/receipts/{h}", h, fake_hash)
    await both("GET", f"/receipts/{h}.pdf", h, fake_hash)
    await raw.aclose()

    listed = (await them.get("/runs")).json()
    assert listed == {"runs": [], "next_cursor": None}
    # The intruder's approve did nothing: the pending run is still undecided and its owner may decide it.
    assert (await approver.run(pending))["stage"] == "checked"
    assert {r["run_id"] for r in (await submitter.get("/runs")).json()["runs"]} == {minted, pending}


async def test_each_org_verifies_only_its_own_chain_and_a_share_link_proves_only_its_own_log(
    submitter: AsyncClient, approver: AsyncClient, intruder: tuple[CreatedOrg, AsyncClient], services: Services
) -> None:
    _, them = intruder
    assert (await them.get("/ledger/verify")).json() == {"ok": True, "length": 0, "head": None, "first_bad": None}

    ours = []
    for _ in range(2):
        run_id = await checked_run(submitter)
        await approver.approve(run_id)
        await approver.wait_for(run_id, ("minted", "rendered"))
        ours.append((await approver.receipt(run_id))[1])
    theirs_run = await checked_run(them)
    await them.approve(theirs_run)
    await them.wait_for(theirs_run, ("minted", "rendered"))
    _, theirs = await them.receipt(theirs_run)
    assert theirs["seq"] == 1  # the intruder's chain starts at its own genesis

    assert (await them.get("/ledger/verify")).json() == {
        "ok": True, "length": 1, "head": theirs["receipt_hash"], "first_bad": None,
    }  # fmt: skip
    assert (await approver.get("/ledger/verify")).json() == {
        "ok": True, "length": 2, "head": ours[1]["receipt_hash"], "first_bad": None,
    }  # fmt: skip

    async with httpx.AsyncClient(timeout=10.0) as anonymous:
        first = await anonymous.get(ours[0]["links"]["share"])
        second = await anonymous.get(ours[1]["links"]["share"])
    assert first.status_code == second.status_code == 200
    origin = first.json()["transparency"]["origin"]
    assert origin.endswith("/" + ours[0]["payload"]["org_id"]) and origin == second.json()["transparency"]["origin"]
    assert [d.json()["transparency"]["leaf_index"] for d in (first, second)] == [0, 1]
    # A stranger sees this receipt and a proof of it, never a later receipt of the org (the
    # second names the first only as its parent, inside its own payload).
    assert ours[1]["receipt_hash"] not in first.text
    assert theirs["receipt_hash"] not in first.text + second.text

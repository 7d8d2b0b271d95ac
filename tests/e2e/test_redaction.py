"""Redacted receipts on the real stack (docs/redaction.md): an org that redacts evidence names,
notes and the approver mints receipts holding salted commitments; its approvers fetch the
disclosures; `defendable verify --reveal` opens exactly the fields handed over; the public page
shows the fields as redacted; the receipt and its hash never change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from defendable.client import AsyncClient
from defendable_canonical.redaction import is_commitment
from defendable_gateway.admin import CreatedOrg
from defendable_stack.servers import Stack

from .conftest import Services, checked_run, key, minted_receipt
from .memo import EVIDENCE
from .test_audit_replay import audit
from .trust import outcomes, shared_checks
from .trust import verify_cli as verify

NOTE = "Checked the DSCR workings with Priya; fine to send."
ALL = ["evidence.name", "approval.note", "approval.approver"]


async def redacted_receipt(
    services: Services, org: CreatedOrg, submitter: AsyncClient, approver: AsyncClient
) -> dict[str, Any]:
    async with AsyncClient(services.base_url, key(org, "admin")) as admin:
        put = await admin.request("PUT", "/org/settings", json={"redact": ALL})
        assert put.status_code == 200, put.text
    return await minted_receipt(submitter, approver, NOTE)


async def test_a_redacting_org_mints_commitments_and_reveals_one_field_at_a_time(
    services: Services, org: CreatedOrg, submitter: AsyncClient, approver: AsyncClient, tmp_path: Path
) -> None:
    receipt = await redacted_receipt(services, org, submitter, approver)
    payload = receipt["payload"]
    assert sorted(payload["redacted"]) == sorted(
        ["approval.approver", "approval.note", *(f"evidence[{i}].name" for i in range(len(EVIDENCE)))]
    )
    assert is_commitment(payload["approval"]["approver"]) and is_commitment(payload["approval"]["note"])
    assert all(is_commitment(e["name"]) for e in payload["evidence"])
    stored = json.dumps(payload)
    assert NOTE not in stored and "Zoë" not in stored and not any(name in stored for name in EVIDENCE)

    # A stranger: every check passes, and the redacted fields are named.
    share = receipt["links"]["share"]
    _, checks = await shared_checks(share)
    assert outcomes(checks)["redacted fields"] == "PASS", checks
    assert outcomes(checks)["revealed fields"] == "SKIPPED"

    # The org reveals the approver only.
    url = f"/receipts/{receipt['receipt_hash']}/disclosures"
    only = await approver.get(f"{url}?path=approval.approver")
    assert only.status_code == 200, only.text
    disclosures = only.json()["disclosures"]
    assert [(d["path"], d["value"]) for d in disclosures] == [("approval.approver", "Zoë Ångström-Łukasiewicz")]
    (tmp_path / "reveal.json").write_text(only.text)
    (tmp_path / "receipt.json").write_text(json.dumps(receipt))
    cli = await verify(str(tmp_path / "receipt.json"), "--reveal", str(tmp_path / "reveal.json"))
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "PASS     revealed fields" in cli.stdout
    assert "approval.approver = 'Zoë Ångström-Łukasiewicz'" in cli.stdout

    # A disclosure with another value does not open the commitment.
    forged = only.json()
    forged["disclosures"][0]["value"] = "Mallory"
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    bad = await verify(str(tmp_path / "receipt.json"), "--reveal", str(tmp_path / "forged.json"))
    assert bad.returncode == 1, bad.stdout
    assert "FAIL     revealed fields" in bad.stdout

    # All of them, and the receipt is the same receipt: revealing changes no byte of it.
    every = (await approver.get(url)).json()["disclosures"]
    assert {d["path"] for d in every} == set(payload["redacted"])
    again = await approver.get(f"/receipts/{receipt['receipt_hash']}")
    assert again.json()["payload"] == payload


async def test_disclosures_are_for_the_orgs_approvers_only(
    services: Services, org: CreatedOrg, submitter: AsyncClient, approver: AsyncClient
) -> None:
    receipt = await redacted_receipt(services, org, submitter, approver)
    url = f"/receipts/{receipt['receipt_hash']}/disclosures"
    assert (await submitter.get(url)).status_code == 403
    async with httpx.AsyncClient(base_url=services.base_url) as anonymous:
        assert (await anonymous.get(url)).status_code == 401
    bad = await approver.get(f"{url}?path=approval.decided_at")
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")
    assert (await approver.get(f"/receipts/sha256:{'0' * 64}/disclosures")).status_code == 404


async def test_an_org_that_redacts_nothing_mints_receipts_without_a_redacted_member(
    submitter: AsyncClient, approver: AsyncClient
) -> None:
    run_id = await checked_run(submitter)
    await approver.approve(run_id, NOTE)
    await approver.wait_for(run_id, ("minted", "rendered"), timeout=60)
    _, receipt = await approver.receipt(run_id)
    assert isinstance(receipt, dict)
    assert "redacted" not in receipt["payload"]
    assert receipt["payload"]["approval"]["note"] == NOTE
    empty = await approver.get(f"/receipts/{receipt['receipt_hash']}/disclosures")
    assert empty.json()["disclosures"] == []


async def test_a_redacting_orgs_record_replays_clean(
    stack: Stack, services: Services, org: CreatedOrg, submitter: AsyncClient, approver: AsyncClient
) -> None:
    """`defendable audit replay` puts redacted evidence names back from the disclosures to compare
    with what Submitted recorded, and checks that each disclosure opens its commitment."""
    await redacted_receipt(services, org, submitter, approver)
    code, report, err = await audit(stack.nats_url, org.org_id)
    assert code == 0, (report, err[-2000:])
    assert report["divergences"] == [] and report["summary"]["rebuilt"] == 1, report

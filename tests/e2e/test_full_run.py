"""A run from HTTP to a verified receipt, across the services (and the witness) on real servers."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys

import httpx
from pypdf import PdfReader

from defendable.client import AsyncClient
from defendable_canonical.digest import GENESIS_HASH
from defendable_canonical.verification import all_passed, verify_document
from defendable_gateway.admin import create_org
from defendable_stack.servers import Stack

from .conftest import Services, checked_run, key
from .trust import outcomes, shared_checks


async def test_an_approved_run_gets_a_signed_chained_receipt_that_verifies_from_its_share_link(
    submitter: AsyncClient, approver: AsyncClient, services: Services
) -> None:
    run_id = await checked_run(submitter)
    run = await submitter.run(run_id)
    assert run["verdict"]["severity"] == "honey", (
        [f["message"] for f in run["findings"] if f["status"] != "pass"],
        run["evidence"],
    )
    assert run["verdict"]["recommended_action"] == "approve"
    assert [e["status"] for e in run["evidence"]] == ["attached"] * 3

    status, _ = await submitter.receipt(run_id)
    assert status == 409  # not approved yet: no receipt

    await approver.approve(run_id, note="Coverage comfortably inside policy.")
    run = await approver.wait_for(run_id, ("minted", "rendered"))
    status, receipt = await approver.receipt(run_id)
    assert status == 200
    payload = receipt["payload"]
    assert payload["run_id"] == run_id
    assert payload["seq"] == 1 and payload["parent_hash"] == GENESIS_HASH
    assert payload["approval"]["approver"] == "Zoë Ångström-Łukasiewicz"
    assert payload["schema"] == "defendablecloud.eval-receipt/v1"
    assert "signature" not in payload and "share_token" not in str(payload)

    shared, checks = await shared_checks(receipt["links"]["share"])
    assert all_passed(checks), checks
    seen = outcomes(checks)
    assert seen["inclusion proof (RFC 9162)"] == seen["checkpoint signature (log key)"] == "PASS"
    assert seen["signing key known"] == seen["log origin"] == "PASS"
    assert shared["transparency"]["leaf_index"] == 0 and "links" not in shared

    cli = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "defendable_cli.main", "verify", "--share", receipt["links"]["share"]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "PASS" in cli.stdout

    await approver.wait_for(run_id, ("rendered",))
    pdf = await approver.get(f"/receipts/{receipt['receipt_hash']}.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")

    verify = (await approver.get("/ledger/verify")).json()
    assert verify == {"ok": True, "length": 1, "head": receipt["receipt_hash"], "first_bad": None}


async def test_the_receipt_pdf_draws_an_approver_named_in_cjk_and_hangul(stack: Stack, services: Services) -> None:
    name = "山田 太郎 · 김민수"  # none of it in DejaVu: the render service's fallback face draws it
    org = await create_org(stack.database_url, "東京 Capital", approver=name)
    submitter = AsyncClient(services.base_url, key(org, "submitter"))
    approver = AsyncClient(services.base_url, key(org, "approver"))
    try:
        run_id = await checked_run(submitter)
        await approver.approve(run_id)
        await approver.wait_for(run_id, ("rendered",))
        _, receipt = await approver.receipt(run_id)
        pdf = await approver.get(f"/receipts/{receipt['receipt_hash']}.pdf")
    finally:
        await submitter.aclose()
        await approver.aclose()
    assert pdf.status_code == 200
    assert b"/BaseFont /MPDFAA+WenQuanYiMicroHei" in pdf.content
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert name in text


async def test_a_tampered_share_document_fails_verification(submitter: AsyncClient, approver: AsyncClient) -> None:
    run_id = await checked_run(submitter)
    await approver.approve(run_id)
    await approver.wait_for(run_id, ("minted", "rendered"))
    _, receipt = await approver.receipt(run_id)
    async with httpx.AsyncClient() as anonymous:
        shared = (await anonymous.get(receipt["links"]["share"])).json()
    shared["payload"]["verdict"]["score"] = "100.00" if shared["payload"]["verdict"]["score"] != "100.00" else "99.00"
    checks = {c.name: c.outcome for c in verify_document(shared)}
    assert checks["receipt hash"] == "FAIL"

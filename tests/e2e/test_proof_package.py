"""Proof packages (`GET /receipts/{hash}/package`) on the real stack: the ZIP's members against what
the gateway serves one by one, `defendable verify` on the ZIP (and on a one-byte tamper of it), the
org's evidence setting, isolation, and verify.html opened from file:// in Chromium with the
network off (Debian's /usr/bin/chromium through Playwright, as test_receipt_page.py)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, Page, Route

from defendable.client import AsyncClient
from defendable_canonical.verify_transparency import TRANSPARENCY_CHECKS
from defendable_gateway.admin import CreatedOrg, create_org
from defendable_gateway.package_routes import MAX_PACKAGE_EVIDENCE_BYTES
from defendable_stack.servers import Stack

from .conftest import Services, checked_run, key, minted_receipt
from .memo import EVIDENCE
from .trust import verify_cli as verify

CORE = {"receipt.json", "receipt.pdf", "proof.tlog", "checkpoint.txt", "keys.json", "README.txt", "verify.html"}
PROOF_CHECKS = (
    "canonical form (RFC 8785)",
    "receipt hash",
    "receipt schema",
    "signature (Ed25519)",
    "signing key known",
    *(name for name in TRANSPARENCY_CHECKS if name != "witness cosignatures"),
)


async def witnessed(services: Services, receipt: dict[str, Any]) -> list[dict[str, str]]:
    """Wait until the witness has cosigned the checkpoint the receipt's proof ends with; its witnesses."""
    token = receipt["links"]["share"].rsplit("/", 1)[1]
    async with httpx.AsyncClient(base_url=services.base_url, timeout=30) as anonymous:
        witnesses: list[dict[str, str]] = (await anonymous.get("/.well-known/defendable-keys.json")).json()["witnesses"]
        assert witnesses
        for _ in range(150):
            proof: str = (await anonymous.get(f"/share/{token}")).json()["transparency"]["proof"]
            lines = proof.partition("\n\n")[2].splitlines()
            if all(any(line.startswith(f"\u2014 {w['name']} ") for line in lines) for w in witnesses):
                return witnesses
            await asyncio.sleep(0.2)
    raise AssertionError(f"the witness never cosigned the checkpoint of {receipt['receipt_hash']}")


async def package(client: AsyncClient, receipt_hash: str, query: str = "") -> tuple[zipfile.ZipFile, bytes]:
    reply = await client.get(f"/receipts/{receipt_hash}/package{query}")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/zip"
    assert reply.headers["content-disposition"] == f'attachment; filename="receipt-{receipt_hash[7:23]}.zip"'
    return zipfile.ZipFile(io.BytesIO(reply.content)), reply.content


def outcomes(out: str) -> dict[str, str]:
    """`PASS|FAIL|SKIPPED  name  detail` lines of `defendable verify`, by name."""
    return {m.group(2): m.group(1) for m in re.finditer(r"^(PASS|FAIL|SKIPPED) +(.+?)  ", out, re.M)}


def rezip(original: bytes, replace: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(original)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info, replace.get(info.filename, src.read(info)))
    return out.getvalue()


def flip_one_byte(receipt_json: bytes) -> bytes:
    """One byte of the payload changed, the JSON still valid: the project's name, Harbour → Harbous."""
    at = receipt_json.index(b"Harbour Point") + len(b"Harbou")
    return receipt_json[:at] + b"s" + receipt_json[at + 1 :]


# ---------------------------------------------------------------- the ZIP and the CLI


async def test_a_package_holds_the_receipt_proof_pdf_keys_and_evidence_and_the_cli_verifies_it(
    submitter: AsyncClient, approver: AsyncClient, services: Services, tmp_path: Path
) -> None:
    receipt = await minted_receipt(submitter, approver, "proof package test", rendered=True)
    witnesses = await witnessed(services, receipt)
    h = receipt["receipt_hash"]
    zf, data = await package(approver, h)
    payload = receipt["payload"]
    refs = payload["evidence"]
    assert len(refs) == len(EVIDENCE)
    assert set(zf.namelist()) == CORE | {f"evidence/{r['id']}" for r in refs}
    assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zf.infolist())

    doc = json.loads(zf.read("receipt.json"))
    token = receipt["links"]["share"].rsplit("/", 1)[1]
    async with httpx.AsyncClient(base_url=services.base_url, timeout=30) as anonymous:
        shared = (await anonymous.get(f"/share/{token}")).json()
        published_keys = (await anonymous.get("/.well-known/defendable-keys.json")).json()
    for field in ("receipt_hash", "payload", "signature"):
        assert doc[field] == shared[field], field
    assert doc["payload"] == payload and doc["receipt_hash"] == h
    t = doc["transparency"]
    assert (t["origin"], t["leaf_index"]) == (shared["transparency"]["origin"], shared["transparency"]["leaf_index"])
    proof = zf.read("proof.tlog")
    assert t["proof"] == proof.decode()
    assert proof.startswith(b"c2sp.org/tlog-proof@v1\n")
    assert zf.read("checkpoint.txt") == proof.partition(b"\n\n")[2]
    assert zf.read("checkpoint.txt").startswith(t["origin"].encode() + b"\n")
    assert json.loads(zf.read("keys.json")) == published_keys

    pdf = zf.read("receipt.pdf")
    assert pdf.startswith(b"%PDF")
    served_pdf = await approver.get(f"/receipts/{h}.pdf")  # the neighbouring routes still resolve
    assert served_pdf.status_code == 200 and served_pdf.content == pdf
    as_json = await approver.get(f"/receipts/{h}")
    assert as_json.status_code == 200 and as_json.json()["receipt_hash"] == h

    by_name = {name: content for name, content in EVIDENCE.items()}
    for ref in refs:
        content = zf.read(f"evidence/{ref['id']}")
        assert "sha256:" + hashlib.sha256(content).hexdigest() == ref["sha256"]
        assert len(content) == ref["size"]
        if ref["name"] in by_name:
            assert content == by_name[ref["name"]]
    readme = zf.read("README.txt").decode()
    assert "defendable verify" in readme and "verify.html" in readme
    html = zf.read("verify.html").decode()
    assert 'http-equiv="Content-Security-Policy"' in html and "connect-src 'none'" in html

    # the same receipt zips to the same bytes
    assert (await package(approver, h))[1] == data

    (tmp_path / "receipt.zip").write_bytes(data)
    pinned = [arg for w in witnesses for arg in ("--witness", w["vkey"])]
    cli = await verify(str(tmp_path / "receipt.zip"), *pinned)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    seen = outcomes(cli.stdout)
    assert "FAIL" not in seen.values(), cli.stdout
    # not applicable to a share document: its chain links (the proof replaces them); no redacted field
    assert {n for n, o in seen.items() if o == "SKIPPED"} <= {"chain links", "redacted fields"}, cli.stdout
    for name in ("package contents", "checkpoint.txt", "evidence files", "witness cosignatures", *PROOF_CHECKS):
        assert seen[name] == "PASS", cli.stdout
    assert "trust root: keys.json in the package" in cli.stdout

    (tmp_path / "tampered.zip").write_bytes(rezip(data, {"receipt.json": flip_one_byte(zf.read("receipt.json"))}))
    bad = await verify(str(tmp_path / "tampered.zip"))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert outcomes(bad.stdout)["receipt hash"] == "FAIL", bad.stdout
    assert "NOT VERIFIED" in bad.stdout


async def test_hashes_only_the_org_setting_and_isolation(
    submitter: AsyncClient, approver: AsyncClient, org: CreatedOrg, stack: Stack, services: Services, tmp_path: Path
) -> None:
    receipt = await minted_receipt(submitter, approver, "proof package test", rendered=True)
    h = receipt["receipt_hash"]

    zf, data = await package(submitter, h, "?evidence=hashes")
    assert set(zf.namelist()) == CORE  # no evidence/ members
    assert "hashes only" in zf.read("README.txt").decode()
    (tmp_path / "hashes.zip").write_bytes(data)
    cli = await verify(str(tmp_path / "hashes.zip"))
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert outcomes(cli.stdout)["evidence files"] == "SKIPPED", cli.stdout

    async with httpx.AsyncClient(base_url=services.base_url, timeout=30) as anonymous:
        nokey = await anonymous.get(f"/receipts/{h}/package")
        assert nokey.status_code == 401 and nokey.headers["content-type"].startswith("application/problem+json")
    other = await create_org(stack.env()["DATABASE_URL"], "Another Org Ltd")
    async with AsyncClient(services.base_url, key(other, "admin")) as stranger:
        hidden = await stranger.get(f"/receipts/{h}/package")
        assert hidden.status_code == 404, hidden.text
        assert hidden.headers["content-type"].startswith("application/problem+json")
    for ref in ("sha256:" + "0" * 64, "sha256:nothex", "not-a-hash"):
        assert (await approver.get(f"/receipts/{ref}/package")).status_code == 404, ref
    assert (await approver.get(f"/receipts/{h}/package?evidence=everything")).status_code == 400

    # An org that packages hashes only: files are refused, and the default follows the setting.
    async with AsyncClient(services.base_url, key(org, "admin")) as admin:
        put = await admin.request("PUT", "/org/settings", json={"package_evidence": "hashes"})
        assert put.status_code == 200, put.text
        refused = await admin.get(f"/receipts/{h}/package?evidence=files")
        assert refused.status_code == 403, refused.text
        assert "hashes only" in refused.json()["detail"]
        by_default, _ = await package(admin, h)
        assert not [n for n in by_default.namelist() if n.startswith("evidence/")]
        assert (await admin.request("PUT", "/org/settings", json={"package_evidence": "files"})).status_code == 200
        again, _ = await package(admin, h, "?evidence=files")
        assert len([n for n in again.namelist() if n.startswith("evidence/")]) == len(EVIDENCE)
    assert MAX_PACKAGE_EVIDENCE_BYTES == 256 * 1024 * 1024  # documented in docs/transparency.md


async def test_no_package_before_the_pdf_is_rendered(
    submitter: AsyncClient, approver: AsyncClient, services: Services
) -> None:
    services.stop("render")
    try:
        run_id = await checked_run(submitter)
        await approver.approve(run_id, "render is stopped")
        run = await submitter.wait_for(run_id, ("minted",), timeout=60)
        h = run["receipt"]["receipt_hash"]
        early = await approver.get(f"/receipts/{h}/package")
        assert early.status_code == 409, early.text
        assert "retry" in early.json()["detail"] and early.headers["retry-after"] == "2"
    finally:
        services.start("render")
    await submitter.wait_for(run_id, ("rendered",), timeout=90)
    zf, _ = await package(approver, h)
    assert zf.read("receipt.pdf").startswith(b"%PDF")


# ---------------------------------------------------------------- verify.html, offline in Chromium


async def offline_checks(page: Page, url: str) -> dict[str, str]:
    await page.goto(url)
    await page.wait_for_selector("#receipt[data-state=done]", timeout=20_000)
    rows: list[list[str]] = await page.eval_on_selector_all(
        "[data-check]", "els => els.map(e => [e.dataset.check, e.dataset.outcome])"
    )
    return {name: outcome for name, outcome in rows}


async def test_verify_html_verifies_the_package_offline_in_chromium_and_shows_a_tamper(
    submitter: AsyncClient, approver: AsyncClient, services: Services, browser: Browser, tmp_path: Path
) -> None:
    receipt = await minted_receipt(submitter, approver, "proof package test", rendered=True)
    await witnessed(services, receipt)
    zf, _ = await package(approver, receipt["receipt_hash"])
    folder = tmp_path / "package"
    zf.extractall(folder)

    context = await browser.new_context(offline=True, viewport={"width": 1100, "height": 900})
    reached: list[str] = []

    async def only_files(route: Route) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:")):
            await route.continue_()
        else:
            reached.append(url)
            await route.abort()

    await context.route("**/*", only_files)
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        seen = await offline_checks(page, (folder / "verify.html").as_uri())
        # every check passed, the witness cosignatures too; a receipt with no redacted field has nothing to open
        assert {n: o for n, o in seen.items() if o != "PASS"} in ({}, {"redacted fields": "SKIPPED"}), seen
        assert set(PROOF_CHECKS) | {"chain position", "witness cosignatures"} <= set(seen), seen
        assert await page.get_attribute("[data-testid=verification]", "data-verified") == "true"
        assert "Receipt verified" in await page.inner_text("[data-testid=verification]")
        assert await page.inner_text("h1") == receipt["payload"]["project"]
        assert reached == [] and errors == [], (reached, errors)
        shot = tmp_path / "verify_html.png"
        await page.screenshot(path=shot, full_page=True)
        shutil.copyfile(shot, "/tmp/verify_html.png")

        # The embedded payload changed in verify.html itself: the browser says so.
        html = (folder / "verify.html").read_text()
        start = html.index('id="defendable-receipt">')
        at = html.index("Harbour Point", start) + len("Harbou")
        (folder / "verify.html").write_text(html[:at] + "s" + html[at + 1 :])
        seen = await offline_checks(page, (folder / "verify.html").as_uri())
        assert seen["receipt hash"] == "FAIL", seen
        assert await page.get_attribute("[data-testid=verification]", "data-verified") == "false"
        assert "Verification failed" in await page.inner_text("[data-testid=verification]")
        await page.screenshot(path=tmp_path / "verify_html_tampered.png", full_page=True)
        assert reached == [] and errors == [], (reached, errors)
    finally:
        await context.close()


def test_embedded_json_cannot_close_its_script_element() -> None:
    from defendable_gateway.package_routes import embedded_json, verify_html

    hostile = json.dumps({"payload": {"project": "</script><script>alert(1)</script>&<!--"}}).encode()
    text = embedded_json(hostile)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == json.loads(hostile)
    page = verify_html(hostile, b'{"keys": []}')
    assert page.count("</script>") == 3  # the two JSON blocks and the module
    csp = page.split('http-equiv="Content-Security-Policy" content="', 1)[1].split('"', 1)[0]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"].startswith("'sha256-") and " " not in directives["script-src"]  # only the module

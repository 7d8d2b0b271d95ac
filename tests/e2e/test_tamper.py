"""A receipt altered in the ledger's own table is caught by `GET /ledger/verify`, at the first bad link."""

from __future__ import annotations

import asyncpg
import msgspec

from defendable.client import AsyncClient
from defendable_canonical import jcs
from defendable_gateway.admin import create_org
from defendable_stack.servers import Stack

from .conftest import Services, key, minted_receipt


async def mint(submitter: AsyncClient, approver: AsyncClient) -> str:
    return str((await minted_receipt(submitter, approver))["receipt_hash"])


async def test_an_altered_receipt_payload_fails_verification_at_its_seq_and_other_orgs_still_verify(
    stack: Stack, services: Services, submitter: AsyncClient, approver: AsyncClient
) -> None:
    victim = await create_org(stack.env()["DATABASE_URL"], "Tampered Trust")
    admin = AsyncClient(services.base_url, key(victim, "admin"))
    try:
        hashes = [await mint(admin, admin) for _ in range(3)]
        untouched = await mint(submitter, approver)
        assert (await admin.get("/ledger/verify")).json()["ok"] is True

        conn = await asyncpg.connect(stack.env()["DATABASE_URL"])
        try:
            stored = await conn.fetchval(
                "SELECT payload FROM ledger.receipts WHERE org_id = $1 AND seq = 2", victim.org_id
            )
            payload = msgspec.json.decode(stored)
            payload["verdict"]["recommended_action"] = "reject"  # one verdict field, still canonical JSON
            altered = jcs.canonicalize(payload)
            assert altered != bytes(stored)
            await conn.execute(
                "UPDATE ledger.receipts SET payload = $2 WHERE org_id = $1 AND seq = 2", victim.org_id, altered
            )
        finally:
            await conn.close()

        report = (await admin.get("/ledger/verify")).json()
        assert report["ok"] is False and report["length"] == 3, report
        assert report["first_bad"]["seq"] == 2
        assert report["first_bad"]["receipt_hash"] == hashes[1]
        assert "seq 2" in report["first_bad"]["reason"] and "hashes to" in report["first_bad"]["reason"], report
        assert report["head"] == hashes[0]  # the last good link

        assert (await approver.get("/ledger/verify")).json() == {
            "ok": True, "length": 1, "head": untouched, "first_bad": None,
        }  # fmt: skip
    finally:
        await admin.aclose()

"""A ledger that starts with an org whose log is behind its chain signs the missing checkpoint
at startup (the backfill), publishes it, and keeps running. It used to publish before its broker
was connected and die, leaving every approval unminted until someone noticed."""

from __future__ import annotations

import asyncio
import time

from defendable.client import AsyncClient

from .conftest import Services, minted_receipt
from .trust import outcomes, shared_checks

SETTLE_S = 60.0


async def test_a_ledger_started_with_a_log_to_backfill_signs_it_and_keeps_minting(
    services: Services, submitter: AsyncClient, approver: AsyncClient
) -> None:
    # 1. A receipt minted with the log off (LEDGER_TLOG=off, the bench's knob): no checkpoint.
    # (The ledger the test before left may still be starting, and a SIGTERM then is no clean exit.)
    await asyncio.to_thread(services.stop, "ledger")
    services.start("ledger", LEDGER_TLOG="off")
    try:
        first = await minted_receipt(submitter, approver)
        before = await approver.get("/ledger/checkpoint")
        assert before.status_code != 200 or before.json()["size"] == 0, before.text
    finally:
        # 2. A ledger started with the log on (as the rest of the suite needs it) backfills it.
        await asyncio.to_thread(services.stop, "ledger")
        ledger = services.start("ledger")
    deadline = time.monotonic() + SETTLE_S
    while True:
        reply = await approver.get("/ledger/checkpoint")
        if reply.status_code == 200 and reply.json()["size"] == 1:
            break
        assert ledger.poll() is None, f"the ledger exited ({ledger.returncode}) during its backfill"
        assert time.monotonic() < deadline, f"no checkpoint of size 1 after the backfill: {reply.text}"
        await asyncio.sleep(0.2)
    assert ledger.poll() is None

    # 3. It mints on, and both receipts prove their inclusion in the backfilled log.
    second = await minted_receipt(submitter, approver)
    for receipt in (first, second):
        links = receipt["links"]
        assert isinstance(links, dict)
        _, checks = await shared_checks(str(links["share"]))
        assert outcomes(checks)["inclusion proof (RFC 9162)"] == "PASS", checks
    assert ledger.poll() is None

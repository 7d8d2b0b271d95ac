"""The published key set (issue 5): the ledger's signing keys at /.well-known/defendable-keys.json.

A rotation is a restart with another key: the new one becomes active, the old one stays
published as retired, and receipts it signed still verify.
"""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Any

import httpx

from defendable.client import AsyncClient
from defendable_canonical.verification import all_passed

from .conftest import Services, minted_receipt
from .trust import outcomes, shared_checks

KEYS = "/.well-known/defendable-keys.json"


def key_set(services: Services) -> list[dict[str, Any]]:
    reply = httpx.get(services.base_url + KEYS, timeout=10)  # no API key: anyone may fetch it
    assert reply.status_code == 200, reply.text
    keys: list[dict[str, Any]] = reply.json()["keys"]
    return keys


async def test_the_key_set_names_the_signing_key_and_keeps_a_rotated_one_as_retired(
    submitter: AsyncClient, approver: AsyncClient, services: Services, tmp_path: Path
) -> None:
    before = await minted_receipt(submitter, approver, "keys test")
    old_kid = before["signature"]["kid"]
    [active] = [k for k in await asyncio.to_thread(key_set, services) if k["status"] == "active"]
    assert (active["kid"], active["public_key"], active["alg"]) == (
        old_kid,
        before["signature"]["public_key"],
        "Ed25519",
    )

    key_file = tmp_path / "signing.key"  # production's way: a mounted secret file
    key_file.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    await asyncio.to_thread(services.stop, "ledger")
    services.start("ledger", LEDGER_SIGNING_KEY_FILE=str(key_file))
    try:
        after = await minted_receipt(submitter, approver, "keys test")
        new_kid = after["signature"]["kid"]
        assert new_kid != old_kid
        keys = {k["kid"]: k for k in await asyncio.to_thread(key_set, services)}
        assert keys[new_kid]["status"] == "active" and keys[old_kid]["status"] == "retired"
        assert keys[old_kid]["public_key"] == before["signature"]["public_key"]
        # Signed before the rotation, it still verifies: the key set keeps the old key, and the
        # proof's checkpoint, signed after it by the new key, verifies with that one.
        _, checks = await shared_checks(before["links"]["share"])
        assert all_passed(checks), checks
        seen = outcomes(checks)
        assert seen["signing key known"] == seen["log key known"] == seen["checkpoint signature (log key)"] == "PASS"
    finally:
        await asyncio.to_thread(services.stop, "ledger")
        services.start("ledger")  # back to the stored local key for the rest of the suite

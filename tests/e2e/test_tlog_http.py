"""The org's transparency log over HTTP (docs/transparency.md, "HTTP"): the signed checkpoint,
RFC 9162 inclusion and consistency proofs that verify against it, and every bad query refused
with a problem+json body instead of a proof that could mislead."""

from __future__ import annotations

import base64

import httpx

from defendable.client import AsyncClient
from defendable_canonical.checkpoint import parse_checkpoint
from defendable_canonical.merkle import receipt_leaf_hash, verify_consistency, verify_inclusion

from .conftest import Services, minted_receipt


def b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


async def test_inclusion_and_consistency_proofs_verify_against_the_signed_checkpoint(
    submitter: AsyncClient, approver: AsyncClient
) -> None:
    receipts = [await minted_receipt(submitter, approver) for _ in range(3)]
    latest = await approver.get("/ledger/checkpoint")
    assert latest.status_code == 200, latest.text
    body = latest.json()
    checkpoint = parse_checkpoint(body["checkpoint"].partition("\n\n")[0] + "\n")
    assert (checkpoint.size, body["size"]) == (3, 3)
    assert checkpoint.root_hash == b64(body["root_hash"])

    for i, receipt in enumerate(receipts):
        reply = await approver.get(f"/ledger/proof/inclusion?hash={receipt['receipt_hash']}&size=3")
        assert reply.status_code == 200, reply.text
        proof = reply.json()
        assert (proof["leaf_index"], proof["tree_size"]) == (i, 3)
        leaf = receipt_leaf_hash(str(receipt["receipt_hash"]))
        verify_inclusion(leaf, i, 3, [b64(h) for h in proof["hashes"]], checkpoint.root_hash)  # raises when wrong

    first = await approver.get(f"/ledger/proof/inclusion?hash={receipts[0]['receipt_hash']}&size=1")
    old_root = b64(first.json()["root_hash"])
    consistency = await approver.get("/ledger/proof/consistency?from=1&to=3")
    assert consistency.status_code == 200, consistency.text
    c = consistency.json()
    assert (c["first"], c["second"]) == (1, 3) and b64(c["first_root"]) == old_root
    verify_consistency(1, 3, [b64(h) for h in c["hashes"]], old_root, checkpoint.root_hash)


async def test_bad_proof_queries_are_refused_with_problems(
    submitter: AsyncClient, approver: AsyncClient, services: Services
) -> None:
    receipt = await minted_receipt(submitter, approver)
    h = receipt["receipt_hash"]
    cases = {
        f"/ledger/proof/inclusion?hash={h}&size=9": (400, "size must be in 1..1"),  # beyond the tree
        f"/ledger/proof/inclusion?hash={h}&size=0": (400, "Validation failed"),
        "/ledger/proof/inclusion?hash=sha256:zz&size=1": (404, "no receipt sha256:zz"),
        f"/ledger/proof/inclusion?hash=sha256:{'0' * 64}": (404, "in this organisation"),  # not this org's
        "/ledger/proof/consistency?from=3&to=1": (400, "need 0 <= from <= to <= 1"),
        "/ledger/proof/consistency?from=1&to=99": (400, "got 1 and 99"),
        "/ledger/proof/consistency?from=-1&to=1": (400, "Validation failed"),
        "/ledger/proof/consistency?from=x&to=1": (400, "Validation failed"),
    }
    for url, (status, says) in cases.items():
        reply = await approver.get(url)
        assert (reply.status_code, says in reply.json()["detail"]) == (status, True), (url, reply.text)
        assert reply.headers["content-type"].startswith("application/problem+json"), (url, reply.headers)
    async with httpx.AsyncClient(base_url=services.base_url) as anonymous:
        for url in ("/ledger/checkpoint", f"/ledger/proof/inclusion?hash={h}", "/ledger/proof/consistency?from=1&to=1"):
            assert (await anonymous.get(url)).status_code == 401, url

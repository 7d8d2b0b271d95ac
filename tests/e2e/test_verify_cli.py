"""`defendable verify` against the real stack: a share URL (the share document's transparency proof
against the host's published key set) and a real `GET /ledger/export` (every receipt, every
checkpoint, truncation against the latest checkpoint), run as the command a stranger runs."""

from __future__ import annotations

import re
from pathlib import Path

from defendable.client import AsyncClient

from .conftest import Services, minted_receipt
from .trust import verify_cli as verify


def outcome(out: str, name: str) -> str:
    match = re.search(rf"^(PASS|FAIL|SKIPPED) +{re.escape(name)}  ", out, re.M)
    assert match, out
    return match.group(1)


async def test_a_share_url_verifies_offline_against_the_hosts_key_set_with_its_inclusion_proof(
    submitter: AsyncClient, approver: AsyncClient, services: Services
) -> None:
    receipt = await minted_receipt(submitter, approver, "verify test")
    links = receipt["links"]
    assert isinstance(links, dict)
    share = str(links["share"])
    cli = await verify(share)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert f"trust root: the key set at {services.base_url}/.well-known/defendable-keys.json" in cli.stdout
    for name in ("signing key known", "inclusion proof (RFC 9162)", "log key known", "checkpoint signature (log key)"):
        assert outcome(cli.stdout, name) == "PASS", cli.stdout
    assert outcome(cli.stdout, "witness cosignatures") == "SKIPPED"  # no --witness given
    short = await verify(share.replace("/share/", "/r/"))
    assert short.returncode == 0, short.stdout + short.stderr


async def test_a_real_export_verifies_and_a_truncated_copy_fails_against_the_latest_checkpoint(
    submitter: AsyncClient, approver: AsyncClient, services: Services, tmp_path: Path
) -> None:
    for _ in range(3):
        await minted_receipt(submitter, approver, "verify test")
    export = await approver.get("/ledger/export")
    assert export.status_code == 200, export.text
    assert export.headers["content-type"].startswith("application/x-ndjson")
    lines = export.content.splitlines(keepends=True)
    receipts = [line for line in lines if not line.startswith(b'{"checkpoint"')]
    assert len(receipts) == 3 and len(lines) > 3
    (tmp_path / "chain.ndjson").write_bytes(export.content)
    keys = await approver.get("/.well-known/defendable-keys.json")
    (tmp_path / "keys.json").write_bytes(keys.content)
    latest = await approver.get("/ledger/checkpoint")
    assert latest.status_code == 200, latest.text
    (tmp_path / "witnessed.txt").write_text(latest.json()["checkpoint"])
    trust = ["--keys", str(tmp_path / "keys.json"), "--witnessed", str(tmp_path / "witnessed.txt")]

    cli = await verify("--chain", str(tmp_path / "chain.ndjson"), *trust)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    for name in ("receipts (hash, canonical form, parent links)", "Merkle roots", "witnessed checkpoint (truncation)"):
        assert outcome(cli.stdout, name) == "PASS", cli.stdout

    # the tail deleted: the last receipt and the checkpoints that cover it
    kept = receipts[:-1] + [line for line in lines if line.startswith(b'{"checkpoint"') and b'"size":3,' not in line]
    (tmp_path / "short.ndjson").write_bytes(b"".join(kept))
    cli = await verify("--chain", str(tmp_path / "short.ndjson"), *trust)
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert outcome(cli.stdout, "witnessed checkpoint (truncation)") == "FAIL"
    assert "tail deleted or history rewritten" in cli.stdout

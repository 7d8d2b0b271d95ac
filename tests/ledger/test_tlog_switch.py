"""LEDGER_TLOG, the benchmarking knob: off mints without the log, on (the default) signs a
checkpoint per batch, and a ledger started on again backfills what was minted while off."""

from __future__ import annotations

import secrets

import asyncpg
import pytest

from defendable_ledger import app, store, tlog, tlog_store
from defendable_ledger.keys import Signer

from .conftest import approvals


@pytest.fixture
def ledger(pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ledger's mint path (`app._mint_org`) on the test's pool, with a fresh key."""
    signer = Signer.generate()
    monkeypatch.setattr(app.res, "pool", pool, raising=False)
    monkeypatch.setattr(app.res, "signer", signer, raising=False)
    monkeypatch.setattr(app.res, "log_keys", tlog.LogKeys(signer, "test.example/log"), raising=False)


async def log_rows(pool: asyncpg.Pool, org_id: str) -> tuple[int, int]:
    checkpoints = await pool.fetchval("SELECT count(*) FROM ledger.checkpoints WHERE org_id = $1", org_id)
    nodes = await pool.fetchval("SELECT count(*) FROM ledger.tlog_nodes WHERE org_id = $1", org_id)
    return int(checkpoints), int(nodes)


def test_switch_reads_on_or_off() -> None:
    assert tlog.switched_on({}) is True
    assert tlog.switched_on({"LEDGER_TLOG": "on"}) is True
    assert tlog.switched_on({"LEDGER_TLOG": " OFF "}) is False
    with pytest.raises(SystemExit):
        tlog.switched_on({"LEDGER_TLOG": "no"})


@pytest.mark.usefixtures("ledger")
async def test_on_signs_a_checkpoint_per_batch(pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "TLOG_ON", True)
    org_id = "org-tlog-on-" + secrets.token_hex(6)
    minted, checkpoint = await app._mint_org(org_id, approvals(org_id, 5))
    assert len(minted) == 5 and checkpoint is not None and checkpoint.size == 5
    minted, checkpoint = await app._mint_org(org_id, approvals(org_id, 3))
    assert checkpoint is not None and checkpoint.size == 8
    checkpoints, nodes = await log_rows(pool, org_id)
    assert checkpoints == 2 and nodes > 8


@pytest.mark.usefixtures("ledger")
async def test_off_writes_no_log_and_on_backfills(pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "TLOG_ON", False)
    org_id = "org-tlog-off-" + secrets.token_hex(6)
    minted, checkpoint = await app._mint_org(org_id, approvals(org_id, 4))
    assert [r.seq for r in minted] == [1, 2, 3, 4] and checkpoint is None
    assert all(r.signature.sig for r in minted)  # receipts are still signed
    assert await log_rows(pool, org_id) == (0, 0)
    # A ledger started with the log on again: startup backfills the org, then mints extend it.
    async with pool.acquire() as conn:
        assert (org_id, 4) in await tlog_store.orgs_needing_backfill(conn)
    monkeypatch.setattr(app, "TLOG_ON", True)
    async with pool.acquire() as conn, conn.transaction():  # as `app.backfill_logs` does
        head_seq, _ = await store.lock_head(conn, org_id)
        backfilled = await tlog.backfill(conn, app.res.log_keys, org_id, head_seq)
    assert backfilled.size == 4
    _, checkpoint = await app._mint_org(org_id, approvals(org_id, 2))
    assert checkpoint is not None and checkpoint.size == 6

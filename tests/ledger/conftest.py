"""The ledger's table on the session's real PostgreSQL (or DATABASE_URL: `database_url` in
tests/conftest.py), migrated once per test; each test writes under an org id of its own."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import asyncpg
import msgspec
import pytest

from defendable_canonical.events import Approved
from defendable_canonical.perf import typical_body
from defendable_ledger import store
from defendable_ledger.mint import MintRequest, mint_request
from defendable_runtime import db


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(database_url, min_size=2, max_size=4)  # the race tests hold several at once
    await db.migrate(pool, store.SCHEMA, store.MIGRATIONS)
    yield pool
    await pool.close()


def approvals(org_id: str, count: int) -> list[MintRequest]:
    """`count` approvals of distinct runs of `org_id`, as the ledger reads them off the stream."""
    out = []
    for _ in range(count):
        run_id = "run_" + secrets.token_hex(16)
        body = msgspec.structs.replace(typical_body(1, org_id), run_id=run_id)
        approved = Approved(
            event_id="ev_" + secrets.token_hex(16),
            org_id=org_id,
            run_id=run_id,
            occurred_at="2026-01-02T03:04:05.000Z",
            producer="test",
            receipt=body,
        )
        out.append(mint_request(approved))
    return out

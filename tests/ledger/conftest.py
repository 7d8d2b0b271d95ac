"""The ledger's table on the session's real PostgreSQL (or DATABASE_URL: `database_url` in
tests/conftest.py), migrated once per test; each test writes under an org id of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from defendable_ledger import store
from defendable_runtime import db


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(database_url, min_size=2, max_size=4)  # the race tests hold several at once
    await db.migrate(pool, store.SCHEMA, store.MIGRATIONS)
    yield pool
    await pool.close()

"""The ledger's table on the session's real PostgreSQL (or DATABASE_URL), migrated once per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import asyncpg
import pytest

from defendable_ledger import store
from defendable_runtime import db


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    """The session's PostgreSQL (or DATABASE_URL); each test writes under an org id of its own."""
    from_env = os.environ.get("DATABASE_URL")
    if from_env:
        return from_env
    dsn: str = request.getfixturevalue("pg_server").dsn
    return dsn


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(database_url, min_size=2, max_size=4)  # the race tests hold several at once
    await db.migrate(pool, store.SCHEMA, store.MIGRATIONS)
    yield pool
    await pool.close()

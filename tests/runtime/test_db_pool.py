"""The services' pool skips asyncpg's reset query; what a release must still guarantee, on real PostgreSQL."""

from __future__ import annotations

import secrets

from defendable_runtime import db
from defendable_stack.servers import Stack


async def test_a_transaction_left_open_is_rolled_back_when_the_connection_goes_back(stack: Stack) -> None:
    pool = await db.create_pool(stack.database_url, min_size=1, max_size=1)
    table = f"pool_probe_{secrets.token_hex(4)}"
    try:
        await pool.execute(f"CREATE TABLE {table} (v int)")
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute(f"INSERT INTO {table} VALUES (1)")  # the table name is made above, never input
        async with pool.acquire() as conn:  # max_size=1: the same connection again
            assert not conn.is_in_transaction()
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0
    finally:
        await pool.execute(f"DROP TABLE IF EXISTS {table}")
        await pool.close()


async def test_a_transaction_advisory_lock_ends_with_its_transaction(stack: Stack) -> None:
    """Migrations lock per transaction; with no reset query, nothing may outlive it."""
    pool = await db.create_pool(stack.database_url, min_size=2, max_size=2)
    key = secrets.randbelow(2**31)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", key)
        async with pool.acquire() as first, pool.acquire() as second:
            assert await first.fetchval("SELECT pg_try_advisory_lock($1)", key)
            assert not await second.fetchval("SELECT pg_try_advisory_lock($1)", key)
            assert await first.fetchval("SELECT pg_advisory_unlock($1)", key)
    finally:
        await pool.close()

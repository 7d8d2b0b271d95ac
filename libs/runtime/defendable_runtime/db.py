"""PostgreSQL edge: a pool per service and forward-only migrations per schema.

Each service owns one schema and applies its own numbered migrations at
start-up, under an advisory lock so that replicas starting together do not
race. Migrations are append-only: a shipped one is never edited.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence

import asyncpg

INFRA_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.InternalClientError,  # seen when a connection dies mid-operation during a PostgreSQL crash
    ConnectionError,
)


async def create_pool(dsn: str, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """Connect, retrying for a while: services may start before PostgreSQL is ready."""
    delay = 0.2
    retryable: tuple[type[BaseException], ...] = (OSError, *INFRA_ERRORS)
    for _ in range(60):
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, command_timeout=60, reset=_keep_session
            )
            assert pool is not None
            return pool
        except retryable:
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 2.0)
    raise ConnectionError(f"PostgreSQL at {dsn.split('@')[-1]} did not accept connections")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's reset query (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL).

    That query was one more round trip on every release, ~12 % of the gateway's CPU.
    Nothing here keeps session state: no LISTEN, no SET, no cursors outside a transaction,
    and advisory locks only per transaction. asyncpg still rolls back a transaction left
    open, with or without this hook; a connection that fails is still terminated.
    """


async def migrate(pool: asyncpg.Pool, schema: str, migrations: Sequence[str]) -> None:
    lock_id = zlib.crc32(f"defendable-migrate-{schema}".encode())
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_id)
        # `schema` is each service's module constant, never input: identifiers cannot be bind parameters.
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.schema_migrations "
            "(version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch(f"SELECT version FROM {schema}.schema_migrations")}  # noqa: S608
        for version, sql in enumerate(migrations, start=1):
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute(f"INSERT INTO {schema}.schema_migrations (version) VALUES ($1)", version)  # noqa: S608

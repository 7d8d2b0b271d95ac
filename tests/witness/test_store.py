"""The witness's compare-and-set on what it holds, on real PostgreSQL: two replicas, one winner."""

from __future__ import annotations

import asyncio
import secrets

from defendable_canonical.checkpoint import Checkpoint
from defendable_runtime import db
from defendable_witness import store
from defendable_witness.decide import Cosigned

ORIGIN = "test.local/log/org_race"


def cosigned(size: int) -> Cosigned:
    # The store keeps the note verbatim; this one is a well-formed (unsigned) stand-in.
    checkpoint = Checkpoint(ORIGIN, size, secrets.token_bytes(32))
    return Cosigned(checkpoint, f"{ORIGIN}\n{size}\nroot\n\n— w {secrets.token_hex(4)}\n")


async def test_two_replicas_advancing_from_one_state_one_wins(witness_db: str) -> None:
    pool = await db.create_pool(witness_db, min_size=2, max_size=4)
    try:
        await db.migrate(pool, store.SCHEMA, store.MIGRATIONS)
        first = cosigned(3)

        async def advance(previous: Cosigned | None, new: Cosigned) -> bool:
            async with pool.acquire() as conn:
                tx = conn.transaction()
                await tx.start()
                moved = await store.advance(conn, "org_race", previous, new)
                await (tx.commit() if moved else tx.rollback())
                return moved

        assert sorted(await asyncio.gather(advance(None, first), advance(None, cosigned(3)))) == [False, True]
        async with pool.acquire() as conn:
            held = await conn.fetchval("SELECT size FROM witness.latest WHERE origin = $1", ORIGIN)
        assert held == 3
        async with pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM witness.cosignatures WHERE origin = $1", ORIGIN)
        winner = Cosigned(Checkpoint(ORIGIN, 3, bytes(row["root_hash"])), row["cosigned"])
        outcome = await asyncio.gather(advance(winner, cosigned(5)), advance(winner, cosigned(7)))
        assert sorted(outcome) == [False, True]
        async with pool.acquire() as conn:
            sizes = [r["size"] for r in await conn.fetch("SELECT size FROM witness.cosignatures ORDER BY size")]
            latest = await conn.fetchval("SELECT size FROM witness.latest WHERE origin = $1", ORIGIN)
        assert len(sizes) == 2 and latest == sizes[1] and sizes[1] in (5, 7)  # the loser left nothing behind
        assert not await advance(winner, cosigned(9))  # a stale view never moves it
    finally:
        await pool.close()

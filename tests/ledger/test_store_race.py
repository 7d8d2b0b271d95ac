"""The ledger's table forbids forks and gaps on its own: real PostgreSQL, real concurrent writers.

STYLE.md 6: the database is the last line of defence. The head lock keeps one
writer per org; these tests prove that two writers that take it serialise, and
that a writer that bypasses it is refused by the constraints alone.
"""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import msgspec
import pytest

from defendable_canonical.chain import verify_chain
from defendable_canonical.digest import GENESIS_HASH
from defendable_canonical.model import StoredReceipt
from defendable_ledger import store
from defendable_ledger.keys import Signer
from defendable_ledger.mint import MintedReceipt, MintRequest, chain_batch

from .conftest import approvals

MINTED_AT = "2026-01-02T03:04:05.000Z"
SIGN_ALL = Signer.generate().sign_all


@pytest.fixture
def org_id() -> str:
    return "org-race-" + secrets.token_hex(6)


def tokens(count: int) -> list[str]:
    return [secrets.token_urlsafe(24) for _ in range(count)]


async def mint_locked(conn: asyncpg.Connection, org_id: str, batch: list[MintRequest], hold: asyncio.Event) -> int:
    """The ledger's own write path: lock the head, chain after it, append; `hold` delays the commit."""
    async with conn.transaction():
        head_seq, head_hash = await store.lock_head(conn, org_id)
        await hold.wait()
        await store.append(conn, org_id, head_seq, chain_batch(head_seq, head_hash, batch, MINTED_AT, SIGN_ALL,
                                                               tokens(len(batch))))  # fmt: skip
    return head_seq


async def seed(conn: asyncpg.Connection, org_id: str, count: int) -> None:
    released = asyncio.Event()
    released.set()
    await mint_locked(conn, org_id, approvals(org_id, count), released)


async def chain_of(pool: asyncpg.Pool, org_id: str) -> list[StoredReceipt]:
    out: list[StoredReceipt] = []
    async with pool.acquire() as conn:
        async for chunk in store.stream_chain(conn, org_id):
            out += chunk
    return out


async def head_of(pool: asyncpg.Pool, org_id: str) -> tuple[int, str]:
    async with pool.acquire() as conn, conn.transaction():
        return await store.lock_head(conn, org_id)


async def insert(conn: asyncpg.Connection, r: MintedReceipt) -> None:
    """A writer that bypasses the head lock and the head row: a bare INSERT of one receipt."""
    await conn.execute(
        """INSERT INTO ledger.receipts (org_id, seq, receipt_hash, parent_hash, run_id, approval_event_id, payload,
                                        signature, share_token)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        r.org_id, r.seq, r.receipt_hash, r.parent_hash, r.run_id, r.approval_event_id, r.payload,
        msgspec.json.encode(r.signature), r.share_token,
    )  # fmt: skip


async def test_two_writers_on_one_org_serialise_on_the_head_lock_and_chain_one_after_the_other(
    pool: asyncpg.Pool, org_id: str
) -> None:
    first, second = approvals(org_id, 5), approvals(org_id, 7)
    release_first, release_second = asyncio.Event(), asyncio.Event()
    release_second.set()
    async with pool.acquire() as a, pool.acquire() as b:
        writer_a = asyncio.create_task(mint_locked(a, org_id, first, release_first))
        await asyncio.sleep(0.3)  # A holds the head lock
        writer_b = asyncio.create_task(mint_locked(b, org_id, second, release_second))
        await asyncio.sleep(0.5)
        assert not writer_b.done(), "the second writer must wait for the first one's head lock"
        release_first.set()
        heads = await asyncio.wait_for(asyncio.gather(writer_a, writer_b), 30)
    assert list(heads) == [0, 5]  # B chained after A's commit, not after the head it would have seen without the lock
    chain = await chain_of(pool, org_id)
    assert [r.seq for r in chain] == list(range(1, 13))
    report = verify_chain(chain)
    assert report.ok and report.length == 12, report
    assert await head_of(pool, org_id) == (12, chain[-1].receipt_hash)


async def test_two_writers_that_skip_the_lock_cannot_both_commit_a_receipt_after_the_same_head(
    pool: asyncpg.Pool, org_id: str
) -> None:
    """Both read the head without FOR UPDATE and race their COPY: one commits, the other is refused."""

    async def unlocked(conn: asyncpg.Connection, batch: list[MintRequest], both_read: asyncio.Barrier) -> None:
        async with conn.transaction():
            head_seq, head_hash = 0, GENESIS_HASH  # read without the lock: both see genesis
            await both_read.wait()
            await store.append(conn, org_id, head_seq, chain_batch(head_seq, head_hash, batch, MINTED_AT, SIGN_ALL,
                                                                   tokens(len(batch))))  # fmt: skip

    await head_of(pool, org_id)  # the head row exists at genesis
    barrier = asyncio.Barrier(2)
    async with pool.acquire() as a, pool.acquire() as b:
        results = await asyncio.wait_for(
            asyncio.gather(
                unlocked(a, approvals(org_id, 3), barrier),
                unlocked(b, approvals(org_id, 3), barrier),
                return_exceptions=True,
            ),
            30,
        )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1, results
    assert isinstance(failures[0], asyncpg.UniqueViolationError | store.StaleHead), repr(failures[0])
    chain = await chain_of(pool, org_id)
    assert [r.seq for r in chain] == [1, 2, 3]
    assert verify_chain(chain).ok


async def test_a_receipt_that_reuses_a_parent_is_refused_by_the_database_so_no_fork(
    pool: asyncpg.Pool, org_id: str
) -> None:
    async with pool.acquire() as conn:
        await seed(conn, org_id, 2)
        chain = await chain_of(pool, org_id)
        # A second child of receipt 1, at a fresh seq so only the parent collides.
        (fork,) = chain_batch(2, chain[0].receipt_hash, approvals(org_id, 1), MINTED_AT, SIGN_ALL, tokens(1))
        with pytest.raises(asyncpg.UniqueViolationError, match="parent_hash"):
            await insert(conn, fork)
        # A second receipt at an existing seq.
        (same_seq,) = chain_batch(1, chain[0].receipt_hash, approvals(org_id, 1), MINTED_AT, SIGN_ALL, tokens(1))
        with pytest.raises(asyncpg.UniqueViolationError):
            await insert(conn, same_seq)
        # A second genesis.
        (genesis,) = chain_batch(0, GENESIS_HASH, approvals(org_id, 1), MINTED_AT, SIGN_ALL, tokens(1))
        with pytest.raises(asyncpg.UniqueViolationError):
            await insert(conn, genesis)
    assert [r.seq for r in await chain_of(pool, org_id)] == [1, 2]


async def test_a_receipt_that_skips_a_seq_or_names_a_parent_that_is_not_its_predecessor_is_refused(
    pool: asyncpg.Pool, org_id: str
) -> None:
    async with pool.acquire() as conn:
        await seed(conn, org_id, 2)
        chain = await chain_of(pool, org_id)
        head = chain[-1]
        # A gap: seq 4 after head 2, linked to the real head.
        (gap,) = chain_batch(head.seq + 1, head.receipt_hash, approvals(org_id, 1), MINTED_AT, SIGN_ALL, tokens(1))
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await insert(conn, gap)
        # The right seq but a parent that is not the receipt before it.
        (dangling,) = chain_batch(head.seq, "sha256:" + "ab" * 32, approvals(org_id, 1), MINTED_AT, SIGN_ALL, tokens(1))
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await insert(conn, dangling)
    # A first receipt whose parent is not genesis.
    other = org_id + "-b"
    (bad_genesis,) = chain_batch(0, "sha256:" + "cd" * 32, approvals(other, 1), MINTED_AT, SIGN_ALL, tokens(1))
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError):
            await insert(conn, bad_genesis)
    assert [r.seq for r in await chain_of(pool, org_id)] == [1, 2]
    assert await chain_of(pool, other) == []


async def test_a_writer_whose_head_moved_is_refused_with_stale_head_and_its_receipts_roll_back(
    pool: asyncpg.Pool, org_id: str
) -> None:
    async with pool.acquire() as conn:
        await seed(conn, org_id, 1)
        head = (await chain_of(pool, org_id))[-1]
        with pytest.raises(store.StaleHead, match=f"stale head for org {org_id}: expected seq 0"):
            async with conn.transaction():
                # Rows that would link correctly after seq 1, but claiming the head was still at 0.
                batch = chain_batch(1, head.receipt_hash, approvals(org_id, 2), MINTED_AT, SIGN_ALL, tokens(2))
                await store.append(conn, org_id, 0, batch)
    assert [r.seq for r in await chain_of(pool, org_id)] == [1]

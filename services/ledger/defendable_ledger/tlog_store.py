"""The ledger's transparency-log tables: Merkle nodes, signed checkpoints, witness cosignatures.

`ledger.tlog_nodes` is the insert-only node table `merkle.py` describes (every complete
subtree, about two rows per receipt); a root or proof for any past size reads O(log n) rows.
`ledger.checkpoints` holds every checkpoint the ledger signed (one per org per mint batch),
`ledger.cosignatures` the cosignature lines witnesses sent for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from asyncpg import Connection

from defendable_canonical.merkle import NodeId

MIGRATIONS = [
    """
    CREATE TABLE ledger.tlog_nodes (
        org_id text NOT NULL,
        level smallint NOT NULL CHECK (level BETWEEN 0 AND 63),
        idx bigint NOT NULL CHECK (idx >= 0),
        hash bytea NOT NULL CHECK (length(hash) = 32),
        PRIMARY KEY (org_id, level, idx)
    );
    CREATE TABLE ledger.checkpoints (
        org_id text NOT NULL,
        size bigint NOT NULL CHECK (size >= 1),
        root bytea NOT NULL CHECK (length(root) = 32),
        note bytea NOT NULL,
        signed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (org_id, size)
    );
    CREATE TABLE ledger.cosignatures (
        org_id text NOT NULL,
        size bigint NOT NULL,
        witness text NOT NULL,
        vkey text NOT NULL,
        line text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (org_id, size, witness),
        FOREIGN KEY (org_id, size) REFERENCES ledger.checkpoints (org_id, size)
    );
    """,
]


class MissingNodes(Exception):
    """The node table lacks rows a tree of this size must have: receipts minted before the
    log existed (backfilled at startup), or rows removed by hand."""


async def nodes(conn: Connection, org_id: str, ids: Iterable[NodeId]) -> dict[NodeId, bytes]:
    """The stored hashes of `ids` (those that exist), in one query."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    # One index probe per wanted node, whatever the statistics say: with a plain join, an org
    # that grew since the last ANALYZE was planned as tiny and read whole (100 ms, not 0.4 ms,
    # at 200,000 nodes). `LIMIT 1` keeps the planner from flattening the lateral probe.
    rows = await conn.fetch(
        """SELECT w.level, w.idx, n.hash FROM unnest($2::smallint[], $3::bigint[]) AS w(level, idx)
           JOIN LATERAL (SELECT t.hash FROM ledger.tlog_nodes t
                         WHERE t.org_id = $1 AND t.level = w.level AND t.idx = w.idx LIMIT 1) n ON true""",
        org_id,
        [n.level for n in wanted],
        [n.index for n in wanted],
    )
    return {NodeId(r["level"], r["idx"]): bytes(r["hash"]) for r in rows}


async def require_nodes(conn: Connection, org_id: str, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
    found = await nodes(conn, org_id, ids)
    if missing := [n for n in ids if n not in found]:
        raise MissingNodes(f"org {org_id}: {len(missing)} Merkle nodes missing, e.g. {missing[0]}")
    return found


async def append_nodes(conn: Connection, org_id: str, written: Sequence[tuple[NodeId, bytes]]) -> None:
    await conn.copy_records_to_table(
        "tlog_nodes",
        schema_name="ledger",
        columns=["org_id", "level", "idx", "hash"],
        records=[(org_id, node.level, node.index, h) for node, h in written],
    )


async def leaf_count(conn: Connection, org_id: str) -> int:
    count = await conn.fetchval(
        "SELECT COALESCE(max(idx) + 1, 0) FROM ledger.tlog_nodes WHERE org_id = $1 AND level = 0", org_id
    )
    return int(count)


async def delete_nodes(conn: Connection, org_id: str) -> None:
    await conn.execute("DELETE FROM ledger.tlog_nodes WHERE org_id = $1", org_id)


async def record_checkpoint(conn: Connection, org_id: str, size: int, root: bytes, note: bytes) -> None:
    await conn.execute(
        "INSERT INTO ledger.checkpoints (org_id, size, root, note) VALUES ($1, $2, $3, $4)", org_id, size, root, note
    )


async def latest_checkpoint(conn: Connection, org_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT size, root, note FROM ledger.checkpoints WHERE org_id = $1 ORDER BY size DESC LIMIT 1", org_id
    )
    return dict(row) if row else None


async def checkpoint_at(conn: Connection, org_id: str, size: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT size, root, note FROM ledger.checkpoints WHERE org_id = $1 AND size = $2", org_id, size
    )
    return dict(row) if row else None


# Among the newest checkpoints that contain a receipt, prove it against the most cosigned
# one (the newest on a tie); bounded, so an old receipt of a busy log costs the same.
PROOF_CANDIDATES = 64


async def best_checkpoint_for(conn: Connection, org_id: str, seq: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """SELECT c.size, c.root, c.note FROM (
               SELECT size, root, note FROM ledger.checkpoints
               WHERE org_id = $1 AND size >= $2 ORDER BY size DESC LIMIT $3) c
           ORDER BY (SELECT count(*) FROM ledger.cosignatures s
                     WHERE s.org_id = $1 AND s.size = c.size) DESC, c.size DESC
           LIMIT 1""",
        org_id,
        seq,
        PROOF_CANDIDATES,
    )
    return dict(row) if row else None


async def checkpoints_after(conn: Connection, org_id: str, after: int, limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT size, root, note FROM ledger.checkpoints WHERE org_id = $1 AND size > $2
           ORDER BY size LIMIT $3""",
        org_id,
        after,
        limit,
    )
    return [dict(r) for r in rows]


async def cosignature_lines(conn: Connection, org_id: str, sizes: Sequence[int]) -> dict[int, list[str]]:
    """The stored cosignature lines of each of these checkpoints, by witness name."""
    rows = await conn.fetch(
        """SELECT size, line FROM ledger.cosignatures WHERE org_id = $1 AND size = ANY($2::bigint[])
           ORDER BY size, witness""",
        org_id,
        list(sizes),
    )
    lines: dict[int, list[str]] = {}
    for r in rows:
        lines.setdefault(int(r["size"]), []).append(str(r["line"]))
    return lines


async def record_cosignature(conn: Connection, org_id: str, size: int, witness: str, vkey: str, line: str) -> bool:
    """Store a witness's cosignature line (its first one for this checkpoint wins)."""
    done = await conn.execute(
        """INSERT INTO ledger.cosignatures (org_id, size, witness, vkey, line) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (org_id, size, witness) DO NOTHING""",
        org_id,
        size,
        witness,
        vkey,
        line,
    )
    return bool(done == "INSERT 0 1")


async def witnesses(conn: Connection) -> list[dict[str, Any]]:
    """Every witness that has cosigned a checkpoint here, with its newest vkey."""
    rows = await conn.fetch(
        """SELECT DISTINCT ON (witness) witness, vkey, received_at FROM ledger.cosignatures
           ORDER BY witness, received_at DESC"""
    )
    return [dict(r) for r in rows]


async def orgs_needing_backfill(conn: Connection) -> list[tuple[str, int]]:
    """Orgs whose chain head is past their latest checkpoint (receipts minted before the log)."""
    rows = await conn.fetch(
        """SELECT h.org_id, h.seq FROM ledger.heads h
           WHERE h.seq > COALESCE((SELECT max(size) FROM ledger.checkpoints c WHERE c.org_id = h.org_id), 0)"""
    )
    return [(str(r["org_id"]), int(r["seq"])) for r in rows]


async def receipt_hash_at(conn: Connection, org_id: str, seq: int) -> str | None:
    value = await conn.fetchval("SELECT receipt_hash FROM ledger.receipts WHERE org_id = $1 AND seq = $2", org_id, seq)
    return None if value is None else str(value)


async def receipt_hashes(conn: Connection, org_id: str, after: int, limit: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT receipt_hash FROM ledger.receipts WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        org_id,
        after,
        limit,
    )
    return [str(r["receipt_hash"]) for r in rows]


async def receipts_after(conn: Connection, org_id: str, after: int, limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT seq, receipt_hash, parent_hash, payload, signature, minted_at FROM ledger.receipts
           WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3""",
        org_id,
        after,
        limit,
    )
    return [dict(r) for r in rows]

"""The witness's own tables (schema `witness`). Only this module imports asyncpg.

They live apart from the log's (WITNESS_DATABASE_URL): a witness whose memory the log
operator can rewrite witnesses nothing. `latest` moves only by compare-and-set on the size
it held, so two replicas cannot both advance from one state; `cosignatures` keeps every
checkpoint cosigned, one row per (origin, size), and `latest` must point at one of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from asyncpg import Connection, Record

from defendable_canonical.checkpoint import parse_checkpoint
from defendable_canonical.note import parse_note
from defendable_canonical.signature import b64url_strict

from .decide import Cosigned

SCHEMA = "witness"
MIGRATIONS = [
    """
    CREATE TABLE witness.signing_keys (
        public_key text PRIMARY KEY,
        name text NOT NULL,
        seed bytea NOT NULL CHECK (length(seed) = 32),
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE witness.log_keys (
        public_key text PRIMARY KEY,
        kid text NOT NULL,
        pinned_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE witness.cosignatures (
        origin text NOT NULL,
        size bigint NOT NULL CHECK (size >= 0),
        root_hash bytea NOT NULL CHECK (length(root_hash) = 32),
        org_id text NOT NULL,
        cosigned text NOT NULL,
        cosigned_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (origin, size)
    );
    CREATE TABLE witness.latest (
        origin text PRIMARY KEY,
        size bigint NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        FOREIGN KEY (origin, size) REFERENCES witness.cosignatures (origin, size)
    );
    CREATE TABLE witness.alerts (
        origin text NOT NULL,
        size bigint NOT NULL,
        offered_sha256 bytea NOT NULL,
        reason text NOT NULL,
        held text NOT NULL,
        offered text NOT NULL,
        alerted_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (origin, size, offered_sha256)
    );
    """,
]


async def load_or_create_seed(conn: Connection, name: str, generate: bytes, public_key: str) -> tuple[str, bytes]:
    """The local cosigning seed and the name it serves: the first one stored wins (replicas share it)."""
    await conn.execute(
        "INSERT INTO witness.signing_keys (public_key, name, seed) SELECT $1, $2, $3"
        " WHERE NOT EXISTS (SELECT 1 FROM witness.signing_keys)",
        public_key,
        name,
        generate,
    )
    row = await conn.fetchrow("SELECT name, seed FROM witness.signing_keys ORDER BY created_at, public_key LIMIT 1")
    return str(row["name"]), bytes(row["seed"])


async def log_keys(conn: Connection) -> list[bytes]:
    """The log keys pinned on first use (raw 32-byte Ed25519 public keys)."""
    rows = await conn.fetch("SELECT public_key FROM witness.log_keys ORDER BY pinned_at, public_key")
    return [b64url_strict(row["public_key"]) for row in rows]


async def pin_log_keys(conn: Connection, keys: Sequence[tuple[str, str]]) -> None:
    """Pin (kid, base64url public key) pairs, only while nothing is pinned: trust on first use, once."""
    async with conn.transaction():
        await conn.execute("LOCK TABLE witness.log_keys IN EXCLUSIVE MODE")  # replicas pinning at once
        if await conn.fetchval("SELECT count(*) FROM witness.log_keys"):
            return
        await conn.executemany(
            "INSERT INTO witness.log_keys (public_key, kid) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [(public_key, kid) for kid, public_key in keys],
        )


async def held(conn: Connection, origin: str, size: int) -> tuple[Cosigned | None, Cosigned | None]:
    """The latest checkpoint cosigned for `origin`, and the one cosigned at `size` if any."""
    rows = await conn.fetch(
        """SELECT c.size, c.cosigned, c.size = l.size AS latest
             FROM witness.latest l
             JOIN witness.cosignatures c ON c.origin = l.origin AND (c.size = l.size OR c.size = $2)
            WHERE l.origin = $1""",
        origin,
        size,
    )
    latest = next((_cosigned(r) for r in rows if r["latest"]), None)
    known = next((_cosigned(r) for r in rows if r["size"] == size), None)
    return latest, known


def _cosigned(row: Record) -> Cosigned:
    return Cosigned(parse_checkpoint(parse_note(row["cosigned"].encode()).text), row["cosigned"])


async def advance(conn: Connection, org_id: str, previous: Cosigned | None, new: Cosigned) -> bool:
    """Store `new` and make it the latest of its origin, only if the latest is still `previous`.

    False (and nothing written, by the caller's rolled-back transaction) when another
    replica moved first. Run inside a transaction.
    """
    checkpoint = new.checkpoint
    await conn.execute(
        """INSERT INTO witness.cosignatures (origin, size, root_hash, org_id, cosigned)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
        checkpoint.origin,
        checkpoint.size,
        checkpoint.root_hash,
        org_id,
        new.cosigned,
    )
    if previous is None:
        status = await conn.execute(
            "INSERT INTO witness.latest (origin, size) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            checkpoint.origin,
            checkpoint.size,
        )
        return bool(status == "INSERT 0 1")
    status = await conn.execute(
        "UPDATE witness.latest SET size = $2, updated_at = now() WHERE origin = $1 AND size = $3",
        checkpoint.origin,
        checkpoint.size,
        previous.checkpoint.size,
    )
    return bool(status == "UPDATE 1")


async def record_alert(
    conn: Connection, origin: str, size: int, offered_sha256: bytes, reason: str, held: str, offered: str
) -> None:
    await conn.execute(
        """INSERT INTO witness.alerts (origin, size, offered_sha256, reason, held, offered)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING""",
        origin,
        size,
        offered_sha256,
        reason,
        held,
        offered,
    )

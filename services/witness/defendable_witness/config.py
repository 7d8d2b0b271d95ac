"""The witness's settings and its own key, read once at start-up.

- WITNESS_NAME: its cosigner key name (default `defendable.local/witness`);
- WITNESS_DATABASE_URL: its own PostgreSQL (default DATABASE_URL; production points it at a
  database the log operator does not control);
- WITNESS_SIGNING_KEY (base64 32-byte Ed25519 seed) or WITNESS_SIGNING_KEY_FILE; else a key is
  generated once and kept in its schema;
- WITNESS_LOG_PUBLIC_KEY: the log's key(s), base64url raw 32 bytes, comma-separated; unset, the
  witness pins what the ledger publishes on first use.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import os
import re
import secrets
from pathlib import Path

import msgspec
from asyncpg import Pool

from defendable_canonical.cosignature import CosignatureSigner
from defendable_canonical.note import is_valid_key_name
from defendable_canonical.signature import b64url, b64url_strict
from defendable_runtime.settings import from_env

from . import store

DEFAULT_NAME = "defendable.local/witness"


class WitnessSettings(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    nats_url: str
    database_url: str
    log_keys: tuple[bytes, ...]  # pinned by configuration; empty: trust on first use


def settings_from_env() -> WitnessSettings:
    env, common = os.environ, from_env()
    name = env.get("WITNESS_NAME") or DEFAULT_NAME
    if not is_valid_key_name(name):
        raise SystemExit(f"WITNESS_NAME {name[:80]!r} is not a note key name (no spaces, no '+')")
    keys: list[bytes] = []
    for text in filter(None, (k.strip() for k in env.get("WITNESS_LOG_PUBLIC_KEY", "").split(","))):
        try:
            key = b64url_strict(text)
        except ValueError as exc:
            raise SystemExit(f"WITNESS_LOG_PUBLIC_KEY: {exc}") from exc
        if len(key) != 32:
            raise SystemExit(f"WITNESS_LOG_PUBLIC_KEY: a key is {len(key)} bytes; an Ed25519 public key is 32")
        keys.append(key)
    return WitnessSettings(
        name=name,
        nats_url=common.nats_url,
        database_url=env.get("WITNESS_DATABASE_URL") or common.database_url,
        log_keys=tuple(keys),
    )


def durable_name(name: str) -> str:
    """The JetStream consumer of the witness called `name`: readable, and distinct per name
    (a hash tells apart names that sanitise alike; two witnesses must never share one)."""
    readable = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64]
    return f"witness-{readable}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


async def load_signer(pool: Pool, name: str) -> CosignatureSigner:
    """The configured key, else the one stored in the witness's schema (generated on first start).

    A cosignature does not name its cosigner, so a stored key serves the name it was made
    for only: starting under another name with it is refused.
    """
    seed = await _configured_seed()
    if seed is None:
        fresh = secrets.token_bytes(32)
        public = b64url(CosignatureSigner.from_seed(name, fresh).public_key)
        async with pool.acquire() as conn:
            stored_name, seed = await store.load_or_create_seed(conn, name, fresh, public)
        if stored_name != name:
            raise SystemExit(f"the stored witness key serves {stored_name!r}, not WITNESS_NAME {name!r}")
    return CosignatureSigner.from_seed(name, seed)


async def _configured_seed() -> bytes | None:
    configured = os.environ.get("WITNESS_SIGNING_KEY")
    if not configured and (path := os.environ.get("WITNESS_SIGNING_KEY_FILE")):
        configured = (await asyncio.to_thread(Path(path).read_text)).strip()
    if not configured:
        return None
    try:
        seed = base64.b64decode(configured, validate=True)
    except binascii.Error as exc:
        raise SystemExit(f"the configured witness key is not base64: {exc}") from exc
    if len(seed) != 32:
        raise SystemExit(f"the configured witness key is {len(seed)} bytes; an Ed25519 seed is 32 (base64)")
    return seed

"""Administrative actions run from the CLI against the gateway's own schema."""

from __future__ import annotations

import re
import secrets
import unicodedata

import msgspec

from defendable_runtime import db

from . import store
from .auth import ROLES, new_key

_SLUG = re.compile(r"[^a-z0-9]+")


class IssuedKey(msgspec.Struct, frozen=True):
    role: str
    key_id: str
    key: str
    label: str


class CreatedOrg(msgspec.Struct, frozen=True):
    org_id: str
    name: str
    keys: list[IssuedKey]


def org_id_for(name: str) -> str:
    """A readable, subject-safe id: "Ørsted Ünïcode" → "rsted-unicode-1a2b3c4d" (ASCII folding, then a random tail)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = _SLUG.sub("-", ascii_name.lower()).strip("-")[:40] or "org"
    return f"{slug}-{secrets.token_hex(4)}"


async def create_org(dsn: str, name: str, approver: str | None = None) -> CreatedOrg:
    """Create an org and one key per role. Keys are shown once; only their hashes are stored."""
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise ValueError("an organisation name has 1 to 200 characters")
    pool = await db.create_pool(dsn, max_size=2)
    try:
        await db.migrate(pool, store.SCHEMA, store.MIGRATIONS)
        org_id = org_id_for(name)
        issued: list[IssuedKey] = []
        async with pool.acquire() as conn, conn.transaction():
            await store.create_org(conn, org_id, name)
            for role in ROLES:
                key_id, key, key_hash = new_key()
                label = approver if (role == "approver" and approver) else f"{role} of {name}"
                await store.add_key(conn, key_id, org_id, key_hash, role, label)
                issued.append(IssuedKey(role=role, key_id=key_id, key=key, label=label))
        return CreatedOrg(org_id=org_id, name=name, keys=issued)
    finally:
        await pool.close()

"""API keys: `dk_<key id>_<secret>`; only SHA-256 of the whole key is stored.

The key id is public (it names the key in logs and events); the secret carries
256 bits from `secrets`. Roles: submitter, approver, admin (admin implies both).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Literal

import msgspec

Role = Literal["submitter", "approver", "admin"]
ROLES: tuple[Role, ...] = ("submitter", "approver", "admin")


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    org_id: str
    key_id: str
    role: Role
    label: str

    def may(self, role: Role) -> bool:
        return self.role == role or self.role == "admin"


def new_key() -> tuple[str, str, str]:
    """(key id, full key to show once, hash to store)."""
    key_id = secrets.token_hex(8)
    key = f"dk_{key_id}_{secrets.token_urlsafe(32)}"
    return key_id, key, hash_key(key)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.startswith("dk_") or len(token) > 200:
        return None
    return token.strip()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)
